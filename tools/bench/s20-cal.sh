#!/usr/bin/env bash
# Seventeenth session, first device call: this VM's profile (calibrate-gpu, then the drive under the grids' swap folder and
# the host probes) for the out-of-sample grids of the next calls, and the engine's CPU Adam by call size (bench-adam) at
# the units of gpt2-medium, gpt2-large and gpt2-xl against the calibration's 32 M sub-groups, over the calibration's
# state and over gpt2-xl's whole state. Writes everything under $OUT (the profile: $OUT/calibrated.json).
set -u
p=h100-1x-vm; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && p=h200-1x-calibrated
echo "profile=$p"
{ nvidia-smi; lscpu; cat /sys/kernel/mm/transparent_hugepage/enabled; free -g; df -h /tmp; uptime; } > "$OUT/host.txt" 2>&1
bash .device/run.sh --version > /dev/null 2>&1
run() { bash .device/run.sh "$@"; }
run bench-adam --model gpt2-medium,gpt2-large,gpt2-xl --sub-group 32M --kernel bf16 --profile $p --json > "$OUT/adam-16xL3.json" 2> "$OUT/adam-16xL3.err"; echo "bench-adam 16xL3 rc=$?"
run bench-adam --model gpt2-medium,gpt2-xl --sub-group 32M --kernel bf16 --parameters 1.56G --json > "$OUT/adam-xl-state.json" 2> "$OUT/adam-xl-state.err"; echo "bench-adam xl state rc=$?"
run bench-adam --model gpt2-medium,gpt2-xl --sub-group 32M --kernel bf16 --threads 15 --json > "$OUT/adam-15t.json" 2> "$OUT/adam-15t.err"; echo "bench-adam 15 threads rc=$?"
cp "profiles/$p.json" "$OUT/calibrated.json"
nvme=/tmp/aios-grid-nvme; mkdir -p $nvme
/usr/bin/time -f "%e s" timeout 200 bash .device/run.sh calibrate-gpu --out "$OUT/calibrated.json" --family gpt2 --precision bf16 > "$OUT/calibrate-gpu.log" 2>&1; echo "calibrate-gpu rc=$?"; tail -3 "$OUT/calibrate-gpu.log"
/usr/bin/time -f "%e s" timeout 200 bash .device/run.sh calibrate --quick --nvme-path $nvme --base "$OUT/calibrated.json" --out "$OUT/calibrated.json" > "$OUT/calibrate.log" 2>&1; echo "calibrate rc=$?"; tail -8 "$OUT/calibrate.log"
python3 - "$OUT" <<'PY'
import json, sys
for f in ("adam-16xL3", "adam-xl-state", "adam-15t"):
    try: d = json.load(open(f"{sys.argv[1]}/{f}.json"))
    except Exception as e: print(f, "unreadable", e); continue
    print(f, d["state_parameters"], d["threads"], [(r["sub_group"], round(r["params_per_s"] / 1e9, 3), r["units"]) for r in d["rows"]])
PY
