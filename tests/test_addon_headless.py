"""scripts/headless_capture.py under plain python with the bpy module: writes a .blend that
reopens with the animation; bad input exits 2 with one line and saves nothing."""

import json
import os
import subprocess
import sys

import bpy
import numpy as np
import pytest
from addon_support import bone_heads_world, make_result

from engine.contract import joints as J
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
    (["--video", __file__, "--hand-size", "200"], "error: hand size must be 0 (the model's own) or from 40 to 150 mm"),
])
def test_bad_input_exits_2_and_saves_nothing(tmp_path, args, message):
    out = tmp_path / "out.blend"
    proc = headless(*args, "--save", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# an "engine Python" that is a real program but no Python: it copies the result prepared beside the
# video to --out (the add-on's side of a capture, without the engine's minutes)
FAKE_ENGINE = """\
import json, shutil, sys
args = sys.argv[1:]            # -m engine capture VIDEO --out OUT ...
video, out = args[3], args[args.index("--out") + 1]
json.dump(sys.argv, open(video + ".used", "w"))
shutil.copy(video + ".npz", out)
print(json.dumps({"event": "done", "result": out}), flush=True)
"""


def fake_engine_python(tmp_path):
    main = tmp_path / "fake_engine.py"
    main.write_text(FAKE_ENGINE)
    py = tmp_path / "fake-python"
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{main}" "$@"\n')
    py.chmod(0o755)
    return py


def test_headless_blend_has_the_result_path_for_retarget(tmp_path):
    """Issue 12.4: a .blend made by the headless script had an empty result path (the add-on's
    settings were never registered there), so Retarget had nothing to work on."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read by the fake engine")
    make_result(str(video) + ".npz", T=7, mesh=False, video=str(video))
    out = tmp_path / "out" / "capture.blend"
    out.parent.mkdir()
    proc = headless("--video", video, "--engine-python", fake_engine_python(tmp_path), "--save", out,
                    "--focal-mm", "35", "--sensor-mm", "36", "--start", "3", "--end", "9", "--hand-size", "85")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = json.loads((tmp_path / "clip.mp4.used").read_text())  # issue 12.6: lens and range reach the engine
    assert float(args[args.index("--fov") + 1]) == pytest.approx(54.4322, abs=1e-3)
    assert args[args.index("--start") + 1] == "3" and args[args.index("--end") + 1] == "9"
    assert args[args.index("--hand-size") + 1] == "85"
    make_result(tmp_path / "r.npz", T=5, mesh=False)
    proc = headless("--result", tmp_path / "r.npz", "--save", tmp_path / "r.blend")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import hmp_addon

    hmp_addon.register()  # the settings are read back through the add-on's properties
    try:
        reopen(out)
        assert bpy.context.scene.hmp_retarget.result == "//hand_capture/clip.npz"
        assert (out.parent / "hand_capture" / "clip.npz").is_file()
        reopen(tmp_path / "r.blend")
        assert bpy.context.scene.hmp_retarget.result == str(tmp_path / "r.npz")
    finally:
        hmp_addon.unregister()


INSTALLED = """
import os, runpy, sys, bpy, addon_utils
repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
os.makedirs(repo.directory, exist_ok=True)
os.symlink(sys.argv[1], os.path.join(repo.directory, "hmp_hand_capture"))  # the extension, installed
bpy.ops.extensions.repo_refresh_all()
name = "bl_ext.user_default.hmp_hand_capture"
addon_utils.enable(name, default_set=True)
bpy.context.preferences.addons[name].preferences.engine_python = sys.argv[2]
sys.argv = [sys.argv[3], "--video", sys.argv[4], "--save", sys.argv[5]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    print("EXIT", exc.code, flush=True)
"""


def test_headless_uses_the_installed_extensions_engine_python(tmp_path):
    """Issue 12.4: run by a Blender where the extension is installed, the script ignored the add-on's
    Engine Python preference (it read $HMP_ENGINE_PYTHON or the .venv only)."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    make_result(str(video) + ".npz", T=5, mesh=False, video=str(video))
    fake = fake_engine_python(tmp_path)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), HMP_ENGINE_PYTHON="/no/such/python")
    env.pop("PYTHONPATH", None)
    out = tmp_path / "out.blend"
    proc = subprocess.run([sys.executable, "-c", INSTALLED, ROOT, str(fake), SCRIPT, str(video), str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert "EXIT 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads((tmp_path / "clip.mp4.used").read_text())[0].endswith("fake_engine.py") and out.is_file()
