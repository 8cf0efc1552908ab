#!/usr/bin/env bash
# Twenty-fourth session, call 1. On an H200: issue 13's acceptance grid (tools/bench/s24-call1.sh, calibrated first). On an
# H100: the final resident build (rows inside the layer, losses and norms in one copy, one sum) against PyTorch eager and
# torch.compile on all five of issue 16's settings (compare.sh, one repeat). Pack first: bash tools/device/pack.sh .device
set -u
out=${OUT:-/tmp/s26}; mkdir -p "$out"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
{ date -u; echo "$name"; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
if [[ $name == *H200* ]]; then bash tools/bench/s24-call1.sh; exit; fi
timeout 570 bash tools/bench/compare.sh --out "$out/cmp" --repeats 1 --engine-args "--hardware h100-1x-vm" > "$out/compare.log" 2>&1
echo "compare rc=$? at $SECONDS s" >> "$out/compare.log"
tail -30 "$out/compare.log"
