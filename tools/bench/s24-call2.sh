#!/usr/bin/env bash
# Twenty-second session, a short second call: on an H200, the first rows of issue 13's acceptance grid priced with the bundled
# H200 profile (no time to calibrate first); on an H100, grid-s24-repeat.txt: launch-bound and host-bound rows three times,
# interleaved, each priced with the bundled h100-1x-vm profile and re-priced later with whatever calibration applies.
set -uo pipefail
cd "$(dirname "$0")/../.."
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "device: $name"
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget 330 --min-left 20 --per-run 90 --out "$OUT/h200a"
else
  bash tools/bench/engine_grid.sh tools/bench/grid-s24-repeat.txt --profile h100-1x-vm --budget 300 --min-left 20 --per-run 60 --out "$OUT/repeat"
fi
