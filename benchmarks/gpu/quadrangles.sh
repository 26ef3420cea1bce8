#!/usr/bin/env bash
# Leave-quadrangles-out fine-tuning of the shipped network on one GPU (Keras on JAX), resumable:
# runs A-D (each without its test and validation folds) and "all" (every crop, validated on chips
# 440-499), side by side, then each run's maps of the crops for `quadrangles.py cv --run-models`.
#   MARSCRATERS_SHARED_DATA=shared/data bash benchmarks/gpu/quadrangles.sh EPOCHS [SECONDS]
# Outputs in $OUT: net_{A,B,C,D,all}/{best.keras,history.csv,config.json}, the caches of
# runs/quadrangles/<model>/, and the training logs.
source benchmarks/gpu/common.sh train
epochs=${1:?epochs}; limit=${2:-100000}
for run in A B C D all; do
  timeout "$limit" "$PY" benchmarks/train_quadrangles.py --run "$run" --epochs "$epochs" --batch-size 16 \
    --crop 384 --workers 3 --out "/tmp/runs/net_$run" > "$OUT/train_$run.log" 2>&1 &
done
wait
for run in A B C D all; do
  mkdir -p "$OUT/net_$run"; tail -3 "$OUT/train_$run.log"
  cp /tmp/runs/net_$run/{best.keras,history.csv,config.json} "$OUT/net_$run/" 2>/dev/null
done
for run in A B C D; do
  "$PY" benchmarks/quadrangles.py prepare --crops-only --model "/tmp/runs/net_$run/best.keras" --runs "$OUT/caches" \
    > "$OUT/prepare_$run.log" 2>&1
done
