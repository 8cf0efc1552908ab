#!/usr/bin/env python3
"""Predicted against measured phases (forward, backward, optimizer, step) of engine run folders, from each run's
prediction.json (step.phases) and metrics.jsonl (medians over the steps after the first), to see which phase a
step-time error comes from.

    python3 tools/bench/phase_table.py RUNS_DIR [RUNS_DIR…]"""
import json, os, statistics, sys

def phases(pred):
    ph = pred["step"].get("phases") or {}
    return {k.removesuffix("_s"): v * 1e3 for k, v in ph.items()}

def main(argv):
    runs = []
    for d in argv:
        for name in sorted(os.listdir(d)):
            r = os.path.join(d, name)
            if os.path.isfile(os.path.join(r, "prediction.json")) and os.path.isfile(os.path.join(r, "metrics.jsonl")):
                runs.append(r)
    print("| run | forward pred / meas ms | backward pred / meas | optimizer pred / meas | step pred / meas |")
    print("|---|---|---|---|---|")
    for r in runs:
        pred = json.load(open(os.path.join(r, "prediction.json")))
        rows = [json.loads(l) for l in open(os.path.join(r, "metrics.jsonl")) if l.strip()]
        later = rows[1:] or rows
        med = lambda k: statistics.median(x.get(k, 0) for x in later)
        p = phases(pred)
        cells = [f"{p.get(k, float('nan')):.0f} / {med(m):.0f}" for k, m in (("forward", "forward_ms"), ("backward", "backward_ms"), ("optimizer", "optimizer_ms"))]
        print(f"| {os.path.basename(r)} | " + " | ".join(cells) + f" | {pred['step']['time_s'] * 1e3:.0f} / {med('wall_ms'):.0f} |")

if __name__ == "__main__":
    main(sys.argv[1:])
