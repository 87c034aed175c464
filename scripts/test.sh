#!/usr/bin/env bash
# The whole test suite (what the README's second command and CI run).
# Sets up the Python venv with the real environments the bridge tests drive (cached in
# $DREAMGYM_CACHE, default ~/.cache/dreamgym), installs Mesa's software Vulkan driver (lavapipe)
# so the wgpu tests run without a GPU, and reuses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
DREAMGYM_PYTHON="$(bash scripts/setup-venv.sh)"
export DREAMGYM_PYTHON
if bash scripts/setup-vulkan.sh; then
    # an adapter is there: the wgpu test must run, not skip
    export DREAMGYM_REQUIRE_WGPU=1
fi
# no crate's modules import each other in a circle
python3 scripts/module-cycles.py
cargo test --workspace --lib --bins --tests --locked
cargo test --workspace --doc --locked
# benchmarks are not run in CI, but they must keep compiling (dev profile: shares the test build)
cargo build --workspace --benches --profile dev --locked
