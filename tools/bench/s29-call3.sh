#!/usr/bin/env bash
# Twenty-sixth session, call 3 (any GPU): --cuda-graphs after the gradient-buffer and warm-up fixes. The GPU-only graph tests,
# eager against graphs once more (device memory), then issue 16's compare (PyTorch eager, torch.compile, the engine with
# --cuda-graphs) for gpt2 micro-batch 8 and gpt2-xl micro-batch 1, one repeat.
# Pack first: bash tools/device/pack.sh .device && bash tools/device/pack-tests.sh .device-tests (carry both).
set -u
out=${OUT:-/tmp/s29c}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
profile=h100-1x-vm; [[ $name == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
t=AiOs.Planner.Engine.Tests
timeout 120 bash .device-tests/run-tests.sh -parallel none -class $t.LayerGraphsTests > "$out/gpu-tests.txt" 2>&1
echo "gpu tests rc=$? at $SECONDS s" | tee -a "$out/machine.txt"
sed 's/\x1b\[[0-9;]*m//g' "$out/gpu-tests.txt" | grep -v "^\s*at " | grep -E "FAIL|Total:|Expected|Actual|Exception|rror" | head -20
row() {
  local n=$1; shift
  timeout 120 bash .device/run.sh train --device cuda --precision bf16 --seq-len 1024 --hardware $profile --runs-dir "$out/runs" --run-id "$n" --json "$@" \
    > "$out/$n.json" 2> "$out/$n.err"
  python3 tools/bench/summary_line.py "$out/$n.json" "$n" "$SECONDS"
}
row x1-graphs --model gpt2-xl --micro-batch 1 --steps 10 --cuda-graphs
row x1-eager  --model gpt2-xl --micro-batch 1 --steps 10
row g8-graphs --model gpt2 --micro-batch 8 --steps 12 --cuda-graphs
row g8-eager  --model gpt2 --micro-batch 8 --steps 12
row l1-graphs --model tools/bench/models/llama-3.2-1b/config.json --micro-batch 1 --steps 8 --cuda-graphs
row l1-eager  --model tools/bench/models/llama-3.2-1b/config.json --micro-batch 1 --steps 8
timeout $(( 440 - SECONDS )) bash tools/bench/compare.sh --out "$out/cmp" --repeats 1 --only '^(gpt2 mb 8|gpt2-xl mb 1)$' \
  --engine-args "--hardware $profile --cuda-graphs" > "$out/compare.log" 2>&1
echo "compare rc=$? at $SECONDS s" >> "$out/compare.log"
tail -14 "$out/compare.log"
# The device returns a limited number of files: keep the summaries, drop the run folders' traces.
rm -rf "$out/runs"; find "$out/cmp" -mindepth 2 -type f ! -name summary.json -delete 2>/dev/null; find "$out" -type f | wc -l
