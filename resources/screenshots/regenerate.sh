#!/usr/bin/env bash
# Regenerates the README's screenshots the way the README says: `python main.py --screenshot`.
# Trains a short demo run first (MINUTES, default 2) so the Curves and Run history views have data.
#   PYTHON=.venv/bin/python resources/screenshots/regenerate.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python}
case "$PY" in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac  # the script changes folder
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export SSLWB_CONFIG_DIR="$WORK/config" SSLWB_CACHE_DIR="$WORK/cache" QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
cd "$WORK"
"$PY" "$ROOT/main.py" train --method simclr --data builtin:shapes:2000 --minutes "${MINUTES:-2}" --batch-size 64 \
    --runs-root runs --name demo-simclr --set eval.linear_probe_epochs=30 --set eval.monitor_size=500 \
    --set eval.bank_size=2000 --quiet
RUN=$(ls -d "$WORK"/runs/*demo-simclr*)
for view in data pretext run curves embedding inspector history; do
    "$PY" "$ROOT/main.py" --screenshot "$ROOT/resources/screenshots/$view.png" --view "$view" --open "$RUN" \
        --size 1400x900
done
