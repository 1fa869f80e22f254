#!/usr/bin/env bash
# Set up the engine, Blender-as-a-module and pytest, then run the whole test suite; then the add-on's
# tests again under the oldest Blender blender_manifest.toml claims.
#   scripts/test.sh [PYTEST ARGS]     the arguments go to both runs
# 1. .venv (scripts/setup.sh picks its Python: $PYTHON, else a Python 3.13, else python3): the whole
#    suite; with Python 3.13 under bpy 5.2.3 (Blender 5.2 LTS).
# 2. When .venv is not Python 3.11 and a Python 3.11 is found (PATH or pyenv): .venv-py311, made or
#    updated from requirements-dev.txt (bpy 4.2.23: Blender 4.2), runs tests/test_addon_*.py.
# The exit status is non-zero when either run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pythons.sh
bash scripts/setup.sh --dev
# -n auto: one worker per core; --dist loadfile: a file's tests stay in one worker (the Ray batch tests
# run one cluster at a time, module fixtures are built once)
status=0
.venv/bin/python -m pytest -n auto --dist loadfile "$@" || status=$?
if [ "$(py_version .venv/bin/python)" = 3.11 ]; then
    exit $status  # the suite ran under bpy 4.2 already
fi
if ! py311=$(find_python 3.11); then
    echo "note: no Python 3.11 (PATH or pyenv): the add-on's tests did not run under bpy 4.2" >&2
    exit $status
fi
PYTHON=$py311 bash scripts/setup.sh --dev --venv .venv-py311
echo "The add-on's tests under bpy 4.2 (Python 3.11, .venv-py311):"
# --addon-only (tests/conftest.py): only tests/test_addon_*.py are collected, also from paths in the
# arguments; exit code 5 (nothing collected: the arguments chose no add-on test) is no failure
addon=0
.venv-py311/bin/python -m pytest -n auto --dist loadfile --addon-only "$@" || addon=$?
if [ $addon -ne 0 ] && [ $addon -ne 5 ] && [ $status -eq 0 ]; then
    status=$addon
fi
exit $status
