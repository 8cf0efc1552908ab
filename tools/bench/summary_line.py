#!/usr/bin/env python3
"""One line from `aios train --json`'s output (the run summary after any screen text): step, phases, loss, device memory.

    python3 tools/bench/summary_line.py OUTPUT.json NAME [SECONDS]

Prints the stderr file next to it (OUTPUT.err) when the summary cannot be read. Used by the s29 device scripts.
"""
import json
import sys

path, name = sys.argv[1], sys.argv[2]
at = f" [{sys.argv[3]} s]" if len(sys.argv) > 3 else ""
text = open(path).read()
try:
    d = json.loads(text[text.index('{'):])
    print(f"{name:24s} step {d['median_step_ms']:8.1f} ms  fwd {d['mean_forward_ms']:7.1f} bwd {d['mean_backward_ms']:7.1f} "
          f"opt {d['mean_optimizer_ms']:6.1f}  tok/s {d['tokens_per_second']:9.0f}  loss {d['first_loss']:.4f}->{d['final_loss']:.4f}  "
          f"dev {d['peak_device_bytes'] / 2**30:.2f} GiB  startup {d['startup_seconds']:.1f} s{at}")
except (ValueError, KeyError, TypeError) as e:
    print(name, "failed:", e)
    err = path[:-5] + ".err" if path.endswith(".json") else path + ".err"
    try:
        print(open(err).read()[-1500:])
    except OSError:
        pass
