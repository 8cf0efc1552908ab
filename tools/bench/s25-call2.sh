#!/usr/bin/env bash
# Twenty-third session, call 2 (issue 16): the gradient-norm kernel and the bias in the product as an A/B (AIOS_NORM_KERNEL=0
# AIOS_SEPARATE_BIAS=1 restore the tensor ops' Σg² and the separate bias kernel) on
# gpt2, gpt2-medium and gpt2-xl at micro-batch 8 and gpt2-xl at 1, two interleaved rounds; one step of gpt2-xl mb 1 under
# Nsight Compute (launches per step after the kernel); then eager, torch.compile and the engine for gpt2 mb 8, and the engine
# once more on its own after them. Pack first: bash tools/device/pack.sh .device
set -u
out=${OUT:-/tmp/s25}; mkdir -p "$out"
runs=/tmp/aios-s25b; mkdir -p "$runs"
log=$out/call2.log
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
profile=h100-1x-vm; [[ "$gpu" == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$gpu"; lscpu | grep "Model name"; nproc; } >> "$log"
eng() { # id env model mb steps [runs]
  local id=$1 envs=$2 model=$3 mb=$4 steps=$5 dir=${6:-$runs}
  env $envs timeout 150 bash .device/run.sh train --device cuda --model "$model" --micro-batch "$mb" --seq-len 1024 --precision bf16 \
    --steps "$steps" --runs-dir "$dir" --run-id "$id" --hardware "$profile" --json > "$dir/$id.log" 2>&1
  python3 - "$dir/$id" "$id" "$envs" >> "$log" <<'PY'
import json, sys, statistics
run, id, envs = sys.argv[1:4]
try:
    m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()][5:]
    med = lambda k: statistics.median(x[k] for x in m)
    print(f"{id:30s} {envs:40s} wall {med('wall_ms'):8.2f} ms  fwd {med('forward_ms'):7.2f} bwd {med('backward_ms'):7.2f} opt {med('optimizer_ms'):6.2f}  loss {m[-1]['loss']:.5f}")
except Exception as e:
    print(f"{id}: failed ({e})")
PY
}
for r in 1 2; do
  for m in "gpt2-xl 1" "gpt2 8" "gpt2-medium 8" "gpt2-xl 8"; do
    read -r model mb <<<"$m"
    if [ "$r" = 1 ]; then order="new old"; else order="old new"; fi
    steps=25; [ "$model $mb" = "gpt2-xl 8" ] && steps=12
    for v in $order; do
      envs="AIOS_NOTHING=1"; [ "$v" = old ] && envs="AIOS_NORM_KERNEL=0 AIOS_SEPARATE_BIAS=1"
      eng "$v-$model-mb$mb-r$r" "$envs" "$model" "$mb" "$steps"
    done
  done
done
grep -h "gradient-norm kernel" "$runs"/*.log | sort | uniq -c >> "$log"
echo "A/B done at $SECONDS s" >> "$log"
AIOS_CUDA_PROFILE_STEP=4 timeout 150 /usr/local/cuda/bin/ncu --profile-from-start off --target-processes all --metrics gpu__time_duration.sum --csv \
  --log-file "$out/ncu2-gpt2-xl-mb1.csv" bash .device/run.sh train --device cuda --model gpt2-xl --micro-batch 1 --seq-len 1024 \
  --precision bf16 --steps 4 --runs-dir "$runs" --run-id ncu-xl --hardware "$profile" > "$runs/ncu-xl.log" 2>&1
echo "ncu rc=$? at $SECONDS s, $(grep -c gpu__time_duration "$out/ncu2-gpt2-xl-mb1.csv" 2>/dev/null) kernels" >> "$log"
gzip -f "$out"/ncu2-*.csv 2>/dev/null
if [ "$SECONDS" -lt 420 ]; then
  timeout $((540 - SECONDS)) bash tools/bench/compare.sh --out "$out/cmp2" --repeats 1 --only '^gpt2 mb 8$' --engine-args "--hardware $profile" >> "$log" 2>&1
  echo "compare done at $SECONDS s" >> "$log"
  eng "after-compare-gpt2-mb8" "AIOS_NOTHING=1" gpt2 8 25
fi
tar -czf "$out/runs.tar.gz" -C /tmp aios-s25b 2>/dev/null
cat "$log"
