#!/usr/bin/env bash
# Twentieth session, first call: the adds on their own thread with two staging buffers (.device, head) against the adds on the
# downloading thread with one buffer (.device-b, 1e038e9), three interleaved repetitions of the two accumulation rows with the bundled profile, then the two resident
# Llama-3.2-1B-shape rows priced with the measured kind work ratios. Writes $OUT/ab4.tgz.
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
out=$OUT/ab4; mkdir -p $out/runs
bash .device/run.sh --version > /dev/null 2>&1; bash .device-b/run.sh --version > /dev/null 2>&1
for rep in 1 2 3; do
  for cfg in "g2m|--model gpt2-medium --offload-params cpu --offload-optimizer cpu --grad-checkpointing --micro-batch 8 --grad-accumulation 4 --steps 8" \
             "g2l|--model gpt2-large --offload-params cpu --offload-optimizer cpu --micro-batch 1 --grad-accumulation 4 --schedule overlapped --steps 7"; do
    name=${cfg%%|*}; args=${cfg#*|}
    for d in .device-b .device; do
      id=$name-${d#.}-$rep
      timeout 90 bash $d/run.sh train --device cuda --hardware $p --runs-dir $out/runs --run-id $id $args > $out/$id.log 2>&1 || echo "$id rc=$?"
    done
  done
done
python3 tools/bench/upload_stalls.py $out/runs/* 2>&1
# An optimizer-only offload (resident parameters): its resident uploads are now operations of the engine's own program too.
for row in "g2m-opt-ov|--model gpt2-medium --offload-optimizer cpu --micro-batch 8 --schedule overlapped --steps 8" \
           "g2m-opt-ov-act|--model gpt2-medium --offload-optimizer cpu --micro-batch 8 --schedule overlapped --grad-checkpointing --offload-activations cpu --steps 8"; do
  timeout 90 bash .device/run.sh train --device cuda --hardware $p --runs-dir $out/runs --run-id ${row%%|*} ${row#*|} > $out/${row%%|*}.log 2>&1 || echo "${row%%|*} rc=$?"
done
for row in "o-l1b-mb4|--micro-batch 4 --steps 8" "o-l1b-s2048-mb2|--micro-batch 2 --seq-len 2048 --steps 8"; do
  timeout 90 bash .device/run.sh train --device cuda --hardware $p --runs-dir $out/runs --run-id ${row%%|*} --model tools/bench/models/llama-3.2-1b/config.json ${row#*|} > $out/${row%%|*}.log 2>&1 || echo "${row%%|*} rc=$?"
done
python3 tools/bench/grid_table.py $out/runs 2>&1 | tail -30
for r in $out/runs/g2m-device-b-3 $out/runs/g2m-device-3 $out/runs/g2l-device-b-3 $out/runs/g2l-device-3; do echo "== $r"; python3 tools/bench/graddl.py $r 2>&1 | head -30; done
cd $OUT && tar czf ab4.tgz ab4 && rm -rf ab4
