"""Where the engine lives, and its pure-Python / numpy-only modules shared with the add-on (the option
values in ``choices``, the joint tables, the result format, the progress events).

Installed as an extension, ``engine/`` ships inside the zip next to ``hmp_addon/`` and is imported
relatively (``..engine``). Run from a source checkout (pytest, scripts/headless_capture.py) the
repository root is on ``sys.path`` and ``hmp_addon`` is a top-level package, so the relative import
is impossible and the top-level ``engine`` package is used instead: the same files either way.
"""

import os
import sys

try:  # installed extension: bl_ext.<repo>.hmp_hand_capture.engine
    from ..engine import __version__ as ENGINE_VERSION
    from ..engine.contract import choices, joints, progress, result
except ImportError:  # source checkout: hmp_addon is top-level, repo root on sys.path
    from engine import __version__ as ENGINE_VERSION
    from engine.contract import choices, joints, progress, result

# The extension root: the folder holding hmp_addon/ and engine/. `python -m engine` runs from here.
EXTENSION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["ENGINE_VERSION", "EXTENSION_ROOT", "choices", "joints", "progress", "result", "default_engine_python"]


def default_engine_python(root=EXTENSION_ROOT):
    """The project's virtualenv Python next to the extension, or "" when there is none."""
    if sys.platform == "win32":
        candidate = os.path.join(root, ".venv", "Scripts", "python.exe")
    else:
        candidate = os.path.join(root, ".venv", "bin", "python")
    return candidate if os.path.isfile(candidate) else ""
