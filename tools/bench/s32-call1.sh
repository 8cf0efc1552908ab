#!/usr/bin/env bash
# Twenty-ninth session, call 1 (any GPU). The engine's fp16 CPU update: the three fp32-state passes timed side by side
# (bench-adam), `calibrate --host-only` (which now measures the fp16 pass, cpu.adam_fp16_params_per_s), then the fp16 and
# bf16 rows of s31-call1.sh planned with that calibration. On an H200: issue 13's acceptance grid (s30-call1.sh's H200 branch).
# Pack first: bash tools/device/pack.sh .device (carry it).
set -u
out=${OUT:-/tmp/s32}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
# The grid needs about 560 s; a shorter call runs the fp16 rows on the H200 too, against its own bundled profile.
if [[ $name == *H200* && ${DEADLINE:-580} -ge 560 ]]; then DEADLINE=${DEADLINE:-580} OUT=$out bash tools/bench/s30-call1.sh; exit 0; fi
base=h100-1x-vm; [[ $name == *H200* ]] && base=h200-1x-calibrated
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
bash .device/run.sh --version > /dev/null 2>&1 || true
# bench-adam only on a long call: calibrate measures the same three passes.
[ ${DEADLINE:-560} -ge 350 ] && timeout 120 bash .device/run.sh bench-adam --kernel fp32,bf16,fp16 --sub-group 19.7M,32M --seconds 3 2>&1 | grep "per call:" | tee "$out/bench-adam.txt"
timeout 150 bash .device/run.sh calibrate --host-only --base $base --out "$out/cal.json" > "$out/cal.log" 2>&1; echo "calibrate rc=$?"
grep -i "adam" "$out/cal.log" | cut -c1-400
prof=$out/cal.json; [ -s "$prof" ] || prof=$base
row() { # name, then train flags
  local n=$1; shift
  timeout 150 bash .device/run.sh train --device cuda --seq-len 1024 --hardware "$prof" --runs-dir /tmp/s32runs --run-id "$n" --json "$@" \
    > /tmp/s32-$n.json 2> /tmp/s32-$n.err
  python3 tools/bench/summary_line.py /tmp/s32-$n.json "$n" "$SECONDS"
}
go() { [ $(( ${DEADLINE:-560} - SECONDS )) -gt $1 ]; }
go 60 && row f16-g2l-mb4-ds --precision fp16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --steps 6
go 60 && row b16-g2l-mb4-ds --precision bf16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --steps 6
go 60 && row f16-g2l-mb4-delayed --precision fp16 --model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 4 --schedule delayed --steps 6
go 45 && row f16-g2m-mb4-optcpu --precision fp16 --model gpt2-medium --offload-optimizer cpu --micro-batch 4 --steps 6
go 45 && row b16-g2m-mb4-acc2-optcpu --precision bf16 --model gpt2-medium --offload-optimizer cpu --micro-batch 4 --grad-accumulation 2 --steps 5
go 45 && row f16-g2m-mb4 --precision fp16 --model gpt2-medium --micro-batch 4 --steps 8
go 45 && row b16-g2m-mb4 --precision bf16 --model gpt2-medium --micro-batch 4 --steps 8
go 60 && row f16-g2xl-11g-mb8-delayed --precision fp16 --model gpt2-xl --offload-params cpu --offload-optimizer cpu --grad-checkpointing --gpu-memory-limit 11G --micro-batch 8 --schedule delayed --steps 5
python3 tools/bench/grid_table.py /tmp/s32runs | tee "$out/table.txt"
for r in /tmp/s32runs/*; do python3 tools/bench/step_breakdown.py "$r" 2>/dev/null | sed -n '1p;5,7p' | cut -c1-220; done
tar -czf "$out/runs.tar.gz" --exclude='trace.jsonl' -C /tmp s32runs
