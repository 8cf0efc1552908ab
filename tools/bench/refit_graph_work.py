#!/usr/bin/env python3
"""Refits engine_kernels.graph_work from `aios calibrate-gpu`'s printed `replayed` lines against a profile's own products
(its engine_kernels.layer_matmul bf16 rates and matmul_efficiency), as EngineKernelFit.GraphWorkOf does against the
calibration's: per shape, forward (t - M) / S and backward (t - 2M) / S in ms per GB of the forward's saved bytes, held to
[0, 1000]. This is how profiles/h100-1x-vm.json took the twenty-eighth session's replays (docs/validation/gpu-2026-12-07-session28.md):

    python3 tools/bench/refit_graph_work.py docs/validation/h100-2026-12-07-s28/call3/cal.log profiles/h100-1x-vm.json [--write]

Without --write it prints the points; with it, it replaces the profile's graph_work points (method and date kept)."""
import json, re, sys

log_path, profile_path = sys.argv[1], sys.argv[2]
text = open(log_path).read().replace("\n", " ")
lines = re.findall(r"replayed (forward|backward) hidden (\d+) tokens (\d+) flops (\S+) saved_bytes\s+(\S+) matmul_tflops\s+\S+ seconds\s+(\S+)", text)
if not lines:
    sys.exit(f"{log_path}: no 'replayed ... seconds ...' lines (calibrate-gpu prints them since 2026-12-07)")
profile = json.load(open(profile_path))
kernels = profile["gpu"]["engine_kernels"]
efficiency = kernels["matmul_efficiency"]["value"]
rates = {(p["hidden"], p["tokens"]): p["bf16_tflops"] for p in kernels["layer_matmul"]["points"]}
points = {}
for label, h, t, flops, saved, seconds in lines:
    h, t, flops, saved, seconds = int(h), int(t), float(flops), float(saved), float(seconds)
    if (h, t) not in rates:
        sys.exit(f"{profile_path} has no layer_matmul rate at hidden {h}, tokens {t}: refit against a profile measured on the same grid")
    products = flops / (rates[(h, t)] * 1e12 * efficiency) * (1 if label == "forward" else 2)
    points.setdefault((h, t), {})[label] = round(min(max((seconds - products) / saved * 1e12, 0), 1000), 4)
rows = [{"hidden": h, "tokens": t, "forward_ms_per_gb": v["forward"], "backward_ms_per_gb": v["backward"]} for (h, t), v in sorted(points.items())]
for r in rows:
    print(f"hidden {r['hidden']:5d} tokens {r['tokens']:6d}: forward {r['forward_ms_per_gb']:.4f} ms/GB, backward {r['backward_ms_per_gb']:.4f} ms/GB")
if "--write" in sys.argv:
    kernels.setdefault("graph_work", {"method": f"refitted from {log_path} by tools/bench/refit_graph_work.py", "date": "unknown"})["points"] = rows
    with open(profile_path, "w") as f:
        f.write(json.dumps(profile, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {profile_path}")
