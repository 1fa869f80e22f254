#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with pinned packages.
#   scripts/setup.sh          engine only (what the demo needs)
#   scripts/setup.sh --dev    engine + bpy + pytest (what the tests need)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt "$req" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
fi
