#!/usr/bin/env bash
# Twenty-seventh session, call 2 (the H200). Issue 13's `deepspeed` executor on the machine it names: the PyTorch eager
# sweep (GPT-2 family, micro-batch 1, 4 and 8, bf16 and fp32, with and without checkpointing; then the launch-bound
# settings once more), as docs/calibration.md runs it on the H100, for `aios fit-eager` here afterwards. Then, with the
# time left, issue 16's compare for gpt2 at micro-batch 8 with the current engine.
# Pack first: bash tools/device/pack.sh .device (carry it).
set -u
out=${OUT:-/tmp/s30b}; mkdir -p "$out"
{ date -u; nvidia-smi --query-gpu=name --format=csv,noheader; lscpu | grep "Model name"; nproc; } | tee "$out/machine.txt"
python3 tools/bench/torch_baselines.py --model gpt2,gpt2-medium,gpt2-large,gpt2-xl --micro-batch 1,4,8 \
  --precision bf16,fp32 --checkpointing both --mode eager --warmup 3 --steps 10 --budget-s 330 --out "$out/eager1.jsonl" > "$out/eager1.log" 2>&1
echo "eager sweep 1 rc=$? at $SECONDS s; $(wc -l < "$out/eager1.jsonl") lines"
python3 tools/bench/torch_baselines.py --model gpt2,gpt2-medium,gpt2-large,gpt2-xl --micro-batch 1,4 \
  --precision bf16 --checkpointing both --mode eager --warmup 3 --steps 10 --budget-s 100 --out "$out/eager2.jsonl" > "$out/eager2.log" 2>&1
echo "eager sweep 2 rc=$? at $SECONDS s; $(wc -l < "$out/eager2.jsonl") lines"
python3 - "$out" <<'PY'
import json, sys
for f in ("eager1.jsonl", "eager2.jsonl"):
    for line in open(f"{sys.argv[1]}/{f}"):
        d = json.loads(line)
        print(f"{d['model']:12s} mb {d['micro_batch']} {d.get('precision','bf16'):4s} ckpt {str(d.get('grad_checkpointing', False)):5s} "
              f"{d.get('median_ms') or 0:8.1f} ms {d.get('error') or ''}")
PY
left=$((${DEADLINE:-585} - SECONDS))
[ $left -gt 120 ] && timeout $((left - 10)) bash tools/bench/compare.sh --repeats 1 --steps 15 --only '^gpt2 mb 8$' --out "$out/compare" \
  --engine-args "--hardware h200-1x-calibrated --cuda-graphs" 2>&1 | tail -8
rm -rf "$out/compare/runs"; ls -R "$out" | head -20
