#!/usr/bin/env bash
# The 13B auto-tuned run with the host's memory sampled every 2 s beside it (it ended "Out of memory." 73 s in on the
# H100 VM, 2026-12-05): where the RSS grows before it dies. usage: tools/bench/mem13b.sh OUTDIR PROFILE
out=$1 profile=$2; mkdir -p "$out" /tmp/aios-grid-nvme
( while sleep 2; do pid=$(pgrep -f "aios.dll train" | head -1); echo "$(date +%s) $(grep -E 'MemAvailable' /proc/meminfo | awk '{print $2}') ${pid:+$(ps -o rss= -p $pid)}"; done ) > "$out/mem.log" &
sampler=$!
timeout 240 bash .device/run.sh train --model llama-2-13b --auto-tune --tune-max-micro-batch 1 --allow-8bit-optimizer \
  --gpu-memory-limit 11G --nvme-offload-path /tmp/aios-grid-nvme --steps 3 --hardware "profiles/$profile.json" --device cuda \
  --runs-dir "$out/runs" --run-id l13b > "$out/train.log" 2>&1
echo "rc=$?" >> "$out/train.log"
kill $sampler; rm -rf /tmp/aios-grid-nvme
