#!/usr/bin/env bash
# Does capacity limit the default model?  Two runs from random weights side by side on one GPU,
# identical but for the filter multiple (1 = the paper's default, 2 = twice as wide, 4x the work):
# THEMIS chips 0-439, validation 440-499, crater F1 every 5 epochs, 384-px patches, lr 1e-3.
#   bash benchmarks/gpu/capacity.sh CHIPS EPOCHS SECONDS   # -> $OUT/fm{1,2}_history.csv
source benchmarks/gpu/common.sh train
chips=${1:?chips folder}; epochs=${2:?epochs}; limit=${3:-100000}
common=(--chips "$chips" --train ${TRAIN:-0:440} --val ${VAL:-440:500} --kind outline --crop 384 --batch-size 16 --epochs "$epochs"
        --workers 7 --score-every 5 --learning-rate 1e-3 --seed 3 --restart)
for fm in 1 2; do
  timeout "$limit" "$PY" -m marscraters -q train "${common[@]}" --filter-multiple $fm --out /tmp/runs/fm$fm \
    > /tmp/fm$fm.log 2>&1 &
done
wait
for fm in 1 2; do
  tail -2 /tmp/fm$fm.log; cp /tmp/runs/fm$fm/history.csv "$OUT/fm${fm}_history.csv" 2>/dev/null
  "$PY" - "$fm" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(f"/tmp/runs/fm{sys.argv[1]}/history.csv")))
f1 = [(int(float(r["epoch"])) + 1, float(r["val_crater_f1"])) for r in rows if r.get("val_crater_f1") not in ("", "nan", None)]
print(f"filter multiple {sys.argv[1]}: {len(rows)} epochs, median s/epoch "
      f"{sorted(float(r['seconds_per_epoch']) for r in rows)[len(rows) // 2]:.2f}, val F1 by epoch", f1)
PY
done
