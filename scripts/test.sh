#!/usr/bin/env bash
# Set up the engine, Blender-as-a-module and pytest, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# -n auto: one worker per core; --dist loadfile: a file's tests stay in one worker (the Ray batch tests
# run one cluster at a time, module fixtures are built once)
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
