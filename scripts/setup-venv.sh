#!/usr/bin/env bash
# Creates (once) the Python venv with the real environments the bridge drives: BabyAI (minigrid)
# and TextWorldExpress (needs a Java runtime, installed here when missing), and the OpenEnv client
# and server (`openenv-core` with the dependencies of its client and server, without its CLI's)
# that the `dreamgym serve` tests and benchmark drive.
# The venv lives outside the repo, in $DREAMGYM_CACHE (default ~/.cache/dreamgym); prints its python.
set -euo pipefail
cache="${DREAMGYM_CACHE:-$HOME/.cache/dreamgym}"
venv="$cache/venv"
stamp="$venv/.dreamgym-ready-2"
if [ ! -f "$stamp" ]; then
    mkdir -p "$cache"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "minigrid==3.2.0" "textworld-express==1.1.0" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "fastapi==0.165.0" "pydantic==2.14.4" \
        "uvicorn==0.55.0" "requests==2.34.2" "websockets==17.4" "fastmcp==4.2.3" >&2
    # openenv-core last and without its dependencies, on purpose: its client and server need only
    # the packages above; the rest it declares (gradio, huggingface_hub, openai, typer, ...) serve
    # its CLI and web UI, which the tests do not use. Installed last with --no-deps, pip skips its
    # dependency check (installed before the others, pip printed seven "requires X, which is not
    # installed" lines that read as a failure but were not one).
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "openenv-core==0.3.0" >&2
    touch "$stamp"
fi
if ! command -v java >/dev/null 2>&1; then
    echo "installing a Java runtime for TextWorldExpress" >&2
    (apt-get update -qq && apt-get install -y -qq default-jre-headless) >&2
fi
echo "$venv/bin/python"
