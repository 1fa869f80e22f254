#!/usr/bin/env bash
# Set up the engine, Blender-as-a-module and pytest, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
