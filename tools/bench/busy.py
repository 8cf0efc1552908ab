import json,sys,collections
run=sys.argv[1]; step=int(sys.argv[2]) if len(sys.argv)>2 else None
m=collections.defaultdict(float); mb=collections.defaultdict(float); n=collections.Counter()
steps=set()
for l in open(run+'/trace.jsonl'):
    d=json.loads(l); steps.add(d['step'])
if step is None: step=max(steps)-1
t0=None;t1=None
for l in open(run+'/trace.jsonl'):
    d=json.loads(l)
    if d['step']!=step: continue
    k=(d['resource'],d['operation']); m[k]+=(d['end_ns']-d['start_ns'])/1e6; mb[k]+=d.get('bytes',0); n[k]+=1
    t0=d['start_ns'] if t0 is None else min(t0,d['start_ns']); t1=d['end_ns'] if t1 is None else max(t1,d['end_ns'])
p=collections.defaultdict(float); pb=collections.defaultdict(float); pn=collections.Counter(); pend=0
for l in open(run+'/predicted-timeline.jsonl'):
    d=json.loads(l)
    if d.get('type')!='span': continue
    k=(d['resource'],d['operation']); p[k]+=(d['end_ns']-d['start_ns'])/1e6; pb[k]+=d.get('bytes',0); pn[k]+=1; pend=max(pend,d['end_ns'])
print(f"step {step}: measured span extent {(t1-t0)/1e6:.1f} ms; predicted extent {pend/1e6:.1f} ms")
for k in sorted(set(m)|set(p)):
    gm = mb[k]/m[k]/1e6 if m[k] else 0; gp = pb[k]/p[k]/1e6 if p[k] else 0
    print(f"{k[0]:14s} {k[1]:22s} meas {m[k]:8.1f} ms n={n[k]:4d} {gm:6.1f} GB/s | pred {p[k]:8.1f} ms n={pn[k]:4d} {gp:6.1f} GB/s")
