#!/usr/bin/env bash
# Create (or update) a virtual environment with pinned packages.
#   scripts/setup.sh                   engine only, in .venv (what the demo needs)
#   scripts/setup.sh --dev             engine + bpy + pytest (what the tests need)
#   scripts/setup.sh --dev --venv DIR  the same in DIR (scripts/test.sh's .venv-py311)
# A new environment is made with $PYTHON when set, else a Python 3.13 (on PATH or in pyenv's
# versions), else python3 (scripts/pythons.sh); Python 3.11, 3.12 and 3.13 work, others are refused.
# An existing environment keeps the Python it was made with (remove it to change).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pythons.sh
req=requirements.txt
venv=.venv
while [ $# -gt 0 ]; do
    case $1 in
        --dev) req=requirements-dev.txt ;;
        --venv) venv=${2:?--venv needs a folder}; shift ;;
        *) echo "usage: scripts/setup.sh [--dev] [--venv DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [ ! -x "$venv/bin/python" ]; then
    py=$(base_python)
    check_python "$py" || exit 1
    echo "Making $venv with $py (Python $(py_version "$py"))" >&2
    "$py" -m venv "$venv"
fi
check_python "$venv/bin/python" || exit 1  # one made earlier, with a Python the pins do not support
if [ -n "${PYTHON:-}" ] && [ "$(py_version "$PYTHON")" != "$(py_version "$venv/bin/python")" ]; then
    echo "note: $venv is Python $(py_version "$venv/bin/python"), not PYTHON's $(py_version "$PYTHON"): remove $venv to remake it" >&2
fi
# the stamp names the requirements' contents: pip runs again only when they changed
stamp="$venv/.installed-$(cat requirements.txt "$req" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
fi
