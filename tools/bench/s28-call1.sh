#!/usr/bin/env bash
# Twenty-fifth session, last call (any GPU): the GPU-only tests with deterministic kernels, then a CUDA-graph replay of
# gpt2-xl's layer forward against the eager pass (aios bench-dispatch --graph) at 1 × 8 and 1 × 1024 tokens.
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests
set -u
out=${OUT:-/tmp/s28}; mkdir -p "$out"
{ date -u; nvidia-smi --query-gpu=name --format=csv,noheader | head -1; } | tee "$out/machine.txt"
t=AiOs.Planner.Engine.Tests
timeout 150 bash .device-tests/run-tests.sh -parallel none -class $t.CopyStreamGpuTests -class $t.CpuGradientStoreGpuTests \
  -class $t.LayerwiseTrainerCheckpointOffloadTests > "$out/gpu-tests.txt" 2>&1
echo "gpu tests rc=$? at $SECONDS s" | tee -a "$out/machine.txt"
sed 's/\x1b\[[0-9;]*m//g' "$out/gpu-tests.txt" | grep -v "^\s*at " | grep -E "FAIL|Total:|Expected|Actual|Exception" | head -24
for seq in 8 1024; do
  timeout 60 bash .device/run.sh bench-dispatch --device cuda --model gpt2-xl --seq-len $seq --graph --calls 200 --repeats 5 > "$out/graph-$seq.txt" 2>&1
  echo "graph seq $seq rc=$? at $SECONDS s" | tee -a "$out/machine.txt"
  grep -E "layer_forward|graph|error" "$out/graph-$seq.txt" | head -12
done
