#!/usr/bin/env bash
# Twenty-fifth session, call 1. First the host's cost per call on this GPU (aios bench-dispatch: one operation, one recording
# autograd, one backward node, one autograd call, gpt2-xl's layer operations and passes), which splits the launch-bound gpt2-xl
# micro-batch 1 step's host time into its parts. Then, on an H200, issue 13's acceptance grid calibrated first; on an H100,
# tools/bench/s26-call2.sh (A/B of the twenty-fourth session's changes, issue 16's offloaded target, calibrate-gpu).
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests
set -u
out=${OUT:-/tmp/s27}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
for model in gpt2-xl gpt2; do
  timeout 60 bash .device/run.sh bench-dispatch --device cuda --precision bf16 --model $model > "$out/dispatch-$model.txt" 2>&1
  echo "dispatch $model rc=$? at $SECONDS s" >> "$out/machine.txt"
done
# libtorch's addmm with a bias goes through cublasLt (a heuristic query per call); DISABLE_ADDMM_CUDA_LT=1 takes plain cuBLAS.
DISABLE_ADDMM_CUDA_LT=1 timeout 60 bash .device/run.sh bench-dispatch --device cuda --precision bf16 --model gpt2-xl > "$out/dispatch-gpt2-xl-nolt.txt" 2>&1
echo "dispatch gpt2-xl without cublasLt rc=$? at $SECONDS s" >> "$out/machine.txt"
sed -n '/┌/,/└/p' "$out/dispatch-gpt2-xl.txt" "$out/dispatch-gpt2-xl-nolt.txt"
# For a later CUDA-graph path: what libtorch exports for graph capture and stream selection (names only).
torchlib=$(python3 -c 'import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin),"lib"))')
for lib in libtorch_cuda.so libc10_cuda.so; do nm -D --defined-only "$torchlib/$lib" 2>/dev/null | grep -E "CUDAGraph|setCurrentCUDAStream|getStreamFromPool|getCurrentCUDAStream|MemPool" ; done > "$out/graph-symbols.txt"
wc -l "$out/graph-symbols.txt"
# The engine's GPU-only tests ([GpuTheory]: skipped where CI runs), packed by tools/device/pack-tests.sh (carry .device-tests).
if [ -f .device-tests/run-tests.sh ]; then
  t=AiOs.Planner.Engine.Tests
  timeout 200 bash .device-tests/run-tests.sh -parallel none -class $t.GradientNormsGpuTests -class $t.FusedCudaAdamW8bitGpuTests \
    -class $t.CopyStreamGpuTests -class $t.CpuGradientStoreGpuTests -class $t.LayerwiseTrainerCheckpointOffloadTests > "$out/gpu-tests.txt" 2>&1
  echo "gpu tests rc=$? at $SECONDS s" >> "$out/machine.txt"
  grep -E "\[FAIL\]|Total:" "$out/gpu-tests.txt" | head -20
fi
left=$((${DEADLINE:-575} - SECONDS))
if [[ $name == *H200* ]]; then
  bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget $left --min-left 40 --per-run 110 --calibrate-first --out "$out/h200a" 2>&1 | tail -40
else
  DEADLINE=$left OUT=$out bash tools/bench/s26-call2.sh 2>&1 | tail -40
fi
