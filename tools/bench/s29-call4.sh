#!/usr/bin/env bash
# Twenty-sixth session, call 4 (an H200, with what device time was left): issue 16's compare for gpt2-xl at micro-batch 1
# with --cuda-graphs on the machine the issue names. Pack first: bash tools/device/pack.sh .device
set -u
out=${OUT:-/tmp/s29d}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
profile=h100-1x-vm; [[ $name == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$name"; } | tee "$out/machine.txt"
timeout $(( ${DEADLINE:-250} - SECONDS )) bash tools/bench/compare.sh --out "$out/cmp" --repeats 1 --steps 12 --only '^gpt2-xl mb 1$' \
  --engine-args "--hardware $profile --cuda-graphs" > "$out/compare.log" 2>&1
echo "compare rc=$? at $SECONDS s" >> "$out/compare.log"
grep -v loss_type "$out/compare.log" | tail -8
rm -rf "$out/cmp/runs"
