#!/usr/bin/env python3
"""Where a measured step's time goes, from an engine run's trace (trace.jsonl.gz, or trace.jsonl as a run leaves it: every span of every step) against its
predicted timeline (predicted-timeline.jsonl): per step the phases on the critical path (forward, backward, the wait
between the last gradient download and the first CPU update, the updates), each resource's busy time, and the CPU
update rate per unit (parameters per second, from settings.json's model shape). A step whose layers update at under
2/3 of the run's best layer rate is marked 'cold': the same work at a different speed (issue 13: CPU Adam running as
tier-0 code for the first steps, see docs/simulator.md), which no per-byte price explains. The wait is '—' where the
updates overlap the backward (schedule overlapped).

    python3 tools/bench/step_breakdown.py RUN_DIR [RUN_DIR...]"""
import collections, gzip, json, os, statistics, sys

MS = 1e6

def spans(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            if line.strip():
                s = json.loads(line)
                if s.get("type", "span") == "span" and "start_ns" in s:
                    yield s

def unit_parameters(settings):
    """Parameters each traced layer number updates: layers their own, -1 the outer block (embeddings and head)."""
    m = settings["model"]
    outer = m["total_parameters"] - m["num_layers"] * m["layer_parameters"]
    return lambda layer: outer if layer < 0 else m["layer_parameters"]

def phases(step_spans):
    """Critical-path phases (ms) of one step's spans, from its first span's start."""
    t0 = min(s["start_ns"] for s in step_spans)
    by = collections.defaultdict(list)
    for s in step_spans:
        by[s["operation"]].append(s)
    end = lambda op: max((s["end_ns"] for s in by[op]), default=t0)
    start = lambda op: min((s["start_ns"] for s in by[op]), default=t0)
    fwd_end = end("forward")
    bwd_end = max(end("backward"), end("grad_download"), end("grad_accumulate"))
    opt_start = start("optimizer_step") if by["optimizer_step"] else bwd_end
    return {
        "extent": (max(s["end_ns"] for s in step_spans) - t0) / MS,
        "forward": (fwd_end - t0) / MS,
        "backward": (bwd_end - fwd_end) / MS,
        "wait": (opt_start - bwd_end) / MS if by["optimizer_step"] else 0.0,
        "optimizer": (end("optimizer_step") - opt_start) / MS if by["optimizer_step"] else 0.0,
    }

def busy(step_spans):
    b = collections.Counter()
    for s in step_spans:
        b[s["resource"]] += (s["end_ns"] - s["start_ns"]) / MS
        # The host-sums thread's waits for its copies (stall spans since the twenty-first session): host_sums busy less these is the adds.
        if s["operation"] == "wait_gradient_copy":
            b["copy_wait"] += (s["end_ns"] - s["start_ns"]) / MS
    return b

def updates(step_spans, params):
    """(median ms of a layer's update, G params/s of layers, G params/s of the outer block) of one step."""
    ops = [s for s in step_spans if s["operation"] == "optimizer_step"]
    if not ops:
        return None
    dur = lambda s: (s["end_ns"] - s["start_ns"]) / MS
    layers = [s for s in ops if s["layer"] >= 0]
    outer = [s for s in ops if s["layer"] < 0]
    rate = lambda xs: sum(params(s["layer"]) for s in xs) / sum(dur(s) for s in xs) / 1e6 if xs and sum(dur(s) for s in xs) > 0 else float("nan")
    return (statistics.median(dur(s) for s in (layers or ops)), rate(layers), rate(outer))

def report(run):
    settings = json.load(open(os.path.join(run, "settings.json")))
    params = unit_parameters(settings)
    measured = collections.defaultdict(list)
    trace = os.path.join(run, "trace.jsonl.gz")
    for s in spans(trace if os.path.isfile(trace) else os.path.join(run, "trace.jsonl")):
        measured[s["step"]].append(s)
    rows = [("pred", [s for s in spans(os.path.join(run, "predicted-timeline.jsonl"))])] if os.path.isfile(os.path.join(run, "predicted-timeline.jsonl")) else []
    rows += [(str(k), v) for k, v in sorted(measured.items())]
    best = max((u[1] for k, v in rows if k != "pred" and (u := updates(v, params)) and u[1] == u[1]), default=None)
    print(f"## {os.path.basename(run.rstrip('/'))}\n")
    print("| step | extent ms | forward | backward | wait before updates | updates | gpu busy | cpu_optimizer busy | d2h busy | host_sums busy | of it waiting for copies | layer update ms | layers G params/s | outer G params/s | |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, ss in rows:
        p, b, u = phases(ss), busy(ss), updates(ss, params)
        cold = "cold" if name != "pred" and u and best and u[1] < best / 1.5 else ""
        wait = f"{p['wait']:.1f}" if p["wait"] >= 0 else "—"
        uc = f"{u[0]:.2f} | {u[1]:.2f} | {u[2]:.2f}" if u else "— | — | —"
        print(f"| {name} | {p['extent']:.1f} | {p['forward']:.1f} | {p['backward']:.1f} | {wait} | {p['optimizer']:.1f} | "
              f"{b['gpu']:.1f} | {b['cpu_optimizer']:.1f} | {b['pcie_d2h']:.1f} | {b['host_sums']:.1f} | {b['copy_wait']:.1f} | {uc} | {cold} |")
    print()

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for r in sys.argv[1:]:
        report(r)
