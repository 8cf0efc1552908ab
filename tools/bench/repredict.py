#!/usr/bin/env python3
"""Re-predicts measured runs with today's planner and a profile: for each run folder (prediction.json, summary.json),
rebuilds the `aios plan` flags from the recorded settings, plans them with PROFILE, and prints the table of
tools/bench/grid_table.py with the new predictions (the run folders are not changed).

    python3 tools/bench/repredict.py PROFILE RUNS_DIR [RUNS_DIR…] [--aios 'dotnet path/to/aios.dll']"""
import json, os, shlex, statistics, subprocess, sys

def flags(p, s):
    st = p["settings"]
    # A model imported from a Hugging Face config (tools/bench/models/NAME/config.json) is planned from that file again.
    name = p["model"]["name"]
    imported = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", name, "config.json")
    f = ["--model", imported if os.path.exists(imported) else name, "--micro-batch", str(st["micro_batch"]), "--seq-len", str(st["seq_len"]),
         "--grad-accumulation", str(st["grad_accumulation"]), "--precision", st["precision"], "--schedule", st["schedule"],
         "--executor", st.get("executor", "aios"), "--sub-group-size", str(st["sub_group_size"]),
         "--buffer-count", str(st["buffer_count"]), "--prefetch-depth", str(st["prefetch_depth"])]
    for key, flag in (("param_offload", "--offload-params"), ("optimizer_offload", "--offload-optimizer")):
        if st[key] != "none": f += [flag, st[key]]
    if st.get("gradient_offload") not in (None, "None", "none"): f += ["--offload-gradients", str(st["gradient_offload"]).lower()]
    if st.get("nvme_path"): f += ["--nvme-offload-path", st["nvme_path"]]
    if st["activation_checkpointing"]: f.append("--grad-checkpointing")
    if st.get("optimizer_ram_budget"): f += ["--optimizer-ram-budget", str(st["optimizer_ram_budget"])]
    if st.get("optimizer_state") not in (None, "fp32"): f += ["--optimizer-state", st["optimizer_state"]]
    if st.get("master_weights") not in (None, "fp32"): f += ["--master-weights", st["master_weights"]]
    if st.get("max_in_cpu") is not None: f += ["--max-in-cpu", str(st["max_in_cpu"])]
    if st.get("activation_offload") not in (None, "none"): f += ["--offload-activations", st["activation_offload"]]
    if s.get("gpu_memory_limit_bytes"): f += ["--gpu-memory-limit", str(s["gpu_memory_limit_bytes"])]
    # The head the run ran: recorded since --head-loss (2026-12-05); before it the engine fused wherever that saved bytes,
    # which for the GPT-2 family at 1,024 tokens and more is always ("fused"), unless the run's name says AIOS_FUSED_HEAD=0 ran.
    head = st.get("head_loss") or ("unfused" if p.get("_unfused") else "fused")
    if st.get("executor", "aios") == "aios": f += ["--head-loss", head]
    if st.get("cuda_graphs"): f.append("--cuda-graphs")
    return f

def main(argv):
    aios = "dotnet src/AiOs.Planner.Cli/bin/Debug/net10.0/aios.dll"
    if "--aios" in argv:
        i = argv.index("--aios"); aios = argv[i + 1]; del argv[i:i + 2]
    profile, dirs = argv[0], argv[1:]
    rows = []
    for root in dirs:
        for name in sorted(os.listdir(root)):
            d = os.path.join(root, name)
            if not os.path.isfile(os.path.join(d, "summary.json")): continue
            p = json.load(open(os.path.join(d, "prediction.json"))); s = json.load(open(os.path.join(d, "summary.json")))
            p["_unfused"] = os.path.basename(d.rstrip("/")).endswith("-unfused")
            cmd = shlex.split(aios) + ["plan", "--hardware", profile, "--json"] + flags(p, s)
            out = subprocess.run(cmd, capture_output=True, text=True)
            try: q = json.loads(out.stdout)
            except json.JSONDecodeError:
                print(f"{name}: plan failed: {out.stderr.strip()[:300]}", file=sys.stderr); continue
            mem = q["memory"]
            rows.append((name, q["step"]["time_s"] * 1000, s["median_step_ms"], (mem.get("gpu_reserved_peak_bytes") or mem["gpu_peak_bytes"]) / 2**30,
                         (s.get("peak_device_bytes") or 0) / 2**30, mem["cpu_peak_bytes"] / 2**30, (s.get("peak_resident_bytes") or 0) / 2**30))
    e = lambda a, b: (a - b) / b if b else None
    print("| run | step pred / meas ms | error | device pred / meas GiB | error | host pred / meas GiB | error |")
    print("|---|---|---|---|---|---|---|")
    errs = {"step": [], "device": [], "host": []}
    for n, sp, sm, dp, dm, hp, hm in rows:
        es, ed, eh = e(sp, sm), e(dp, dm), e(hp, hm)
        for k, v in (("step", es), ("device", ed), ("host", eh)):
            if v is not None: errs[k].append(abs(v))
        f = lambda v: "—" if v is None else f"{v * 100:+.1f}%"
        print(f"| {n} | {sp:.1f} / {sm:.1f} | {f(es)} | {dp:.2f} / {dm:.2f} | {f(ed)} | {hp:.1f} / {hm:.1f} | {f(eh)} |")
    for k, v in errs.items():
        if v: print(f"\n{k}: median |error| {statistics.median(v) * 100:.1f}%, max {max(v) * 100:.1f}% over {len(v)} runs", end="")
    print()

if __name__ == "__main__":
    main(sys.argv[1:])
