#!/usr/bin/env bash
# Twenty-fourth session, call 2 (an H100 or H200): the layer backward through autograd's list and the four-wide AdamW, against
# backward with the parameters' grad and the one-wide kernel (AIOS_LAYER_BACKWARD=grad-fields AIOS_ADAMW_VECTOR=0), two
# interleaved rounds on gpt2-xl micro-batch 1 and gpt2 micro-batch 8, with the host's time queueing the passes (host_pass_ms);
# then issue 16's offloaded target (gpt2-xl, micro-batch 8, checkpointing: parameters and optimizer in RAM under an 11 GB limit
# with the delayed and overlapped schedules, against the resident step with checkpointing), then calibrate-gpu for the final
# build's floors with the time left. Pack first: bash tools/device/pack.sh .device
set -u
# DEADLINE: seconds this call may take (a lease with less time left passes less).
deadline=${DEADLINE:-580}
out=${OUT:-/tmp/s26}; mkdir -p "$out"
runs=/tmp/aios-s26; mkdir -p "$runs"
log=$out/call2.log
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
profile=h100-1x-vm; [[ "$gpu" == *H200* ]] && profile=h200-1x-calibrated
{ date -u; echo "$gpu"; lscpu | grep "Model name"; nproc; } >> "$log"
summary() { # run id
  python3 - "$runs/$1" "$1" >> "$log" <<'PY'
import json, sys, statistics
run, id = sys.argv[1:3]
try:
    m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()][3:]
    def med(k):  # the layer-by-layer trainer writes no host_pass_ms
        v = [x[k] for x in m if x.get(k) is not None]
        return f"{statistics.median(v):7.2f}" if v else "      -"
    print(f"{id:24s} wall {med('wall_ms')} ms  fwd {med('forward_ms')} bwd {med('backward_ms')} opt {med('optimizer_ms')}  host passes {med('host_pass_ms')}  loss {m[-1]['loss']:.5f}")
except Exception as e:
    print(f"{id}: failed ({e})")
PY
}
for r in 1 2; do
  for m in "gpt2-xl 1 20" "gpt2 8 25"; do
    read -r model mb steps <<<"$m"
    if [ "$r" = 1 ]; then order="new old"; else order="old new"; fi
    for v in $order; do
      envs="AIOS_NOTHING=1"; [ "$v" = old ] && envs="AIOS_LAYER_BACKWARD=grad-fields AIOS_ADAMW_VECTOR=0"
      id="$v-$model-mb$mb-r$r"
      env $envs timeout 150 bash .device/run.sh train --device cuda --model "$model" --micro-batch "$mb" --seq-len 1024 --precision bf16 \
        --steps "$steps" --runs-dir "$runs" --run-id "$id" --hardware "$profile" --json > "$runs/$id.log" 2>&1
      summary "$id"
    done
  done
done
echo "A/B done at $SECONDS s" >> "$log"
eng() { # id steps args...
  local id=$1 steps=$2; shift 2
  [ "$SECONDS" -lt $((deadline - 150)) ] || { echo "$id: skipped (time)" >> "$log"; return; }
  timeout 150 bash .device/run.sh train --device cuda --model gpt2-xl --micro-batch 8 --seq-len 1024 --precision bf16 \
    --grad-checkpointing --steps "$steps" --runs-dir "$runs" --run-id "$id" --hardware "$profile" --json "$@" > "$runs/$id.log" 2>&1
  summary "$id"
}
eng resident-ckpt 10
eng offload-delayed 8 --offload-params cpu --offload-optimizer cpu --gpu-memory-limit 11G --schedule delayed
[ "$deadline" -ge 560 ] && eng offload-overlapped 8 --offload-params cpu --offload-optimizer cpu --gpu-memory-limit 11G --schedule overlapped
echo "runs done at $SECONDS s" >> "$log"
tar -czf "$out/runs.tar.gz" -C /tmp aios-s26 2>/dev/null
if [ "$SECONDS" -lt $((deadline - 160)) ]; then
  timeout $((deadline - SECONDS)) bash .device/run.sh calibrate-gpu --out "$out/calibrated.json" --base "$profile" --family gpt2 --precision bf16 > "$out/calibrate.log" 2>&1
  echo "calibrate rc=$? at $SECONDS s" >> "$log"
fi
tar -czf "$out/runs.tar.gz" -C /tmp aios-s26 2>/dev/null
cat "$log"; tail -5 "$out/calibrate.log" 2>/dev/null
