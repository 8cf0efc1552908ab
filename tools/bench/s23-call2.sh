#!/usr/bin/env bash
# Twenty-first session, second device call: the out-of-sample grid (grid-s23-oos.txt), planned with the calibration the
# first call wrote on this machine (/tmp/s23-calibrated.json) or, on a fresh machine, calibrated first.
set -uo pipefail
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
if [ -f /tmp/s23-calibrated.json ]; then
  cp /tmp/s23-calibrated.json "$OUT/calibrated-used.json"
  bash tools/bench/engine_grid.sh tools/bench/grid-s23-oos.txt --profile /tmp/s23-calibrated.json --budget 560 --min-left 30 --per-run 120 --out "$OUT/oos"
else
  bash tools/bench/engine_grid.sh tools/bench/grid-s23-oos.txt --profile h100-1x-vm --budget 560 --min-left 30 --per-run 120 --calibrate-first --out "$OUT/oos"
fi
