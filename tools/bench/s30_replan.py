#!/usr/bin/env python3
"""Measured against planned for the s30 device scripts' --cuda-graphs rows: reads their summary lines from a saved output
(tools/bench/summary_line.py's format) and plans each row here with a profile (the calibration the call wrote).

    python3 tools/bench/s30_replan.py OUTPUT.txt PROFILE.json [--aios 'dotnet src/AiOs.Planner.Cli/bin/Debug/net10.0/aios.dll']
"""
import json, re, shlex, subprocess, sys

ROWS = {  # the rows of tools/bench/s30-call3.sh: name -> train flags
    "x1-graphs": "--model gpt2-xl --micro-batch 1 --cuda-graphs",
    "g8-graphs": "--model gpt2 --micro-batch 8 --cuda-graphs",
    "m2-graphs": "--model gpt2-medium --micro-batch 2 --cuda-graphs",
    "l1-graphs": "--model llama-3.2-3b --micro-batch 1 --cuda-graphs",
    "k1-graphs": "--model gpt2-large --micro-batch 1 --cuda-graphs",
    "s4-graphs": "--model gpt2 --micro-batch 4 --cuda-graphs",
}
out, profile = sys.argv[1], sys.argv[2]
aios = shlex.split(sys.argv[sys.argv.index("--aios") + 1]) if "--aios" in sys.argv else ["dotnet", "src/AiOs.Planner.Cli/bin/Debug/net10.0/aios.dll"]
line = re.compile(r"^(\S+)\s+step\s+([\d.]+) ms\s+fwd\s+([\d.]+) bwd\s+([\d.]+).*dev ([\d.]+) GiB")
print(f"| run | step measured | planned | error | fwd / bwd measured | planned | device measured | planned | error |")
print("|---|---|---|---|---|---|---|---|---|")
for text in open(out):
    m = line.match(text.strip())
    if not m or m.group(1) not in ROWS:
        continue
    name, step, fwd, bwd, dev = m.group(1), *map(float, m.groups()[1:])
    args = ["plan", *ROWS[name].split(), "--seq-len", "1024", "--precision", "bf16", "--hardware", profile, "--json"]
    plan = json.loads(subprocess.run(aios + args, capture_output=True, text=True, check=True).stdout)
    ps = plan["step"]["time_s"] * 1e3
    ph = plan["step"]["phases"]
    pdev = plan["memory"]["gpu_reserved_peak_bytes"] / 2**30
    print(f"| {name} | {step:.1f} ms | {ps:.1f} | {ps / step - 1:+.1%} | {fwd:.1f} / {bwd:.1f} | {ph['forward_s'] * 1e3:.1f} / {ph['backward_s'] * 1e3:.1f} "
          f"| {dev:.2f} GiB | {pdev:.2f} | {pdev / dev - 1:+.1%} |")
