#!/usr/bin/env bash
# Issue 16: the engine's resident training speed against PyTorch eager and torch.compile, on one GPU.
# For gpt2, gpt2-medium, gpt2-large and gpt2-xl at micro-batch 8 and gpt2-xl at micro-batch 1 (seq 1024, bf16,
# nothing offloaded), runs tools/bench/torch_baselines.py (eager, compile) and the packed engine's `train`,
# interleaved: each repeat runs every setting once, and the order of the three implementations rotates from one
# setting to the next, so a drift of the machine does not favour one of them. Each run is its own process.
# Results are appended as JSON lines to OUT/bench.jsonl (the engine's read from its run folder, summary.json
# and metrics.jsonl, never from screen text); the markdown table for docs/benchmarks.md goes to
# OUT/bench-table.md and stdout. Re-running with the same OUT adds runs: the table takes the median over them.
#
#   tools/bench/compare.sh [--device-dir .device] [--out DIR] [--repeats 2] [--steps 20] [--only REGEX]
#                          [--engine-args 'ARGS'] [--dry-run] [--table-only]
#
# On the GPU machine, from the repository root, with the CLI packed by ../shared/device/pack.sh into .device:
#   tools/bench/compare.sh --out "$OUT"
# --only picks settings by an extended regular expression over "model mb N" (e.g. --only 'gpt2-xl'), to split
# the work over several commands (one command may run 10 minutes; the first torch.compile of gpt2-xl takes about one).
# --engine-args: more flags for `train` (default: --hardware h200-1x-calibrated, as docs/engine.md's runs; the
# profile only feeds the capacity check and prediction.json, not the step).
set -euo pipefail
cd "$(dirname "$0")/../.."

device_dir=.device out=${OUT:-bench-out} repeats=2 steps=20 only="" dry=0 table_only=0 engine_args="--hardware h200-1x-calibrated"
warmup_eager=5 warmup_compile=10 warmup_engine=5 seq=1024
while [ $# -gt 0 ]; do
  case $1 in
    --device-dir) device_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --engine-args) engine_args=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --table-only) table_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$repeats" "$steps"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: --repeats and --steps take a whole number ≥ 1; got '$n'" >&2; exit 2; }
done

results=$out/bench.jsonl runs=$out/runs
settings=("gpt2 8" "gpt2-medium 8" "gpt2-large 8" "gpt2-xl 8" "gpt2-xl 1")
impls=(eager compile engine)

render() {
  python3 tools/bench/bench_table.py table "$results" > "$out/bench-table.md.tmp"
  mv "$out/bench-table.md.tmp" "$out/bench-table.md"
  cat "$out/bench-table.md"
}

if [ "$table_only" = 1 ]; then render; exit 0; fi
if [ "$dry" = 0 ]; then
  [ -f "$device_dir/run.sh" ] || { echo "error: $device_dir/run.sh not found: pack the CLI first (../shared/device/pack.sh src/AiOs.Planner.Cli/AiOs.Planner.Cli.csproj $device_dir) or pass --device-dir" >&2; exit 2; }
  python3 -c 'import torch, transformers' 2>/dev/null || { echo "error: python3 cannot import torch and transformers; run this where they are installed (the GPU machine)" >&2; exit 2; }
  mkdir -p "$out" "$runs"
  {
    echo "{\"impl\": \"machine\", \"utc\": \"$(date -u +%FT%TZ)\", \"host\": \"$(hostname)\", \"cores\": $(nproc), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
    echo " \"gpu\": \"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)\", \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\"}"
  } | tr -d '\n' >> "$results"
  echo >> "$results"
fi

run() { # impl model mb repeat
  local impl=$1 model=$2 mb=$3 r=$4
  case $impl in
    eager|compile)
      local cmd=(python3 tools/bench/torch_baselines.py --model "$model" --micro-batch "$mb" --seq-len "$seq" --mode "$impl"
        --warmup "$([ "$impl" = eager ] && echo $warmup_eager || echo $warmup_compile)" --steps "$steps" --out "$results")
      if [ "$dry" = 1 ]; then echo "${cmd[*]}"; else "${cmd[@]}" >/dev/null || echo "  ($impl $model mb $mb failed: its line in $results says why)" >&2; fi ;;
    engine)
      # The engine's own warm-up is its first steps: as many as eager's, left out by bench_table.py.
      local id="bench-$model-mb$mb-r$r-$$"
      local cmd=(bash "$device_dir/run.sh" train --device cuda --model "$model" --micro-batch "$mb" --seq-len "$seq" --precision bf16
        --steps "$((warmup_engine + steps))" --runs-dir "$runs" --run-id "$id" --json)
      read -r -a extra <<<"$engine_args"
      cmd+=("${extra[@]}")
      if [ "$dry" = 1 ]; then echo "${cmd[*]}"; return; fi
      "${cmd[@]}" > "$runs/$id.log" 2>&1 || echo "  (engine $model mb $mb failed: $runs/$id.log)" >&2
      python3 tools/bench/bench_table.py engine-line --run "$runs/$id" --warmup "$warmup_engine" --micro-batch "$mb" --seq-len "$seq" --repeat "$r" >> "$results" || true ;;
  esac
}

i=0
for r in $(seq 1 "$repeats"); do
  for s in "${settings[@]}"; do
    read -r model mb <<<"$s"
    if [ -n "$only" ] && ! [[ "$model mb $mb" =~ $only ]]; then continue; fi
    for k in 0 1 2; do
      impl=${impls[$(( (i + k) % 3 ))]}
      # torch.compile's worker processes can outlive their run for a moment: wait (up to 30 s) so none shares the host.
      for w in $(seq 1 30); do pgrep -f compile_worker >/dev/null 2>&1 || break; sleep 1; done
      # The GPU's temperature, clock and power before each run: an engine run right after a compile run was twice 20–25%
      # slower (2026-12-07) with no other process on the host.
      echo "repeat $r: $model mb $mb, $impl ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg), gpu $(nvidia-smi --query-gpu=temperature.gpu,clocks.sm,clocks.mem,power.draw --format=csv,noheader 2>/dev/null | head -1))" >&2
      run "$impl" "$model" "$mb" "$r"
    done
    i=$((i + 1))
  done
done
if [ "$dry" = 1 ]; then exit 0; fi
render
