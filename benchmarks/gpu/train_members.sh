#!/usr/bin/env bash
# Train three ensemble-member candidates side by side on one GPU (2026-11-26): THEMIS chips 0-439,
# validation 440-499, crater F1 every 5 epochs, checkpoint = best validation F1, 384-px patches.
#   A "ft2": v5's network (fine-tuned on a GPU) trained on, learning rate 2e-4 (cosine)
#   B "sc2": the from-scratch GPU run made beside v5 trained on, 5e-4
#   C "v4b": v4's network fine-tuned again with another seed, 5e-4
# The starting models sit in INIT (ft.keras, scratch.keras, v4.keras).
#   bash benchmarks/gpu/train_members.sh CHIPS INIT EPOCHS SECONDS   # -> $OUT/{ft2,sc2,v4b}_{best.keras,history.csv}
source benchmarks/gpu/common.sh train
chips=${1:?chips folder}; init=${2:?folder of starting models}; epochs=${3:?epochs}; limit=${4:-100000}
common=(--chips "$chips" --train ${TRAIN:-0:440} --val ${VAL:-440:500} --kind outline --crop 384 --batch-size 16 --epochs "$epochs"
        --workers ${WORKERS:-5} --score-every 5 --restart)
run() {  # name init lr seed
  timeout "$limit" "$PY" -m marscraters -q train "${common[@]}" --init "$2" --learning-rate "$3" --seed "$4" \
    --out "/tmp/runs/$1" > "/tmp/$1.log" 2>&1
}
run ft2 "$init/ft.keras" 2e-4 20 &
run sc2 "$init/scratch.keras" 5e-4 21 &
run v4b "$init/v4.keras" 5e-4 22 &
wait
for r in ft2 sc2 v4b; do
  echo "== $r"; tail -3 "/tmp/$r.log"
  [ -f "/tmp/runs/$r/best.keras" ] && cp "/tmp/runs/$r/best.keras" "$OUT/${r}_best.keras"
  [ -f "/tmp/runs/$r/history.csv" ] && cp "/tmp/runs/$r/history.csv" "$OUT/${r}_history.csv"
  "$PY" - "$r" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(f"/tmp/runs/{sys.argv[1]}/history.csv")))
scored = [r for r in rows if r.get("val_crater_f1") not in ("", "nan", None)]
best = max(scored, key=lambda r: float(r["val_crater_f1"]))
print(sys.argv[1], "epochs", len(rows), "s/epoch", rows[-1]["seconds_per_epoch"],
      "best val F1", best["val_crater_f1"], "at epoch", int(float(best["epoch"])) + 1,
      "F1 trace", " ".join(f"{float(r['val_crater_f1']):.3f}" for r in scored))
PY
done
