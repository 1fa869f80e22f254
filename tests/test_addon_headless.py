"""scripts/headless_capture.py under plain python with the bpy module: writes a .blend that
reopens with the animation; bad input exits 2 with one line and saves nothing."""

import os
import subprocess
import sys

import numpy as np
import pytest

import bpy

from addon_support import bone_heads_world, make_result
from engine import joints as J
from hmp_addon import bake, coords

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "headless_capture.py")


def headless(*args, timeout=300):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script finds the repository itself
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd="/", env=env, capture_output=True,
                          text=True, timeout=timeout)


def reopen(path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return bpy.context.scene


def test_result_to_blend_reopens_with_animation(tmp_path):
    arrays = make_result(tmp_path / "r.npz", T=12, sides=("right", "left"), mesh=True)
    out = tmp_path / "out.blend"
    proc = headless("--result", tmp_path / "r.npz", "--hands", "both", "--save", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "saved" in proc.stdout and out.is_file()
    scene = reopen(out)
    for side in ("right", "left"):
        rig = bpy.data.objects[f"my clip_{side}_hand"]
        action = rig.animation_data.action
        assert action.name == f"my clip_{side}_hand"
        assert set(bake.count_keys(action).values()) == {12}
        t = 7
        frame = scene.frame_start + t * scene.render.fps / scene.render.fps_base / 30.0
        heads = bone_heads_world(scene, rig, frame)
        want = coords.points_to_blender(arrays[f"{side}/joints"][t, J.MANO_TO_MEDIAPIPE])
        assert np.abs(heads - want).max() < 1e-4


def test_existing_scene_and_armature(tmp_path):
    make_result(tmp_path / "a.npz", T=6, mesh=False)
    first = tmp_path / "first.blend"
    assert headless("--result", tmp_path / "a.npz", "--save", first).returncode == 0
    make_result(tmp_path / "b.npz", T=9, seed=5, mesh=False)
    second = tmp_path / "second.blend"
    proc = headless("--scene", first, "--result", tmp_path / "b.npz", "--armature", "my clip_right_hand",
                    "--no-camera", "--save", second)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reopen(second)
    rig = bpy.data.objects["my clip_right_hand"]
    assert set(bake.count_keys(rig.animation_data.action).values()) == {9}
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 1


@pytest.mark.parametrize("args,message", [
    (["--video", "/no/such.mp4"], "error: video not found"),
    (["--result", "/no/such.npz"], "error: result file not found"),
    (["--video", __file__, "--engine-python", "/no/python"], "error: engine Python not found"),
    (["--video", __file__, "--armature", "Nope"], "error: no object called 'Nope'"),
])
def test_bad_input_exits_2_and_saves_nothing(tmp_path, args, message):
    out = tmp_path / "out.blend"
    proc = headless(*args, "--save", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
