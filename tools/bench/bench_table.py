#!/usr/bin/env python3
"""Helpers for tools/bench/compare.sh (standard library only; no torch).

  bench_table.py engine-line --run RUNS/ID --warmup W [--repeat R]
      reads an `aios train` run folder (summary.json, metrics.jsonl) and prints one JSON line in
      torch_baselines.py's schema with "impl": "aios-engine": the steps after the first W are the timed ones
      (tokens / their total wall time, as summary.json counts after the first step), median and p10/p90.
  bench_table.py table RESULTS.jsonl
      prints the markdown table for docs/benchmarks.md: per model and micro-batch, the median over repeats
      of each implementation's tokens/s, the ratios engine ÷ torch.compile and engine ÷ eager against the
      issue 16 targets (≥ 1.0 and ≥ 1.3), and the spread of the repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

IMPLS = ("torch-eager", "torch-compile", "aios-engine")
TARGET_COMPILE, TARGET_EAGER = 1.0, 1.3


def percentile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def engine_line(run: str, warmup: int, repeat: int | None) -> dict:
    summary_path, metrics_path = os.path.join(run, "summary.json"), os.path.join(run, "metrics.jsonl")
    record = {"impl": "aios-engine", "run": run, "repeat": repeat, "error": None}
    if not os.path.isfile(summary_path):
        record["error"] = f"no {summary_path}: the engine run did not start (see its log beside the run folder)"
        return record
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    steps = []
    if os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            steps = [json.loads(line) for line in f if line.strip()]
    record.update(model=summary.get("model"), executor=summary.get("executor"),
                  summary_tokens_per_second=summary.get("tokens_per_second"), median_step_ms_summary=summary.get("median_step_ms"),
                  peak_device_bytes=summary.get("peak_device_bytes"), first_loss=summary.get("first_loss"), last_loss=summary.get("final_loss"))
    if summary.get("error") or not summary.get("completed"):
        record["error"] = summary.get("error") or f"incomplete: {summary.get('steps_completed')} of {summary.get('steps_requested')} steps"
    timed = [s for s in steps if s["step"] > warmup]
    if not timed:
        record["error"] = record["error"] or f"no steps after the {warmup} warm-up steps in {metrics_path}"
        return record
    walls = sorted(s["wall_ms"] for s in timed)
    tokens = [s["tokens"] for s in timed]
    record.update(steps=len(timed), warmup=warmup,
                  median_ms=round(percentile(walls, 0.5), 3), p10_ms=round(percentile(walls, 0.1), 3), p90_ms=round(percentile(walls, 0.9), 3),
                  min_ms=walls[0], max_ms=walls[-1],
                  tokens_per_s=round(sum(tokens) / (sum(walls) / 1e3), 1),
                  tokens_per_s_median=round(statistics.median(tokens) / (percentile(walls, 0.5) / 1e3), 1))
    return record


def table(path: str) -> str:
    rows: dict[tuple[str, int], dict[str, list[dict]]] = {}
    errors = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("impl") not in IMPLS:
                continue
            key = (r.get("model"), r.get("micro_batch"))
            if r.get("error"):
                errors.append(f"- {r['impl']} {key[0]} mb {key[1]}: {r['error']}")
                continue
            rows.setdefault(key, {i: [] for i in IMPLS})[r["impl"]].append(r)

    def med(rs: list[dict]) -> float | None:
        return statistics.median(r["tokens_per_s"] for r in rs) if rs else None

    def spread(rs: list[dict]) -> str:
        if len(rs) < 2:
            return "–"
        v = [r["tokens_per_s"] for r in rs]
        return f"{(max(v) - min(v)) / statistics.median(v):.0%}"

    def fmt(x: float | None) -> str:
        return f"{x:,.0f}" if x is not None else "–"

    def ratio(a: float | None, b: float | None, target: float) -> str:
        if a is None or b is None:
            return "–"
        r = a / b
        return f"**{r:.2f}**" if r >= target else f"{r:.2f}"

    order = {"gpt2": 0, "gpt2-medium": 1, "gpt2-large": 2, "gpt2-xl": 3}
    out = ["| model | micro-batch | PyTorch eager tok/s | torch.compile tok/s | aios engine tok/s | engine ÷ compile (≥ 1.0) | engine ÷ eager (≥ 1.3) | engine step p10 / p50 / p90 ms | runs (spread e / c / a) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: (order.get(k[0], 9), k[0] or "", -(k[1] or 0))):
        by = rows[key]
        e, c, a = (med(by[i]) for i in IMPLS)
        eng = by["aios-engine"]
        steps = "–" if not eng else " / ".join(f"{statistics.median(r[q] for r in eng):.0f}" for q in ("p10_ms", "median_ms", "p90_ms"))
        runs = f"{len(by['torch-eager'])}/{len(by['torch-compile'])}/{len(eng)} ({spread(by['torch-eager'])} / {spread(by['torch-compile'])} / {spread(eng)})"
        out.append(f"| {key[0]} | {key[1]} | {fmt(e)} | {fmt(c)} | {fmt(a)} | {ratio(a, c, TARGET_COMPILE)} | {ratio(a, e, TARGET_EAGER)} | {steps} | {runs} |")
    if errors:
        out += ["", "Runs that failed (not in the table):", *errors]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("engine-line")
    e.add_argument("--run", required=True, help="the run folder (RUNS/ID)")
    e.add_argument("--warmup", type=int, required=True, help="steps to leave out at the start")
    e.add_argument("--micro-batch", type=int, required=True)
    e.add_argument("--seq-len", type=int, default=1024)
    e.add_argument("--repeat", type=int, default=None)
    t = sub.add_parser("table")
    t.add_argument("results", help="the JSON lines written by compare.sh")
    args = p.parse_args(argv)
    if args.command == "engine-line":
        record = engine_line(args.run, args.warmup, args.repeat)
        record["micro_batch"], record["seq_len"] = args.micro_batch, args.seq_len
        print(json.dumps(record))
        return 1 if record["error"] else 0
    if not os.path.isfile(args.results):
        sys.exit(f"error: {args.results}: no such file (run tools/bench/compare.sh first)")
    print(table(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
