#!/usr/bin/env bash
# Issue 13's acceptance grid: the engine's own runs on the GPU machine, each against the `aios` executor's prediction.
# Reads settings from a grid file (one run per line: `NAME  TRAIN-ARGS…`, '#' starts a comment), runs
# `aios train --device cuda --hardware PROFILE --runs-dir RUNS --run-id NAME …` for each, one process per run, within a
# wall-clock budget (runs that would start with less than --min-left seconds left are skipped and listed), then
# optionally `calibrate-gpu` with the time left. Writes OUT/grid.jsonl (one line per run: name, args, exit code,
# wall seconds from launch to exit), OUT/runs.tar.gz (the run folders, for `aios report` and `tools/bench/grid_table.py`)
# and OUT/grid.log.
#
#   tools/bench/engine_grid.sh GRID_FILE [--device-dir .device] [--out DIR] [--profile h200-1x-calibrated]
#                              [--budget 540] [--min-left 60] [--per-run 150] [--calibrate | --calibrate-first]
# --calibrate-first runs `calibrate-gpu`, then `calibrate --host-only` (or, when a row swaps to NVMe, `calibrate --quick` on the
# grid's swap folder), on a copy of the profile before the grid, and the grid's predictions use it
# (OUT/calibrated.json); --calibrate runs it after the grid with the time left.
# CAL_ARGS (environment): more calibrate-gpu flags for --calibrate-first, e.g. "--no-graph-replays".
set -uo pipefail
cd "$(dirname "$0")/../.."
grid=${1:?usage: engine_grid.sh GRID_FILE [options]}; shift
device_dir=.device out=${OUT:-grid-out} profile=h200-1x-calibrated budget=540 min_left=60 per_run=150 calibrate=0
while [ $# -gt 0 ]; do
  case $1 in
    --device-dir) device_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --min-left) min_left=$2; shift 2 ;;
    --per-run) per_run=$2; shift 2 ;;
    --calibrate) calibrate=1; shift ;;
    --calibrate-first) calibrate=first; shift ;;
    *) echo "error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -f "$grid" ] || { echo "error: grid file '$grid' not found" >&2; exit 2; }
[ -f "$device_dir/run.sh" ] || { echo "error: $device_dir/run.sh not found: pack the CLI first (../shared/device/pack.sh src/AiOs.Planner.Cli/AiOs.Planner.Cli.csproj $device_dir)" >&2; exit 2; }
mkdir -p "$out"
runs=/tmp/aios-grid-runs nvme=/tmp/aios-grid-nvme
rm -rf "$runs" "$nvme"; mkdir -p "$runs" "$nvme"
start=$(date +%s)
log=$out/grid.log
{ echo "grid $grid on $(hostname), $(nproc) cores, $(date -u +%FT%TZ)"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; } > "$log"
if [ "$calibrate" = first ]; then
  if [ -f "profiles/$profile.json" ]; then cp "profiles/$profile.json" "$out/calibrated.json"; else cp "$profile" "$out/calibrated.json"; fi
  timeout 180 bash "$device_dir/run.sh" calibrate-gpu --out "$out/calibrated.json" --family gpt2 --precision bf16 ${CAL_ARGS:-} >> "$log" 2>&1
  rc=$?; echo "== calibrate-gpu rc=$rc" | tee -a "$log"
  [ "$rc" = 0 ] && profile=$out/calibrated.json
  # The host too (CPU Adam's rates, memory copies): offloaded rows' plans then price this VM's CPU, not the bundled one's;
  # and, where a row swaps to NVMe, the drive under the grid's swap folder (quick: about 30 s), not the bundled drive.
  if [ "$rc" = 0 ]; then
    if grep -v '^\s*#' "$grid" | grep -q 'NVME\|nvme'; then
      timeout 150 bash "$device_dir/run.sh" calibrate --quick --nvme-path "$nvme" --base "$out/calibrated.json" --out "$out/calibrated.json" >> "$log" 2>&1
      echo "== calibrate --quick --nvme-path $nvme rc=$?" | tee -a "$log"
    else
      timeout 120 bash "$device_dir/run.sh" calibrate --host-only --base "$out/calibrated.json" --out "$out/calibrated.json" >> "$log" 2>&1
      echo "== calibrate --host-only rc=$?" | tee -a "$log"
    fi
  fi
fi
# Unpack the packed build and load the runtime once before the first row, so no run's start-up includes it.
bash "$device_dir/run.sh" --version > /dev/null 2>&1 || true
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  # Leading VAR=value words of the arguments become the run's environment.
  envs=""
  while [[ "$args" =~ ^([A-Za-z_][A-Za-z0-9_]*=[^ ]*)\ +(.*)$ ]]; do envs="$envs ${BASH_REMATCH[1]}"; args=${BASH_REMATCH[2]}; done
  left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -lt "$min_left" ]; then echo "skipped $name (${left}s left)" | tee -a "$log"; continue; fi
  limit=$(( left < per_run ? left : per_run ))
  args=${args//NVME/$nvme}
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  env $envs timeout "$limit" bash "$device_dir/run.sh" train --device cuda --hardware "$profile" --runs-dir "$runs" --run-id "$name" $args >> "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  wall=$(python3 -c "print(round($t1-$t0,2))")
  echo "{\"name\": \"$name\", \"args\": \"$args\", \"rc\": $rc, \"wall_s\": $wall}" >> "$out/grid.jsonl"
  echo "== $name rc=$rc wall=${wall}s" | tee -a "$log"
  rm -rf "$nvme"/aios-* 2>/dev/null
done < "$grid"
if [ "$calibrate" = 1 ]; then
  left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -gt 30 ]; then
    cp "profiles/$profile.json" "$out/$profile.json" 2>/dev/null || cp "$profile" "$out/calibrated.json"
    timeout "$left" bash "$device_dir/run.sh" calibrate-gpu --out "$out/$profile.json" --family gpt2 --precision bf16 >> "$log" 2>&1
    echo "== calibrate-gpu rc=$?" | tee -a "$log"
  fi
fi
find "$runs" -name '*.safetensors' -delete 2>/dev/null
tar -czf "$out/runs.tar.gz" -C "$runs" .
ls -la "$out" | tee -a "$log"
