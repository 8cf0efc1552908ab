#!/usr/bin/env bash
# Twenty-seventh session, call 1 (any GPU). On an H200: issue 13's acceptance grid calibrated first (grid-s19-h200a.txt).
# On an H100: the CUDA graphs' memory pool across sizes (eager against --cuda-graphs, peak device memory and step).
# Pack first: bash tools/device/pack.sh .device (carry it).
set -u
out=${OUT:-/tmp/s30}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; free -g | sed -n 2p; } | tee "$out/machine.txt"
left=$((${DEADLINE:-585} - SECONDS))
if [[ $name == *H200* ]]; then
  CAL_ARGS=${CAL_ARGS:---no-graph-replays} bash tools/bench/engine_grid.sh tools/bench/grid-s19-h200a.txt --profile h200-1x-calibrated --budget $left --min-left 40 \
    --per-run 110 --calibrate-first --out "$out/h200a" 2>&1 | tail -40
  exit 0
fi
row() { # name, then train flags
  local n=$1; shift
  timeout 120 bash .device/run.sh train --device cuda --precision ${P:-bf16} --seq-len 1024 --hardware h100-1x-vm --runs-dir /tmp/s30runs --run-id "$n" --json "$@" \
    > /tmp/s30-$n.json 2> /tmp/s30-$n.err
  python3 tools/bench/summary_line.py /tmp/s30-$n.json "$n" "$SECONDS"
}
go() { [ $(( ${DEADLINE:-585} - SECONDS )) -gt $1 ]; }
bash .device/run.sh --version > /dev/null 2>&1 || true
pairs() {
  for m in "$@"; do
    model=${m%%:*} mb=${m##*:}
    go 50 && row "$model-mb$mb-eager"  --model $model --micro-batch $mb --steps 6
    go 50 && row "$model-mb$mb-graphs" --model $model --micro-batch $mb --steps 6 --cuda-graphs
  done
}
pairs gpt2-medium:1 gpt2-large:1 llama-3.2-3b:1 gpt2-medium:4
# fp16 (loss scaling), which no grid has run: resident, and parameters and optimizer in RAM on the delayed schedule.
go 60 && P=fp16 row f16-g2m-mb4 --model gpt2-medium --micro-batch 4 --steps 8
go 60 && P=fp16 row f16-g2l-mb4-delayed --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --schedule delayed --steps 6
pairs gpt2-large:4 gpt2:1
tar -czf "$out/runs.tar.gz" -C /tmp s30runs
