#!/usr/bin/env python3
"""Issue 13's acceptance table: for each run folder (summary.json + prediction.json, as `aios train` writes them),
predicted vs measured step time, peak device memory and peak host RSS, with errors and the median/max of |error|.

    python3 tools/bench/grid_table.py RUNS_DIR [RUNS_DIR…] [--markdown]

The error is (predicted − measured) ÷ measured. Device memory compares the plan's reserved peak (what the CUDA
driver reports for the process, as the engine measures it) with the run's peak; host compares the plan's CPU peak
with the peak RSS."""
import json, os, statistics, sys

def load(d):
    s = json.load(open(os.path.join(d, "summary.json")))
    p = json.load(open(os.path.join(d, "prediction.json")))
    st = json.load(open(os.path.join(d, "settings.json")))
    return s, p, st

def err(pred, meas):
    return None if not pred or not meas else (pred - meas) / meas

def main(argv):
    md = "--markdown" in argv
    dirs = [a for a in argv if not a.startswith("--")]
    rows = []
    for root in dirs:
        for name in sorted(os.listdir(root)):
            d = os.path.join(root, name)
            if not os.path.isfile(os.path.join(d, "summary.json")) or not os.path.isfile(os.path.join(d, "prediction.json")):
                continue
            s, p, st = load(d)
            ps = p["settings"]
            place = "resident" if ps["param_offload"] == "none" and ps["optimizer_offload"] == "none" else \
                f"p:{ps['param_offload']} o:{ps['optimizer_offload']}"
            step_p = p["step"]["time_s"] * 1000
            step_m = s["median_step_ms"]
            dev_p = p["memory"].get("gpu_reserved_peak_bytes") or p["memory"]["gpu_peak_bytes"]
            dev_m = s.get("peak_device_bytes")
            host_p = p["memory"]["cpu_peak_bytes"]
            host_m = s.get("peak_resident_bytes")
            rows.append(dict(name=name, model=p["model"]["name"], place=place, schedule=ps["schedule"],
                             mb=ps["micro_batch"], acc=ps["grad_accumulation"], ckpt=ps["activation_checkpointing"],
                             step_p=step_p, step_m=step_m, e_step=err(step_p, step_m),
                             dev_p=dev_p, dev_m=dev_m, e_dev=err(dev_p, dev_m),
                             host_p=host_p, host_m=host_m, e_host=err(host_p, host_m),
                             reliable=s.get("timing_reliable", True), warnings=s.get("warnings") or []))
    g = lambda b: "—" if b is None else f"{b / 2**30:.1f}"
    pc = lambda e: "—" if e is None else f"{e * 100:+.1f}%"
    head = "| run | model | placement | schedule | mb × acc | ckpt | step pred / meas ms | error | device pred / meas GiB | error | host pred / meas GiB | error |"
    print(head); print("|" + "---|" * 12)
    for r in rows:
        print(f"| {r['name']} | {r['model']} | {r['place']} | {r['schedule']} | {r['mb']} × {r['acc']} | {'yes' if r['ckpt'] else 'no'} | "
              f"{r['step_p']:.1f} / {r['step_m']:.1f} | {pc(r['e_step'])} | {g(r['dev_p'])} / {g(r['dev_m'])} | {pc(r['e_dev'])} | "
              f"{g(r['host_p'])} / {g(r['host_m'])} | {pc(r['e_host'])} |")
    for key, label in (("e_step", "step time"), ("e_dev", "device peak"), ("e_host", "host RSS")):
        es = [abs(r[key]) for r in rows if r[key] is not None]
        if es:
            print(f"\n{label}: median |error| {statistics.median(es) * 100:.1f}%, max {max(es) * 100:.1f}% over {len(es)} runs", end="")
    print()
    # What the engine ran differently from its plan (a fused head on the tensor ops, …): such a row compares unlike things.
    for r in rows:
        for w in r["warnings"]:
            print(f"warning: {r['name']}: {w}")

if __name__ == "__main__":
    main(sys.argv[1:])
