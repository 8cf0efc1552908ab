#!/bin/bash
# Makes the learning history of docs/learning.md: 40 short CPU runs of tiny-gpt and tiny-llama with varied
# sequence length, micro-batch, gradient accumulation, checkpointing and an NVMe path. Before each run it
# waits (up to 8 s) for the 1-minute load average to fall below 1.5, and it logs the load each run saw,
# because this 2-core machine is shared with other builds.
# Usage: docs/learning/make-history.sh AIOS_BINARY OUT_DIR
set -u
aios=$1; out=$2
rm -rf "$out"; mkdir -p "$out" /tmp/aios-history-nvme
log="$out.load.tsv"; : > "$log"
run() {
  local id=$1; shift
  for _ in $(seq 8); do awk '{exit !($1 < 1.5)}' /proc/loadavg && break; sleep 1; done
  local before; before=$(cut -d' ' -f1 /proc/loadavg)
  "$aios" train --steps 4 --hardware ci-2core-24gb --runs-dir "$out" --run-id "$id" "$@" > /dev/null 2>&1 || echo "FAIL $id $*"
  printf '%s\t%s\t%s\n' "$id" "$before" "$(cut -d' ' -f1 /proc/loadavg)" >> "$log"
}
i=0
for model in tiny-gpt tiny-llama; do
  for seq in 32 64 128; do
    for mb in 1 2 4 8; do
      i=$((i+1))
      case $((i % 4)) in
        1) extra=(--grad-accumulation 2);;
        2) extra=(--grad-checkpointing);;
        3) extra=(--nvme-offload-path /tmp/aios-history-nvme);;
        *) extra=();;
      esac
      run "$(printf 'r%02d-%s-s%d-b%d' $i $model $seq $mb)" --model $model --seq-len $seq --micro-batch $mb "${extra[@]}"
    done
  done
  for seq in 48 96; do
    for mb in 3 6; do
      i=$((i+1)); run "$(printf 'r%02d-%s-s%d-b%d' $i $model $seq $mb)" --model $model --seq-len $seq --micro-batch $mb
      i=$((i+1)); run "$(printf 'r%02d-%s-s%d-b%d-ckpt' $i $model $seq $mb)" --model $model --seq-len $seq --micro-batch $mb --grad-checkpointing
    done
  done
done
echo "$i runs in $out; load per run in $log"
