#!/usr/bin/env bash
# Measures the README's two commands cold: a fresh clone of this repository in $1 (default
# /tmp/dreamgym-cold), an empty CARGO_HOME beside it, no target/. Prints the wall time of each
# step. The test command reuses the cached Python venv and Debian packages when present.
set -u
src="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-/tmp/dreamgym-cold}"
rm -rf "$dir" "$dir-cargo-home"
git clone -q "$src" "$dir"
cd "$dir"
export CARGO_HOME="$dir-cargo-home"
unset CARGO_TARGET_DIR
t0=$(date +%s)
cargo build --release --no-default-features --locked > build.log 2>&1 || { echo "build failed: $dir/build.log"; exit 1; }
t1=$(date +%s); echo "first command build: $((t1 - t0)) s"
cargo run --release --no-default-features -- run scenarios/household.ron > run.out 2> run.log
t2=$(date +%s); echo "first command run: $((t2 - t1)) s (first command total $((t2 - t0)) s)"
grep -m1 "partial results" run.log
bash scripts/test.sh > test.log 2>&1; rc=$?
t3=$(date +%s); echo "test command: $((t3 - t2)) s (exit $rc); both: $((t3 - t0)) s"
