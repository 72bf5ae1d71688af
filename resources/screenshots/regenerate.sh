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
# the first minute (README "Embedding map"): the default run's map at step 0 and after 60 s, side by side, and the GIF
"$PY" "$ROOT/main.py" --demo --screenshot "$WORK/map_0s.png" --after 0 --size 1400x900 --timeout 300
"$PY" "$ROOT/main.py" --demo --screenshot "$WORK/map_60s.png" --after 60 --size 1400x900 --timeout 400 \
    --gif "$ROOT/resources/screenshots/first_minute.gif"
"$PY" - "$WORK/map_0s.png" "$WORK/map_60s.png" "$ROOT/resources/screenshots/first_minute.png" <<'PY'
import sys
from PIL import Image
a, b = (Image.open(p).convert("RGB") for p in sys.argv[1:3])
out = Image.new("RGB", (a.width + b.width + 12, max(a.height, b.height)), "white")
out.paste(a, (0, 0)); out.paste(b, (a.width + 12, 0))
out.save(sys.argv[3])
PY
