#!/usr/bin/env bash
# Sixteenth session, first device call: the host probes at their old size (.device-a, 64 M parameters) and sized from the
# last-level cache (.device), an A/B of spinning against sleeping waits on CUDA events on a launch-bound row beside the
# update, then issue 13's grid with --calibrate-first (the new probes). Writes everything under $OUT.
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
echo "profile=$p"
{ nvidia-smi; lscpu; cat /sys/kernel/mm/transparent_hugepage/enabled; free -g; df -h /tmp; uptime; } > "$OUT/host.txt" 2>&1
bash .device/run.sh --version > /dev/null 2>&1
for d in .device-a .device; do
  /usr/bin/time -f "%e s" bash $d/run.sh calibrate --host-only --base $p --out "$OUT/host-$(basename $d).json" 2>&1 | tail -6
done
# Spinning against sleeping waits on CUDA events, same build: .device-spin is .device's run.sh with AIOS_SPIN_WAIT=1.
mkdir -p .device-spin && sed 's#^exec #export AIOS_SPIN_WAIT=1; exec #' .device/run.sh > .device-spin/run.sh
bash tools/bench/ab.sh $p "$OUT/ab" .device-spin .device \
  "ovg2mmb2|--model gpt2-medium --offload-params cpu --offload-optimizer cpu --micro-batch 2 --schedule overlapped --steps 8" 2>&1 | tee "$OUT/ab.txt"
# FAST=1: the grid priced from the host calibration just made (the new probes), no calibrate-gpu first (its minutes go to runs).
if [ "${FAST:-0}" = 1 ]; then
  bash tools/bench/engine_grid.sh "${GRID:-tools/bench/grid-s19-h200a.txt}" --out "$OUT/g" --budget "${BUDGET:-330}" --per-run 75 --min-left 10 --profile "$OUT/host-.device.json"
else
  bash tools/bench/engine_grid.sh "${GRID:-tools/bench/grid-s19-h200a.txt}" --out "$OUT/g" --budget "${BUDGET:-330}" --per-run 75 --min-left 10 --profile $p --calibrate-first
fi
tail -25 "$OUT/g/grid.log"
