#!/usr/bin/env bash
# Sixteenth session, first device call: the host probes at their old size (.device-a, 64 M parameters) and sized from the
# last-level cache (.device), an A/B of one set of CPU workers for every pass on the accumulation row beside the update,
# then issue 13's grid with --calibrate-first (the new probes). Writes everything under $OUT.
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
echo "profile=$p"
{ nvidia-smi; lscpu; cat /sys/kernel/mm/transparent_hugepage/enabled; free -g; df -h /tmp; uptime; } > "$OUT/host.txt" 2>&1
bash .device/run.sh --version > /dev/null 2>&1
for d in .device-a .device; do
  /usr/bin/time -f "%e s" bash $d/run.sh calibrate --host-only --base $p --out "$OUT/host-$(basename $d).json" 2>&1 | tail -6
done
bash tools/bench/ab.sh $p "$OUT/ab" .device-a .device \
  "acc4ov|--model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 1 --grad-accumulation 4 --schedule overlapped --steps 5" 2>&1 | tee "$OUT/ab.txt"
bash tools/bench/engine_grid.sh "${GRID:-tools/bench/grid-s19-h200a.txt}" --out "$OUT/g" --budget "${BUDGET:-330}" --per-run 75 --min-left 10 --profile $p --calibrate-first
tail -25 "$OUT/g/grid.log"
