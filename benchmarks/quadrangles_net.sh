#!/usr/bin/env bash
# The retrain-net variant of benchmarks/splits/quadrangles_rule.md (addendum 2) on this machine's CPU,
# resumable (each stage skips what it finds done): the network fine-tuned per run A-D on registered
# crops, each run's maps of the crops, then the cross-validated verifier on those maps.
#   bash benchmarks/quadrangles_net.sh [EPOCHS]     # outputs under runs/quadrangles/
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
epochs=${1:-6}
for run in A B C D; do
  "$PY" benchmarks/train_quadrangles.py --run "$run" --out "runs/quadrangles/net_$run" --epochs "$epochs" --register
done
models=()
for run in A B C D; do
  [ -f "runs/quadrangles/net_$run-best/crops.npz" ] || \
    "$PY" benchmarks/quadrangles.py prepare --crops-only --model "runs/quadrangles/net_$run/best.keras"
  models+=("$run=runs/quadrangles/net_$run/best.keras")
done
"$PY" benchmarks/quadrangles.py cv --variants retrain --run-models "${models[@]}" \
  --json runs/quadrangles/cv_validation_net.json
