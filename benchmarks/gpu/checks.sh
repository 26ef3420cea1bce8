#!/usr/bin/env bash
# GPU checks, one short run: throughput against the matmul limit, the segmentation pipeline on a
# LocalCUDACluster against raw predict_on_batch, and training speed (seconds per epoch).
#   bash benchmarks/gpu/checks.sh            # writes $OUT (default gpu_out/)
# Chips for the training smoke: MARSCRATERS_SMOKE_CHIPS (default .devdata/small, 50 chips).
source benchmarks/gpu/common.sh train cluster
nvidia-smi -L; "$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
chips=${MARSCRATERS_SMOKE_CHIPS:-.devdata/small}
echo "== model forward throughput"
"$PY" benchmarks/bench_model_speed.py --accelerator --mixed --batch-size 4 16 64 --batches 5 --matmul-size ${GPU_CHECK_MATMUL:-8192} 2>&1 | tee "$OUT/model_speed.txt"
echo "== segmentation pipeline on a LocalCUDACluster"
timeout 240 "$PY" benchmarks/bench_segment.py --gpus 1 --size ${GPU_CHECK_SIZE:-8192} --rounds 2 --skip-memory --skip-whole 2>&1 \
  | grep -v "^\s*$" | tee "$OUT/segment_gpu.txt"
echo "== training speed: 448 synthetic 384-px patches per epoch, batch 16, 6 loader threads"
timeout 120 "$PY" -m marscraters -q train --dots ${GPU_CHECK_DOTS:-448} --crop 384 --batch-size 16 --epochs 4 --workers 6 --kind filled \
  --restart --out /tmp/dots > /dev/null 2>&1
cat /tmp/dots/history.csv | tee "$OUT/train_speed.csv"
"$PY" - <<'PY' > /tmp/seconds_per_epoch
import csv
rows = list(csv.DictReader(open("/tmp/dots/history.csv")))
print(min(float(r["seconds_per_epoch"]) for r in (rows[1:] or rows)))
PY
echo "seconds per epoch (best after the first): $(cat /tmp/seconds_per_epoch)"
echo "== training smoke on real chips (fine-tune, outline targets, crater F1 each epoch)"
timeout 120 "$PY" -m marscraters -q train --chips "$chips" --train 0:40 --val 40:50 --kind outline \
  --init marscraters/weights/symmetric_unet.keras --crop 384 --batch-size 16 --epochs 2 --workers 6 \
  --score-every 1 --learning-rate 3e-4 --restart --out /tmp/smoke 2>&1 | tail -20
cat /tmp/smoke/history.csv
echo "== detect end to end against the raw network, in float32 and bfloat16 (THEMIS validation chips 440-499)"
# needs the real chips: MARSCRATERS_SHARED_DATA=shared/data; the ratio detect / network is the issue's
# "end to end against the raw network" (detect also runs the pyramid's second level: 1.25x the pixels)
timeout 300 "$PY" benchmarks/bench_precision.py --no-ctx --json "$OUT/bench_precision_gpu.json" 2>&1 | tail -4
echo "== the circle finder on the device (Keras ops) against the host's numpy, and detect with each (THEMIS chips 440-499)"
timeout 300 "$PY" benchmarks/bench_finder_engine.py --json "$OUT/bench_finder_engine_gpu.json" 2>&1 | tail -3
