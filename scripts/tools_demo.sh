#!/bin/bash
# Every gantrain tool on one trained run, with its wall time: the measurements in the
# README's "Using a trained generator". Usage: scripts/tools_demo.sh RUN_DIR
# (train one first: .venv/bin/gantrain hydra.run.dir=outputs/demo). BIN: where the
# gantrain-* commands are (default .venv/bin).
set -euo pipefail
R=${1:?usage: scripts/tools_demo.sh RUN_DIR}
B=${BIN:-.venv/bin}
t() {
    local start=$SECONDS
    "$@" 2>&1 | grep -v Warning | tail -4
    echo "  [$((SECONDS - start)) s] ${*#$B/}"
}
t "$B/gantrain-generate" "$R" --num 64 --name demo_generate
t "$B/gantrain-walk" "$R" --seeds 0,1,2,3 --steps 8 --loop --name demo_walk
t "$B/gantrain-invert" "$R" --from-generator 16 --name demo_invert_samples
t "$B/gantrain-invert" "$R" --from-data 16 --name demo_invert_real
t "$B/gantrain-invert" "$R" --from-data 16 --encoder --name demo_invert_encoder
t "$B/gantrain-invert" "$R" --from-data 16 --task inpaint --mask center --name demo_inpaint
t "$B/gantrain-invert" "$R" --from-data 16 --task superres --scale 2 --name demo_superres
t "$B/gantrain-invert" "$R" --from-data 16 --task denoise --noise-std 0.3 --name demo_denoise
t "$B/gantrain-arithmetic" "$R" --a data:class=1 --b data:class=7 --c data:class=9 --per-group 4 --name demo_arithmetic
t "$B/gantrain-dissect" "$R" --name demo_dissect
