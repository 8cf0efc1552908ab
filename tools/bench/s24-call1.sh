#!/usr/bin/env bash
# Twenty-second session, first device call: on an H200, issue 13's acceptance grid on the machine it names (calibrated
# first); on an H100, the accumulation rows with the host-sums thread's copy waits recorded (gpu-runs-to-do item 0),
# broken down per resource.
set -uo pipefail
cd "$(dirname "$0")/../.."
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "device: $name"
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget 540 --min-left 40 --per-run 110 --calibrate-first --out "$OUT/h200a"
else
  bash tools/bench/engine_grid.sh tools/bench/grid-s23-wait.txt --profile h100-1x-vm --budget 240 --min-left 20 --per-run 90 --out "$OUT/wait"
  for d in /tmp/aios-grid-runs/*/; do [ -f "$d/settings.json" ] && python3 tools/bench/step_breakdown.py "$d" 2>&1 | tail -40; done
fi
