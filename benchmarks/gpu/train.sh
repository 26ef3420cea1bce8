#!/usr/bin/env bash
# Train default-model candidates on one GPU: two runs side by side on the THEMIS chips 0-439
# (validation 440-499), scored by crater F1 every 5 epochs, checkpoint = best validation F1.
#   A "ft":      fine-tune the shipped weights, learning rate 3e-4 (cosine), 384-px patches
#   B "scratch": the same from random weights, learning rate 1e-3
#   bash benchmarks/gpu/train.sh CHIPS EPOCHS [SECONDS]   # outputs: $OUT/{ft,scratch}_{best.keras,history.csv}
source benchmarks/gpu/common.sh train
chips=${1:?chips folder}; epochs=${2:?epochs}; limit=${3:-100000}
common=(--chips "$chips" --train 0:440 --val 440:500 --kind outline --crop 384 --batch-size 16 --epochs "$epochs"
        --workers 6 --score-every 5)
timeout "$limit" "$PY" -m marscraters -q train "${common[@]}" --init marscraters/weights/symmetric_unet.keras \
  --learning-rate 3e-4 --seed 0 --out /tmp/runs/ft > /tmp/ft.log 2>&1 &
timeout "$limit" "$PY" -m marscraters -q train "${common[@]}" --learning-rate 1e-3 --seed 1 \
  --out /tmp/runs/scratch > /tmp/scratch.log 2>&1 &
wait
for r in ft scratch; do
  tail -5 /tmp/$r.log
  cp /tmp/runs/$r/best.keras "$OUT/${r}_best.keras"; cp /tmp/runs/$r/history.csv "$OUT/${r}_history.csv"
  "$PY" - "$r" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(f"/tmp/runs/{sys.argv[1]}/history.csv")) if r.get("val_crater_f1") not in ("", "nan", None)]
best = max(rows, key=lambda r: float(r["val_crater_f1"]))
print(sys.argv[1], "epochs", len(list(csv.DictReader(open(f"/tmp/runs/{sys.argv[1]}/history.csv")))),
      "best val F1", best["val_crater_f1"], "at epoch", int(float(best["epoch"])) + 1)
PY
done
