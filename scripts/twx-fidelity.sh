#!/usr/bin/env bash
# The native model on TextWorldExpress games through the bridge (issue 19's development set): per
# game, 210 training trajectories (70 each of expert, noisy-expert:0.3, random; seed 1) and 150
# held-out ones: 30 new trajectories on training worlds (noisy-expert:0.6, seed 1: the "seen"
# column) and 120 on worlds never in training (40 each policy, seed 2: "unseen"). `dreamgym model
# eval` reports both, with the `revealing` share beside them.
# Usage: bash scripts/twx-fidelity.sh [OUT]; GAMES="coin" limits it; DREAMGYM_BIN=PATH uses that
# binary instead of building one. Needs the venv of scripts/setup-venv.sh (Java included).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DREAMGYM_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin="${CARGO_TARGET_DIR:-target}/release/dreamgym"
fi
out="${1:-data/twx-fidelity}"
mkdir -p "$out"
declare -A params=(
    [coin]="coin:numLocations=5,includeDoors=1"
    [cooking]="cookingworld:numLocations=3,numIngredients=2,numDistractorItems=2,includeDoors=0"
    [twc]="twc:numLocations=2,numItemsToPutAway=2,includeDoors=0"
)
for g in ${GAMES:-coin cooking twc}; do
    env="bridge:twx:${params[$g]}"
    : > "$out/train-$g.jsonl"
    : > "$out/held-$g.jsonl"
    for p in expert noisy-expert:0.3 random; do
        "$bin" collect --env "$env" --policy "$p" --episodes 70 --seed 1 --out "$out/t.jsonl" 2>/dev/null >/dev/null
        cat "$out/t.jsonl" >> "$out/train-$g.jsonl"
        "$bin" collect --env "$env" --policy "$p" --episodes 40 --seed 2 --out "$out/t.jsonl" 2>/dev/null >/dev/null
        cat "$out/t.jsonl" >> "$out/held-$g.jsonl"
    done
    "$bin" collect --env "$env" --policy noisy-expert:0.6 --episodes 30 --seed 1 --out "$out/t.jsonl" 2>/dev/null >/dev/null
    cat "$out/t.jsonl" >> "$out/held-$g.jsonl"
    echo "== $g ($env)"
    "$bin" model eval --train "$out/train-$g.jsonl" --heldout "$out/held-$g.jsonl" 2>&1
done
