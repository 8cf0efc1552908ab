#!/usr/bin/env bash
# Twenty-eighth session, call 1 (any GPU). On an H200: issue 13's acceptance grid (tools/bench/s30-call1.sh's H200 branch).
# Elsewhere: the fp16 CPU update after the vectorised cast (b5b6a38), beside bf16 at the same settings, and the resident
# fp16 row; then the graphs' memory pairs no earlier call ran.
# Pack first: bash tools/device/pack.sh .device (carry it).
set -u
out=${OUT:-/tmp/s31}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [[ $name == *H200* ]]; then DEADLINE=${DEADLINE:-580} OUT=$out bash tools/bench/s30-call1.sh; exit 0; fi
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
row() { # name, then train flags
  local n=$1; shift
  timeout 150 bash .device/run.sh train --device cuda --seq-len 1024 --hardware h100-1x-vm --runs-dir /tmp/s31runs --run-id "$n" --json "$@" \
    > /tmp/s31-$n.json 2> /tmp/s31-$n.err
  python3 tools/bench/summary_line.py /tmp/s31-$n.json "$n" "$SECONDS"
}
go() { [ $(( ${DEADLINE:-560} - SECONDS )) -gt $1 ]; }
bash .device/run.sh --version > /dev/null 2>&1 || true
go 60 && row f16-g2l-mb4-delayed --precision fp16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --schedule delayed --steps 6
go 60 && row b16-g2l-mb4-delayed --precision bf16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --schedule delayed --steps 6
go 60 && row f16-g2l-mb4-ds --precision fp16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --steps 6
go 60 && row b16-g2l-mb4-ds --precision bf16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --steps 6
go 45 && row f16-g2m-mb4 --precision fp16 --model gpt2-medium --micro-batch 4 --steps 8
go 45 && row f16-g2m-mb4-optcpu --precision fp16 --model gpt2-medium --offload-optimizer cpu --micro-batch 4 --steps 6
go 45 && row b16-g2m-mb4-optcpu --precision bf16 --model gpt2-medium --offload-optimizer cpu --micro-batch 4 --steps 6
for r in /tmp/s31runs/*; do python3 tools/bench/step_breakdown.py "$r" 2>/dev/null | sed -n '1p;5,7p' | cut -c1-220; done
tar -czf "$out/runs.tar.gz" -C /tmp s31runs
