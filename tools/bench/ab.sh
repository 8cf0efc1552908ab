#!/usr/bin/env bash
# A/B of two packed engines on one machine, interleaved: ab.sh PROFILE OUT DIR_A DIR_B "name|train args" …
# Prints, per run, the median step, forward and backward of steps 3 onwards (metrics.jsonl).
set -u
p=$1; out=$2; a=$3; b=$4; shift 4
mkdir -p "$out/runs"
for rep in 1 2; do
  for cfg in "$@"; do
    name=${cfg%%|*}; args=${cfg#*|}
    for d in "$a" "$b"; do
      tag=$(basename "$d"); id=$name-$tag-$rep
      timeout 120 bash "$d/run.sh" train --device cuda --hardware "$p" --runs-dir "$out/runs" --run-id "$id" $args > "$out/$id.log" 2>&1 || echo "$id failed rc=$?"
      python3 - "$out/runs/$id/metrics.jsonl" "$id" <<'PY'
import json, statistics, sys
try: rows = [json.loads(l) for l in open(sys.argv[1])][2:]
except OSError: sys.exit(0)
med = lambda k: statistics.median(r[k] for r in rows)
print(f"{sys.argv[2]:28s} step {med('wall_ms'):8.1f}  fwd {med('forward_ms'):7.1f}  bwd {med('backward_ms'):7.1f}  opt {med('optimizer_ms'):6.1f}  (n={len(rows)})")
PY
    done
  done
done
