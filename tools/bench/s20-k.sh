#!/usr/bin/env bash
# Seventeenth session, last device call: calibrate-gpu with the new probe of the CPU update beside pinned copies
# (host_link.cpu_update_bytes_lost_per_copied_byte), then one DeepSpeed-schedule row (the update alone) and two delayed rows
# (the update beside the copies) priced with that profile. Writes $OUT/k.tgz.
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
mkdir -p "$OUT/k"; cp "profiles/$p.json" "$OUT/k/calibrated.json"
{ nvidia-smi --query-gpu=name --format=csv,noheader; lscpu | grep -E "Model name|L3|NUMA node\(s\)"; uptime; } > "$OUT/k/host.txt" 2>&1
timeout 180 bash .device/run.sh calibrate-gpu --out "$OUT/k/calibrated.json" --family gpt2 --precision bf16 > "$OUT/k/calibrate-gpu.log" 2>&1; echo "calibrate-gpu rc=$?"
grep -E "beside|lost|work of|floors of" "$OUT/k/calibrate-gpu.log" | head -12
grep -A3 cpu_update_bytes_lost "$OUT/k/calibrated.json" | head -4
cat > /tmp/k-grid.txt <<'G'
c-g2l-11g-mb8-ds         --model gpt2-large --offload-params cpu --offload-optimizer cpu --grad-checkpointing --gpu-memory-limit 11G --micro-batch 8 --steps 5
c-g2xl-11g-mb8-delayed   --model gpt2-xl --offload-params cpu --offload-optimizer cpu --grad-checkpointing --gpu-memory-limit 11G --micro-batch 8 --schedule delayed --steps 5
o-g1b-11g-mb4-delayed    --model tools/bench/models/gpt2-1b-w1536/config.json --offload-params cpu --offload-optimizer cpu --grad-checkpointing --gpu-memory-limit 11G --micro-batch 4 --schedule delayed --steps 6
G
bash tools/bench/engine_grid.sh /tmp/k-grid.txt --out "$OUT/k/g" --budget 100 --per-run 45 --min-left 10 --profile "$OUT/k/calibrated.json" > /dev/null 2>&1
grep "^== " "$OUT/k/g/grid.log"
cd "$OUT" && tar czf k.tgz k && rm -rf k
