#!/usr/bin/env bash
# The GPU check of gantrain in one command (scripts/gpu_check.py says what it runs):
#
#   bash scripts/gpu_check.sh [OUT_DIR] [--quick] [--parts NAME ...]   # OUT_DIR: ./gpu_report/
#
# On the GPU machine of ../shared/gpu/README.md (its wheels copied into .whl), it first
# installs them and gantrain into /tmp/site when gantrain is not importable. Python:
# $PYTHON, else .venv/bin/python when there is one, else python3. At most 8 minutes
# (--budget SECONDS), this setup included; the report is written as parts finish.
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# Children import gantrain as installed: never the checkout's folder from the working
# directory (it has no gantrain/conf when gantrain is installed rather than editable).
export PYTHONSAFEPATH=1
if ! "$PY" -c "import gantrain.conf, hydra, omegaconf" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu_check: gantrain is not importable by $PY and there is no .whl folder to install it from" \
             "(../shared/gpu/README.md)" >&2
        exit 2
    fi
    echo "gpu_check: installing .whl/*.whl and gantrain into /tmp/site"
    "$PY" -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
        && "$PY" -m pip install -q --upgrade --no-index --no-deps --no-build-isolation --target /tmp/site . \
        && export PATH=/tmp/site/bin:$PATH || exit 2
fi
export GPU_CHECK_T0=$T0
exec "$PY" scripts/gpu_check.py "$@"
