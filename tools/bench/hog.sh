#!/usr/bin/env bash
# Runs one engine command beside a CPU load on every core, to tell which host resource slows the GPU's steps beside CPU
# Adam: hog.sh none|memory|compute OUT_DIR RUN_ID train-args…  (on the GPU machine, .device packed).
#   memory:  16 threads copying 1 GiB buffers (host memory bandwidth, as CPU Adam's streams load it)
#   compute: 16 threads multiplying a 512² matrix (cores busy, little memory traffic)
set -u
kind=$1; out=$2; id=$3; shift 3
case $kind in
  memory)  python3 -c "import torch; torch.set_num_threads(16); a=torch.empty(2**28); b=torch.ones(2**28)
while True: a.copy_(b)" & hog=$! ;;
  compute) python3 -c "import torch; torch.set_num_threads(16); a=torch.randn(512,512)
while True: a=torch.tanh(a@a)" & hog=$! ;;
  *) hog= ;;
esac
sleep 3
timeout 120 bash .device/run.sh train --device cuda --runs-dir "$out" --run-id "$id" "$@" > "$out/$id.log" 2>&1
[ -n "$hog" ] && kill $hog
python3 - "$out/$id/metrics.jsonl" "$id" <<'PY'
import json, statistics, sys
try: rows = [json.loads(l) for l in open(sys.argv[1])][2:]
except OSError: print(sys.argv[2], "no metrics"); sys.exit(0)
med = lambda k: statistics.median(r[k] for r in rows)
print(f"{sys.argv[2]:28s} step {med('wall_ms'):8.1f}  fwd {med('forward_ms'):7.1f}  bwd {med('backward_ms'):7.1f}  opt {med('optimizer_ms'):6.1f}  (n={len(rows)})")
PY
