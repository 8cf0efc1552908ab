"""Per run: the median step (metrics.jsonl, steps 3 on) and, over the same steps, the compute thread's waits for parameter
uploads in micro-batches after the first (stall spans `wait_param_upload`), median and least.

usage: python3 tools/bench/upload_stalls.py RUN_DIR...   (trace.jsonl or trace.jsonl.gz)
"""
import gzip, json, os, statistics, sys

for run in sys.argv[1:]:
    path = os.path.join(run, 'trace.jsonl')
    lines = open(path) if os.path.exists(path) else gzip.open(path + '.gz', 'rt')
    spans = [json.loads(l) for l in lines]
    steps = sorted({d['step'] for d in spans})[2:]
    stall = []
    for st in steps:
        stall.append(sum(d['end_ns'] - d['start_ns'] for d in spans
                         if d['step'] == st and d['resource'] == 'stall' and d['operation'] == 'wait_param_upload' and d['micro_batch'] > 0) / 1e6)
    m = [json.loads(l) for l in open(os.path.join(run, 'metrics.jsonl'))][2:]
    print(f"{os.path.basename(run.rstrip('/')):28s} step {statistics.median(x['wall_ms'] for x in m):7.1f} ms  "
          f"upload waits in later micro-batches: median {statistics.median(stall):6.1f} ms, least {min(stall):6.1f} ms ({len(steps)} steps)")
