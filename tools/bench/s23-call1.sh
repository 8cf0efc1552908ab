#!/usr/bin/env bash
# Twenty-first session, first device call: on an H200, issue 13's acceptance grid on the machine it names (calibrated
# first); on an H100, the gradient-sum probe beside copies and the accumulation rows that test it (gpu-runs-to-do item 0)
# and the adds beside the updates (item 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "device: $name"
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget 540 --min-left 40 --per-run 110 --calibrate-first --out "$OUT/h200a"
else
  bash tools/bench/engine_grid.sh tools/bench/grid-s22-adds.txt --profile h100-1x-vm --budget 520 --min-left 30 --calibrate-first --out "$OUT/adds"
fi
# The next call on this machine (s23-call2.sh) plans with this calibration instead of measuring again.
for f in "$OUT"/*/calibrated.json; do [ -f "$f" ] && cp "$f" /tmp/s23-calibrated.json; done
