#!/usr/bin/env bash
# Twenty-seventh session, call 3 (any GPU): the layer's passes replayed from CUDA graphs in `calibrate-gpu` (graph_work).
# The probe's GPU test first, then calibrate-gpu on a copy of the bundled profile (its replayed passes and fitted multipliers
# printed), then --cuda-graphs runs whose plans are redone here with the calibrated profile (cal.json comes back).
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests (carry both).
set -u
out=${OUT:-/tmp/s30c}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
profile=h100-1x-vm; [[ $name == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 120 bash .device-tests/run-tests.sh -parallel none -class AiOs.Planner.Engine.Tests.EngineKernelProbeReplayTests > /tmp/s30c-tests.txt 2>&1
  echo "gpu tests rc=$? at $SECONDS s"
  sed 's/\x1b\[[0-9;]*m//g' /tmp/s30c-tests.txt | grep -v "^\s*at " | grep -E "FAIL|Total:|Expected|Actual|Exception|rror" | head -12
fi
cp "profiles/$profile.json" "$out/cal.json"
timeout ${CAL_TIMEOUT:-300} bash .device/run.sh calibrate-gpu --out "$out/cal.json" --family gpt2 --precision bf16 ${CAL_ARGS:-} > "$out/cal.log" 2>&1
echo "calibrate-gpu rc=$? at $SECONDS s"
grep -E "replayed|warning|rror|efficiency|R²" "$out/cal.log" | head -40
row() { # name, then train flags
  local n=$1; shift
  timeout 120 bash .device/run.sh train --device cuda --precision bf16 --seq-len 1024 --hardware "$out/cal.json" --runs-dir /tmp/s30c-runs --run-id "$n" --json "$@" \
    > /tmp/s30c-$n.json 2> /tmp/s30c-$n.err
  python3 tools/bench/summary_line.py /tmp/s30c-$n.json "$n" "$SECONDS"
}
go() { [ $(( ${DEADLINE:-570} - SECONDS )) -gt $1 ]; }
go 60 && row x1-graphs --model gpt2-xl --micro-batch 1 --steps 12 --cuda-graphs
go 45 && row g8-graphs --model gpt2 --micro-batch 8 --steps 15 --cuda-graphs
go 45 && row m2-graphs --model gpt2-medium --micro-batch 2 --steps 12 --cuda-graphs
go 60 && row l1-graphs --model llama-3.2-3b --micro-batch 1 --steps 10 --cuda-graphs
go 45 && row k1-graphs --model gpt2-large --micro-batch 1 --steps 12 --cuda-graphs
go 45 && row s4-graphs --model gpt2 --micro-batch 4 --steps 15 --cuda-graphs
