#!/usr/bin/env bash
# Twenty-second session, first device call: on an H200, issue 13's acceptance grid on the machine it names (calibrated
# first); on an H100, grid-s24-shapes.txt calibrated first (the layer products' rates per shape, then fp32 and bf16 resident
# rows and the accumulation rows with the copy waits recorded), each run broken down per resource.
set -uo pipefail
cd "$(dirname "$0")/../.."
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "device: $name"
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget 540 --min-left 40 --per-run 110 --calibrate-first --out "$OUT/h200a"
else
  bash tools/bench/engine_grid.sh tools/bench/grid-s24-shapes.txt --profile h100-1x-vm --budget 560 --min-left 25 --per-run 90 --calibrate-first --out "$OUT/shapes"
  for d in /tmp/aios-grid-runs/g*/; do [ -f "$d/settings.json" ] && python3 tools/bench/step_breakdown.py "$d" 2>&1 | tail -25; done
fi
grep -h "layer products\|engine kernels:\|pass forward" "$OUT"/*/grid.log 2>/dev/null | head -60
