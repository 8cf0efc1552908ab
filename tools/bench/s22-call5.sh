#!/usr/bin/env bash
# Twentieth session, fifth call: the adds on their own thread (.device) against the downloading thread's adds (.device-b,
# 1e038e9) on two rows with one later micro-batch per step, two interleaved repetitions, bundled profile. Writes $OUT/ab5.tgz.
set -u
out=$OUT/ab5; mkdir -p $out/runs
for rep in 1 2; do
  for cfg in "g2m-acc2-ov|--model gpt2-medium --offload-params cpu --offload-optimizer cpu --micro-batch 4 --grad-accumulation 2 --schedule overlapped --steps 6" \
             "g1b-acc2-ds|--model tools/bench/models/gpt2-1b-w1536/config.json --offload-params cpu --offload-optimizer cpu --grad-checkpointing --gpu-memory-limit 11G --micro-batch 4 --grad-accumulation 2 --steps 5"; do
    name=${cfg%%|*}; args=${cfg#*|}
    for d in .device-b .device; do
      timeout 90 bash $d/run.sh train --device cuda --hardware h100-1x-vm --runs-dir $out/runs --run-id $name-${d#.}-$rep $args > $out/$name-${d#.}-$rep.log 2>&1 || echo "$name rc=$?"
    done
  done
done
python3 tools/bench/upload_stalls.py $out/runs/*; python3 tools/bench/grid_table.py $out/runs | tail -12
cd $OUT && tar czf ab5.tgz ab5 && rm -rf ab5
