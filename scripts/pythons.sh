# Which Python the set-up uses; sourced by scripts/setup.sh and scripts/test.sh (and by
# tests/test_engine_setup.py, which finds its base Pythons the same way).
#
# requirements.txt's pins have wheels for CPython 3.11 (Blender 4.2-5.0), 3.12 and 3.13 (Blender 5.1
# on); bpy, in requirements-dev.txt, is 5.2.3 on 3.13 and 4.2.23 on 3.11 (3.12 has none).
SUPPORTED_PYTHONS="3.11 3.12 3.13"

# py_version PY: prints "X.Y" for the Python PY; status 1, nothing printed, when PY does not run.
py_version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# find_python X.Y: prints a Python X.Y, found as pythonX.Y on PATH or in pyenv's versions (its root:
# $PYENV_ROOT, `pyenv root`, ~/.pyenv; pyenv's shims are not enough: they fail for a version that is
# installed but not selected); status 1 when there is none.
find_python() {
    local version=$1 root candidate
    root=${PYENV_ROOT:-}
    if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null || true)
    fi
    root=${root:-$HOME/.pyenv}
    for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
            $(ls -d "$root"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -rV); do
        if [ -n "$candidate" ] && [ "$(py_version "$candidate")" = "$version" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# base_python: the Python that makes a new .venv: $PYTHON when set, else a Python 3.13 (Blender 5.2
# LTS's: the add-on's tests then run in bpy 5.2), else python3.
base_python() {
    if [ -n "${PYTHON:-}" ]; then
        echo "$PYTHON"
    else
        find_python 3.13 || echo python3
    fi
}

# check_python PY: status 0 for a Python the pins install on; else one line on stderr, status 1.
check_python() {
    local version
    if ! version=$(py_version "$1") || [ -z "$version" ]; then
        echo "error: cannot run Python '$1': set PYTHON to a Python 3.11, 3.12 or 3.13" >&2
        return 1
    fi
    case " $SUPPORTED_PYTHONS " in
        *" $version "*) return 0 ;;
    esac
    echo "error: $1 is Python $version; the pinned packages need Python 3.11, 3.12 or 3.13 (set PYTHON to one)" >&2
    return 1
}
