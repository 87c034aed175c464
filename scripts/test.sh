#!/usr/bin/env bash
# The whole test suite (what the README's second command and CI run).
# Reuses $CARGO_TARGET_DIR when set (keep one warm target dir outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --lib --bins --tests --locked
cargo test --workspace --doc --locked
# benchmarks are not run in CI, but they must keep compiling
cargo build --workspace --benches --locked
