#!/usr/bin/env bash
# Nineteenth session, first device call: A/B of the later micro-batches' add apart from their download (the program's
# GradAccumulate; .device = head, .device-a = c0a088b, the add inside the download) on the two accumulation rows, then
# tools/bench/s20-k.sh (calibrate-gpu's interference probe and kind work ratios, first GPU run). Writes $OUT/ab.tgz, $OUT/k.tgz.
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
echo "profile=$p"; nvidia-smi --query-gpu=name --format=csv,noheader
bash .device/run.sh --version > /dev/null 2>&1; bash .device-a/run.sh --version > /dev/null 2>&1
bash tools/bench/ab.sh "$p" "$OUT/ab" .device-a .device \
  "g2m-acc4-ds|--model gpt2-medium --offload-params cpu --offload-optimizer cpu --grad-checkpointing --micro-batch 8 --grad-accumulation 4 --steps 5" \
  "g2l-mb1-acc4-ov|--model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 1 --grad-accumulation 4 --schedule overlapped --steps 5"
for d in "$OUT"/ab/runs/*/; do
  python3 - "$d" <<'PY'
import json, sys, os
d = sys.argv[1]
try:
    pred = json.load(open(os.path.join(d, "prediction.json")))["step"]["time_s"] * 1e3
    summary = json.load(open(os.path.join(d, "summary.json")))
    meas = summary["median_step_ms"]
    print(f"{os.path.basename(d.rstrip('/')):28s} predicted {pred:8.1f} ms  measured {meas:8.1f} ms  error {(pred - meas) / meas * 100:+6.1f}%  final loss {summary['final_loss']:.6f}")
except Exception as e: print(d, "unreadable", e)
PY
done
# The later micro-batches' add without copy streams (the download packs, the add copies down synchronously).
timeout 120 bash .device/run.sh train --device cuda --hardware "$p" --runs-dir "$OUT/ab/runs" --run-id g2m-acc4-nocopy --no-copy-stream \
  --model gpt2-medium --offload-params cpu --offload-optimizer cpu --grad-checkpointing --micro-batch 8 --grad-accumulation 4 --steps 3 > "$OUT/ab/nocopy.log" 2>&1; echo "no-copy-stream rc=$?"; tail -3 "$OUT/ab/nocopy.log"
(cd "$OUT" && tar czf ab.tgz ab && rm -rf ab)
bash tools/bench/s20-k.sh
