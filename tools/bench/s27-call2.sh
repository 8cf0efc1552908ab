#!/usr/bin/env bash
# Twenty-fifth session, call 2 (right after call 1, same machine): issue 16's compare for gpt2-xl at micro-batch 1 and 8
# (the rows left to read on the H200), one repeat, with the bench-dispatch figures of call 1 beside them. COMPARE_ONLY
# overrides the settings (an extended regular expression over "model mb N"). Pack first: bash tools/device/pack.sh .device
set -u
out=${OUT:-/tmp/s27b}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
profile=h100-1x-vm; [[ $name == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
timeout 575 bash tools/bench/compare.sh --out "$out/cmp" --repeats 1 --only "${COMPARE_ONLY:-^gpt2-xl mb (1|8)$}" \
  --engine-args "--hardware $profile" > "$out/compare.log" 2>&1
echo "compare rc=$? at $SECONDS s" >> "$out/compare.log"
tail -30 "$out/compare.log"
