#!/usr/bin/env bash
# Side-by-side PPO benchmark: dreamgym's burn learner vs a CleanRL-style PyTorch PPO, same
# scenario, same features (`dreamgym policy serve-env`), same network and PPO settings (CleanRL's
# ppo.py defaults), one thread each, run back to back. Prints both results and the ratios.
#
#   bash benches/compare/run.sh [ENV] [DIFFICULTY] [ITERATIONS] [SEED]
#
# Torch comes from PyPI into a cached venv ($DREAMGYM_CACHE/torch-venv, default
# ~/.cache/dreamgym): a large one-time install. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV="${1:-scenario:scenarios/keys_doors.ron}"
DIFFICULTY="${2:-1}"
ITERATIONS="${3:-40}"
SEED="${4:-1}"
CACHE="${DREAMGYM_CACHE:-$HOME/.cache/dreamgym}"
VENV="$CACHE/torch-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing torch into $VENV (one time)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy
fi
# DREAMGYM_BIN: use an already built binary instead of building a release one
if [ -z "${DREAMGYM_BIN:-}" ]; then
    cargo build --release --locked --bin dreamgym >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/dreamgym"
else
    BIN="$DREAMGYM_BIN"
fi
OUT="$(mktemp -d)"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

echo "== dreamgym (burn, flex CPU backend) ==" >&2
start=$(date +%s.%N)
"$BIN" policy train --env "$ENV" --difficulty "$DIFFICULTY" --iterations "$ITERATIONS" --seed "$SEED" \
    --backend cpu --out "$OUT/dreamgym" --eval-episodes 100 --quiet
end=$(date +%s.%N)

echo "== PyTorch (CleanRL-style) ==" >&2
"$VENV/bin/python" benches/compare/ppo_torch.py --dreamgym "$BIN" --env "$ENV" --difficulty "$DIFFICULTY" \
    --iterations "$ITERATIONS" --seed "$SEED" > "$OUT/torch.json"

python3 - "$OUT" "$start" "$end" <<'EOF'
import json, sys
out, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.loads(l) for l in open(f"{out}/dreamgym/metrics.jsonl")]
ev = json.load(open(f"{out}/dreamgym/eval.json"))
steps = rows[-1]["env_steps"]
rollout = sum(r["samples"] / r["rollout_steps_per_s"] for r in rows)
update = sum(r["samples"] * 4 / r["update_samples_per_s"] for r in rows)
train_secs = sum(r["seconds"] for r in rows)
dg = {
    "learner": "dreamgym",
    "env_steps": steps,
    "env_steps_per_s": steps / train_secs,
    "rollout_steps_per_s": steps / rollout,
    "update_samples_per_s": sum(r["samples"] * 4 for r in rows) / update,
    "final_train_success": sum(r["success"] for r in rows[-5:]) / len(rows[-5:]),
    "held_out_success": ev["sampled"]["success"],
    "seconds": train_secs,
}
pt = json.load(open(f"{out}/torch.json"))
print(f"{'':28}{'dreamgym':>12}{'pytorch':>12}{'ratio':>9}")
for k in ["env_steps", "env_steps_per_s", "rollout_steps_per_s", "update_samples_per_s",
          "final_train_success", "held_out_success", "seconds"]:
    a, b = dg[k], pt[k]
    ratio = f"{a / b:8.2f}x" if b else "       -"
    print(f"{k:28}{a:12.3f}{b:12.3f}{ratio}")
EOF
