#!/usr/bin/env bash
# CPU target (issue 5, §7): measured step time of `aios train` against the simulator's prediction with this
# machine's calibrated profile, for placements × micro-batch × schedule. Prints a Markdown table: per setting the
# median of the steady steps (every step after the first) pooled over the repeats, the spread of the per-run
# medians ((max − min) / median), the prediction and the error (predicted − measured) / measured.
#
#   tests/AiOs.Planner.Benchmarks/cpu-target.sh [repeats=2] [steps=4]
#
# Environment: AIOS (default: the Release build of the CLI), PROFILE (default
# profiles/ci-2core-24gb-calibrated.json), NVME (swap folder, default /tmp/aios-nvme), RUNS (default
# /tmp/aios-cpu-target), ONLY (an extended regular expression: run only the settings whose name matches). Needs jq. Run on a quiet machine: `uptime` is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${1:-2}
steps=${2:-4}
AIOS=${AIOS:-src/AiOs.Planner.Cli/bin/Release/net10.0/aios.dll}
PROFILE=${PROFILE:-profiles/ci-2core-24gb-calibrated.json}
NVME=${NVME:-/tmp/aios-nvme}
RUNS=${RUNS:-/tmp/aios-cpu-target}
[ -f "$AIOS" ] || dotnet build -c Release src/AiOs.Planner.Cli >/dev/null
mkdir -p "$NVME" "$RUNS"

# gpt2 at a short sequence: steps of 3–10 s on 2 cores. The engine always recomputes layers in backward,
# so the prediction is asked for with checkpointing too.
common=(--model gpt2 --seq-len 128 --precision fp32 --sub-group-size 20000000 --pipeline-read --pipeline-write
  --grad-checkpointing --nvme-offload-path "$NVME" --hardware "$PROFILE" --steps "$steps" --runs-dir "$RUNS")
settings=(
  "params nvme, optim nvme, mb 1|--micro-batch 1"
  "params nvme, optim nvme, mb 2|--micro-batch 2"
  "params nvme, optim nvme, mb 4|--micro-batch 4"
  "params nvme, optim nvme, mb 1, overlapped|--micro-batch 1 --schedule overlapped"
  "params cpu, optim nvme, mb 1|--micro-batch 1 --no-nvme-offload-params --offload-params cpu"
  "params cpu, optim nvme, mb 4|--micro-batch 4 --no-nvme-offload-params --offload-params cpu"
  "params nvme, optim cpu, mb 2|--micro-batch 2 --no-nvme-offload-optimizer --offload-optimizer cpu"
)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| setting | steady steps | measured median | spread of runs | predicted | error | fwd / bwd / optim measured | fwd / bwd / optim predicted |"
echo "|---|---|---|---|---|---|---|---|"
for entry in "${settings[@]}"; do
  name=${entry%%|*}
  if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
  read -r -a flags <<<"${entry#*|}"
  ids=()
  for r in $(seq 1 "$repeats"); do
    id="cpu-$(echo "$name" | tr -c 'a-z0-9' '-' | tr -s '-')r$r-$$"
    dotnet "$AIOS" train "${common[@]}" "${flags[@]}" --run-id "$id" >/dev/null
    ids+=("$RUNS/$id")
  done
  steady=$(for d in "${ids[@]}"; do jq -s 'map(select(.step > 1) | .wall_ms)[]' "$d/metrics.jsonl"; done | sort -n)
  count=$(echo "$steady" | wc -l)
  median=$(echo "$steady" | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) / 1000}')
  runs=$(for d in "${ids[@]}"; do jq -s 'map(select(.step > 1) | .wall_ms) | sort | .[length/2|floor]' "$d/metrics.jsonl"; done | sort -n)
  spread=$(echo "$runs" | awk -v m="$median" '{a[NR]=$1} END {printf "%.0f%%", (a[NR] - a[1]) / 1000 / m * 100}')
  phases=$(for d in "${ids[@]}"; do jq -s 'map(select(.step > 1))[] | [.forward_ms, .backward_ms, .optimizer_ms] | @tsv' -r "$d/metrics.jsonl"; done |
    awk '{f+=$1; b+=$2; o+=$3; n++} END {printf "%.2f / %.2f / %.2f s", f/n/1000, b/n/1000, o/n/1000}')
  predicted=$(jq '.step.time_s' "${ids[0]}/prediction.json")
  pphases=$(jq -r '.step.phases | "\(.forward_s * 100 | round / 100) / \(.backward_s * 100 | round / 100) / \(.optimizer_s * 100 | round / 100) s"' "${ids[0]}/prediction.json")
  error=$(awk -v p="$predicted" -v m="$median" 'BEGIN {printf "%+.1f%%", (p - m) / m * 100}')
  printf '| %s | %d | %.2f s | %s | %.2f s | %s | %s | %s |\n' "$name" "$count" "$median" "$spread" "$predicted" "$error" "$phases" "$pphases"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
