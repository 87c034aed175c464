#!/usr/bin/env bash
# The whole test suite (what the README's second command and CI run).
# Sets up the Python venv with the real environments the bridge tests drive (cached in
# $DREAMGYM_CACHE, default ~/.cache/dreamgym), installs Mesa's software Vulkan driver (lavapipe)
# so the wgpu tests run without a GPU and Debian's chromium for the report's browser test, and
# reuses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
DREAMGYM_PYTHON="$(bash scripts/setup-venv.sh)"
export DREAMGYM_PYTHON
if bash scripts/setup-vulkan.sh; then
    # an adapter is there: the wgpu test must run, not skip
    export DREAMGYM_REQUIRE_WGPU=1
fi
if bash scripts/setup-browser.sh; then
    # a browser is there: the report's charts must be checked in it, not skipped
    export DREAMGYM_REQUIRE_BROWSER=1
fi
# no crate's modules import each other in a circle (the checker first checks itself on made crates)
python3 scripts/module-cycles.py --self-test
python3 scripts/module-cycles.py
cargo test --workspace --lib --bins --tests --locked
# the whole-episode property of the buffer log, ten times in a row (each run draws new cases)
for run in 1 2 3 4 5 6 7 8 9 10; do
    # --workspace, as above: the same features, so nothing is rebuilt (-p would rebuild deps)
    cargo test --workspace --lib --locked --quiet \
        appender::tests::a_log_cut_at_any_byte_recovers_whole_episodes_and_every_one_written \
        || { echo "whole-episode property test failed on run $run" >&2; exit 1; }
done
cargo test --workspace --doc --locked
# benchmarks are not run in CI, but they must keep compiling (dev profile: shares the test build)
cargo build --workspace --benches --profile dev --locked
