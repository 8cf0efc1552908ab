#!/usr/bin/env bash
# Twenty-sixth session, call 1 (any GPU). The engine's GPU-only tests with deterministic kernels first (under a minute),
# then on an H200 issue 13's acceptance grid calibrated first (grid-s19-h200a.txt); on an H100 nothing more.
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests (carry both).
set -u
out=${OUT:-/tmp/s29}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; free -g | sed -n 2p; } | tee "$out/machine.txt"
t=AiOs.Planner.Engine.Tests
timeout 150 bash .device-tests/run-tests.sh -parallel none -class $t.GradientNormsGpuTests -class $t.FusedCudaAdamW8bitGpuTests \
  -class $t.CopyStreamGpuTests -class $t.CpuGradientStoreGpuTests -class $t.LayerwiseTrainerCheckpointOffloadTests > "$out/gpu-tests.txt" 2>&1
echo "gpu tests rc=$? at $SECONDS s" | tee -a "$out/machine.txt"
sed 's/\x1b\[[0-9;]*m//g' "$out/gpu-tests.txt" | grep -v "^\s*at " | grep -E "FAIL|Total:|Expected|Actual" | head -24
left=$((${DEADLINE:-580} - SECONDS))
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget $left --min-left 40 \
    --per-run 110 --calibrate-first --out "$out/h200a" 2>&1 | tail -40
fi
