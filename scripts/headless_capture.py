"""Headless capture: video (or result file) -> keyframed hand rigs -> .blend.

    blender -b [scene.blend] --python scripts/headless_capture.py -- --video X [--armature NAME] --save OUT.blend
    python scripts/headless_capture.py --video X [--scene scene.blend] --save OUT.blend   # bpy module

Options: --result R.npz (bake an existing result), --hands right|left|both, --start/--end N,
--quality, --device, --hand-size MM, --engine-python PY, --no-camera. Exit code 0 on success, 2 with one
`error: ...` line otherwise (nothing saved).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the repository root: hmp_addon and engine as top-level packages

from hmp_addon import headless  # noqa: E402


def _argv():
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


if __name__ == "__main__":
    sys.exit(headless.run(_argv()))
