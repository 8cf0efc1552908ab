#!/usr/bin/env python3
"""Launches and device time per kernel of one engine step collected by Nsight Compute (issue 16): the CSV that
`AIOS_CUDA_PROFILE_STEP=N ncu --profile-from-start off --target-processes all --metrics gpu__time_duration.sum --csv
--log-file FILE.csv bash .device/run.sh train …` writes (gzip or plain), summed by kernel name, largest first.

    python3 tools/bench/ncu_kernels.py FILE.csv[.gz] [--top 40]"""
import collections, csv, gzip, io, sys

def kernels(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = [l for l in f.read().splitlines() if l.startswith('"')]
    scale = {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        if row["Metric Name"] != "gpu__time_duration.sum": continue
        yield row["Kernel Name"], float(row["Metric Value"].replace(",", "")) * scale.get(row["Metric Unit"], 1)

def main(argv):
    top = 40
    if "--top" in argv:
        i = argv.index("--top"); top = int(argv[i + 1]); del argv[i:i + 2]
    for path in argv:
        by = collections.defaultdict(lambda: [0, 0.0])
        for name, ns in kernels(path):
            by[name][0] += 1; by[name][1] += ns
        launches = sum(n for n, _ in by.values()); total = sum(t for _, t in by.values())
        print(f"## {path}\n\n{launches} launches, {total / 1e6:.2f} ms of device time (each kernel timed alone)\n")
        print("| launches | ms | µs each | kernel |\n|---|---|---|---|")
        for name, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"| {n} | {t / 1e6:.3f} | {t / n / 1e3:.1f} | `{name[:100]}` |")
        print()

if __name__ == "__main__":
    main(sys.argv[1:])
