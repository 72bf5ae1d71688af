#!/usr/bin/env bash
# The installed workbench, as a user gets it: the wheel built from this checkout, installed in a fresh venv
# (not editable), started from another folder: --version, a short headless run, a screenshot of the window.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/ssl_workbench-*.whl
cd "$work"
export QT_QPA_PLATFORM=offscreen SSLWB_CONFIG_DIR="$work/config"
"$work/venv/bin/ssl-workbench" --version
"$work/venv/bin/ssl-workbench" train --method simclr --data builtin:shapes:128 --image-size 16 --minutes 0.1 \
    --runs-root "$work/runs" --quiet | tail -1
"$work/venv/bin/ssl-workbench" --screenshot "$work/window.png" --view run
test -s "$work/window.png"
"$work/venv/bin/python" - "$work/venv" <<'PY'
import pathlib, sys
site = next(pathlib.Path(sys.argv[1]).glob("lib/python*/site-packages"))
for name in ("main.py", "app", "engine"):
    assert not (site / name).exists(), f"{name} landed in site-packages"
assert (site / "ssl_workbench" / "resources" / "style.qss").is_file()
print("installed copy: one package (ssl_workbench), resources found, window and training run")
PY
