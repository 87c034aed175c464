#!/usr/bin/env bash
# Reproduces the native model's fidelity table in docs/native-model.md: for each shipped scenario, 2,100
# training trajectories (700 each of expert, noisy-expert:0.3, random; seed 1) and 450 held-out
# ones: 150 new trajectories on training instances (noisy-expert:0.6, seed 1: the first 150
# instances of training, other actions) and 300 on new instances (100 each of expert,
# noisy-expert:0.3, random; seed 2). `dreamgym model eval` reports all 450, the 150 on training
# instances ("seen tasks") and the 300 on new ones ("unseen tasks").
# Usage: bash scripts/model-fidelity.sh [OUT]; SCENARIOS="oncall" limits it to those scenarios,
# DREAMGYM_BIN=PATH uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DREAMGYM_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin="${CARGO_TARGET_DIR:-target}/release/dreamgym"
fi
out="${1:-data/fidelity}"
mkdir -p "$out"
# SCENARIOS="oncall" runs only the scenarios named
for s in ${SCENARIOS:-household webshop keys_doors oncall}; do
    : > "$out/train-$s.jsonl"
    : > "$out/held-$s.jsonl"
    for p in expert noisy-expert:0.3 random; do
        "$bin" collect --env "scenario:scenarios/$s.ron" --policy "$p" --episodes 700 --seed 1 --out "$out/t.jsonl" >/dev/null
        cat "$out/t.jsonl" >> "$out/train-$s.jsonl"
        "$bin" collect --env "scenario:scenarios/$s.ron" --policy "$p" --episodes 100 --seed 2 --out "$out/t.jsonl" >/dev/null
        cat "$out/t.jsonl" >> "$out/held-$s.jsonl"
    done
    "$bin" collect --env "scenario:scenarios/$s.ron" --policy noisy-expert:0.6 --episodes 150 --seed 1 --out "$out/t.jsonl" >/dev/null
    cat "$out/t.jsonl" >> "$out/held-$s.jsonl"
    echo "== $s"
    "$bin" model eval --train "$out/train-$s.jsonl" --heldout "$out/held-$s.jsonl"
    "$bin" model eval --train "$out/train-$s.jsonl" --heldout "$out/held-$s.jsonl" --no-rules | grep -E "next_state_exact|reward_accuracy" | sed 's/^/  without rules: /'
done
