"""docs/img/wrist_rest.png: a T-posed character's hand retargeted with the wrist placements
'Rotation' and 'Rotation from Rest' (issue 12.10), drawn from the front at the take's first frame
and a later one. Run: .venv/bin/python tools/make_wrist_rest_figure.py

The capture is the synthetic one of the add-on tests (tests/addon_support.make_result); the
character is a Mixamo-named arm and hand laid along the world X axis.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bpy  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from addon_support import make_result  # noqa: E402

import hmp_addon  # noqa: E402
from engine.contract import result as R  # noqa: E402
from hmp_addon import bonemaps, retarget  # noqa: E402


def character(res):
    from test_addon_retarget import mixamo_armature

    obj = mixamo_armature(res)
    obj.rotation_euler = (0.0, np.pi / 2, 0.0)  # T-pose: the arm along world X
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
    return obj


def segments(obj, frame):
    bpy.context.scene.frame_set(frame)
    mw = obj.matrix_world
    return [(np.array(mw @ b.head), np.array(mw @ b.tail), b.name.endswith("ForeArm")) for b in obj.pose.bones]


def main(out=ROOT / "docs" / "img" / "wrist_rest.png"):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    bpy.context.scene.render.fps = 30
    tmp = tempfile.mkdtemp()
    make_result(os.path.join(tmp, "r.npz"), T=12, mesh=False)
    res = R.read(os.path.join(tmp, "r.npz"))
    obj = character(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, (root, title) in zip(axes, (("ROTATION", "Rotation (the camera's view)"),
                                        ("REST", "Rotation from Rest"))):
        retarget.retarget_result(bpy.context, obj, res, "right", mapping, root=root)
        for frame, colour in ((1, "tab:blue"), (8, "tab:orange")):
            for head, tail, fore in segments(obj, frame):
                ax.plot([head[0], tail[0]], [head[2], tail[2]], color="0.6" if fore else colour,
                        lw=4 if fore else 1.5, solid_capstyle="round")
            ax.plot([], [], color=colour, label=f"frame {frame}")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlabel("world X (m)")
        ax.legend(loc="lower left", fontsize=8)
    axes[0].set_ylabel("world Z (m)")
    fig.suptitle("A T-posed arm (grey: forearm) after retargeting, seen from the front")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
