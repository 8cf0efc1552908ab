#!/usr/bin/env bash
# Twenty-third session, call 1 (issue 16): the resident trainer's loss read moved from the end of each forward to the update,
# as an A/B (AIOS_LOSS_AT_FORWARD=1 restores the old read), on gpt2 and gpt2-medium at micro-batch 8 and gpt2-xl at 1, two
# interleaved rounds; then one step of gpt2 mb 8 and of gpt2-xl mb 1 under Nsight Compute (every kernel's device time and the
# launch count per step); then eager and torch.compile for gpt2 mb 8 if time is left. Pack first: bash tools/device/pack.sh .device
set -u
out=${OUT:-/tmp/s25}; mkdir -p "$out"
runs=/tmp/aios-s25; mkdir -p "$runs"
log=$out/call1.log
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
profile=h100-1x-vm; [[ "$gpu" == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$gpu"; lscpu | grep "Model name"; nproc; } >> "$log"
eng() { # id env model mb steps
  local id=$1 envs=$2 model=$3 mb=$4 steps=$5
  env $envs timeout 150 bash .device/run.sh train --device cuda --model "$model" --micro-batch "$mb" --seq-len 1024 --precision bf16 \
    --steps "$steps" --runs-dir "$runs" --run-id "$id" --hardware "$profile" --json > "$runs/$id.log" 2>&1
  python3 - "$runs/$id" "$id" "$envs" >> "$log" <<'PY'
import json, sys, statistics
run, id, envs = sys.argv[1:4]
try:
    ms = [json.loads(l)["step_ms"] for l in open(run + "/metrics.jsonl") if l.strip()][5:]
    s = json.load(open(run + "/summary.json"))
    print(f"{id:28s} {envs:24s} median {statistics.median(ms):8.2f} ms  p10 {sorted(ms)[len(ms)//10]:8.2f}  fwd {s.get('mean_forward_ms',0):7.2f} bwd {s.get('mean_backward_ms',0):7.2f} opt {s.get('mean_optimizer_ms',0):6.2f}  load {s.get('load_average_start')}")
except Exception as e:
    print(f"{id}: failed ({e})")
PY
}
for r in 1 2; do
  for m in "gpt2 8" "gpt2-medium 8" "gpt2-xl 1"; do
    read -r model mb <<<"$m"
    if [ "$r" = 1 ]; then order="new old"; else order="old new"; fi
    for v in $order; do
      envs="AIOS_NOTHING=1"; [ "$v" = old ] && envs="AIOS_LOSS_AT_FORWARD=1"
      eng "$v-$model-mb$mb-r$r" "$envs" "$model" "$mb" 25
    done
  done
done
echo "A/B done at $SECONDS s" >> "$log"
ncu=/usr/local/cuda/bin/ncu
for m in "gpt2 8" "gpt2-xl 1"; do
  read -r model mb <<<"$m"
  AIOS_CUDA_PROFILE_STEP=4 timeout 200 "$ncu" --profile-from-start off --target-processes all --metrics gpu__time_duration.sum --csv \
    --log-file "$out/ncu-$model-mb$mb.csv" bash .device/run.sh train --device cuda --model "$model" --micro-batch "$mb" --seq-len 1024 \
    --precision bf16 --steps 4 --runs-dir "$runs" --run-id "ncu-$model" --hardware "$profile" > "$runs/ncu-$model.log" 2>&1
  echo "ncu $model rc=$? at $SECONDS s, $(grep -c gpu__time_duration "$out/ncu-$model-mb$mb.csv" 2>/dev/null) kernels" >> "$log"
done
gzip -f "$out"/ncu-*.csv 2>/dev/null
if [ "$SECONDS" -lt 400 ]; then
  timeout $((560 - SECONDS)) bash tools/bench/compare.sh --out "$out/cmp" --repeats 1 --only '^gpt2 mb 8$' --engine-args "--hardware $profile" >> "$log" 2>&1
  echo "compare done at $SECONDS s" >> "$log"
fi
tar -czf "$out/runs.tar.gz" -C /tmp aios-s25 2>/dev/null
cat "$log"
