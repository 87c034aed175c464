#!/usr/bin/env bash
# A longer fuzzing run of every parser that reads outside input (sim/tests/fuzz.rs: the RON
# scenario compiler, the JSONL reader, the bridge's replies, the LLM model's replies) and of the
# log's frame-header flips (buffer/src/log.rs). CI runs the default case counts; this runs CASES
# per target and prints how many inputs each target accepted (the rest were refused with errors).
#
#   bash scripts/fuzz.sh [CASES]        (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
# the same build as scripts/test.sh (no rebuild when it ran)
cargo test --workspace --lib --bins --tests --locked --no-run
log="$(mktemp)"
start=$(date +%s)
status=0
PROPTEST_CASES="$cases" DREAMGYM_FUZZ_STATS=1 cargo test --workspace --lib --bins --tests \
    --locked -- --nocapture never_panic frame_header_flips >"$log" 2>&1 || status=$?
grep -E "^test .*(ok|FAILED)$|panicked|minimal failing input" "$log" || true
for target in scenario jsonl bridge llm; do
    echo "accepted $target inputs: $(grep -c "^fuzz-accepted $target$" "$log" || true)"
done
echo "fuzzing: $cases cases per target in $(( $(date +%s) - start )) s (exit $status)"
rm -f "$log"
exit "$status"
