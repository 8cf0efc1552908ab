"""Per-run view of gradient downloads by micro-batch (first vs later) and of what waits on them.

usage: python3 tools/bench/graddl.py RUN_DIR [STEP]
Prints, for one step (default: the second-to-last), the grad_download spans of the first micro-batch and of later ones
(count, bytes, summed and mean duration, effective GB/s; a later download with copy streams only packs and queues its
copy, so its rate there is not a link's), the later micro-batches' grad_accumulate spans (the wait for that copy and the
host add), the stalls by kind and micro-batch, and the compute stream's busy time and gaps.
"""
import collections, json, sys

run = sys.argv[1]
spans = [json.loads(l) for l in open(run + '/trace.jsonl')]
steps = sorted({d['step'] for d in spans})
step = int(sys.argv[2]) if len(sys.argv) > 2 else steps[-2] if len(steps) > 1 else steps[-1]
s = [d for d in spans if d['step'] == step]
t0 = min(d['start_ns'] for d in s); t1 = max(d['end_ns'] for d in s)
print(f"{run.rstrip('/').split('/')[-1]} step {step}: extent {(t1 - t0) / 1e6:.1f} ms")
dl = collections.defaultdict(list)
for d in s:
    if d['operation'] == 'grad_download':
        dl['first' if d['micro_batch'] == 0 else 'later'].append(d)
for k in ('first', 'later'):
    v = dl[k]
    if not v: continue
    ms = sum(d['end_ns'] - d['start_ns'] for d in v) / 1e6; b = sum(d['bytes'] for d in v)
    durs = sorted((d['end_ns'] - d['start_ns']) / 1e6 for d in v)
    print(f"  grad_download {k:5s}: n={len(v):4d} bytes={b / 1e9:6.2f} GB sum={ms:8.1f} ms median={durs[len(durs) // 2]:6.2f} ms max={durs[-1]:6.2f} ms -> {b / ms / 1e6 if ms else 0:5.1f} GB/s")
acc = sorted((d['end_ns'] - d['start_ns']) / 1e6 for d in s if d['operation'] == 'grad_accumulate')
if acc:
    print(f"  grad_accumulate   : n={len(acc):4d} sum={sum(acc):8.1f} ms median={acc[len(acc) // 2]:6.2f} ms max={acc[-1]:6.2f} ms")
st = collections.defaultdict(float)
for d in s:
    if d['resource'] == 'stall':
        st[(d['operation'], 'mb0' if d['micro_batch'] == 0 else 'mb>0')] += (d['end_ns'] - d['start_ns']) / 1e6
for k in sorted(st): print(f"  stall {k[0]:24s} {k[1]:5s} {st[k]:8.1f} ms")
gpu = sorted((d for d in s if d['resource'] == 'gpu'), key=lambda d: d['start_ns'])
busy = sum(d['end_ns'] - d['start_ns'] for d in gpu) / 1e6
print(f"  gpu spans busy {busy:.1f} ms of {(t1 - t0) / 1e6:.1f} ms")
