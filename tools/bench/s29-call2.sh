#!/usr/bin/env bash
# Twenty-sixth session, call 2 (any GPU): the resident trainer's layers replayed from CUDA graphs (--cuda-graphs). First the
# GPU-only tests (graphs against eager to the bit; the bf16 download test with clipping that no unit reaches), then eager
# against graphs, interleaved, on gpt2-xl micro-batch 1 (launch-bound), gpt2 micro-batch 8 and gpt2-xl micro-batch 8.
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests (carry both).
set -u
out=${OUT:-/tmp/s29b}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
profile=h100-1x-vm; [[ $name == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
t=AiOs.Planner.Engine.Tests
timeout 150 bash .device-tests/run-tests.sh -parallel none -class $t.LayerGraphsTests -class $t.CpuGradientStoreGpuTests > "$out/gpu-tests.txt" 2>&1
echo "gpu tests rc=$? at $SECONDS s" | tee -a "$out/machine.txt"
sed 's/\x1b\[[0-9;]*m//g' "$out/gpu-tests.txt" | grep -v "^\s*at " | grep -E "FAIL|Total:|Expected|Actual|Exception|rror" | head -30
row() { # name, then train flags
  local n=$1; shift
  timeout 170 bash .device/run.sh train --device cuda --precision bf16 --seq-len 1024 --hardware $profile --runs-dir "$out/runs" --run-id "$n" --json "$@" \
    > "$out/$n.json" 2> "$out/$n.err"
  python3 tools/bench/summary_line.py "$out/$n.json" "$n" "$SECONDS"
}
left() { [ $(( ${DEADLINE:-570} - SECONDS )) -gt $1 ]; }
for r in 1 2; do
  left 60 && row "x1-eager-$r"  --model gpt2-xl --micro-batch 1 --steps 12
  left 60 && row "x1-graphs-$r" --model gpt2-xl --micro-batch 1 --steps 12 --cuda-graphs
  left 40 && row "g8-graphs-$r" --model gpt2 --micro-batch 8 --steps 15 --cuda-graphs
  left 40 && row "g8-eager-$r"  --model gpt2 --micro-batch 8 --steps 15
  left 80 && row "x8-graphs-$r" --model gpt2-xl --micro-batch 8 --steps 8 --cuda-graphs
  left 80 && row "x8-eager-$r"  --model gpt2-xl --micro-batch 8 --steps 8
done
