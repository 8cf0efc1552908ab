#!/usr/bin/env bash
# Twenty-third session, the next call: on an H200, issue 13's acceptance grid first (tools/bench/s24-call1.sh, calibrated
# first: the machine the issue names, which ten sessions did not get); on an H100, the gradient-norm A/B (s25-call2.sh).
set -u
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [[ $name == *H200* ]]; then bash tools/bench/s24-call1.sh; else bash tools/bench/s25-call2.sh; fi
