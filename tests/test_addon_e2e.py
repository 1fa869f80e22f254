"""End to end against the real engine on a real clip (~30 frames): the headless script, the
Capture operator, re-run and cancel. Each engine run loads torch + MediaPipe (tens of seconds)."""

import glob
import os
import subprocess
import sys

import bpy
import numpy as np
import pytest
from addon_support import bone_heads_world, datablock_counts

import hmp_addon
from engine.contract import joints as J
from engine.contract import result as R
from hmp_addon import bake, coords, jobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "headless_capture.py")
CLIPS = sorted(glob.glob(os.path.join(ROOT, "demo", "*.mp4")) + glob.glob(os.path.join(ROOT, "tests", "data", "*.mp4")))


@pytest.fixture(scope="module", autouse=True)
def prerequisites():
    """The video-to-bake tests never skip: a missing prerequisite fails them, saying what is missing."""
    missing = []
    for part in ("__main__.py", "capture.py"):
        if not os.path.isfile(os.path.join(ROOT, "engine", part)):
            missing.append(f"the capture engine (engine/{part})")
    if not CLIPS:
        missing.append("a sample clip (demo/*.mp4 or tests/data/*.mp4)")
    python = os.environ.get("HMP_ENGINE_PYTHON") or hmp_addon.engine_link.default_engine_python()
    if not python or not os.path.isfile(python):
        missing.append("an engine Python ($HMP_ENGINE_PYTHON or the project's .venv: run scripts/setup.sh)")
    if missing:
        pytest.fail("the end-to-end capture tests need " + "; ".join(missing), pytrace=False)


START, END = 0, 30
TOL = 1e-3  # metres: the engine's joints are the FK of its pose (float32), keys are float32


def _clip():
    return CLIPS[0]


def _scene_frame(scene, res, t):
    ratio = scene.render.fps / scene.render.fps_base / res.fps
    return scene.frame_start + (int(res["frame_ids"][t]) - int(res["frame_ids"][0])) * ratio


def _check_against_result(scene, res, side, rig):
    hand = res.hands[side]
    valid = np.nonzero(hand["valid"])[0]
    action = rig.animation_data.action
    assert set(bake.count_keys(action).values()) == {len(valid)}
    joints16 = hand["joints"][:, J.MANO_TO_MEDIAPIPE]
    worst = 0.0
    for t in valid[:: max(1, len(valid) // 8)]:
        heads = bone_heads_world(scene, rig, _scene_frame(scene, res, t))
        worst = max(worst, np.abs(heads - coords.points_to_blender(joints16[t])).max())
    assert worst < TOL, worst


@pytest.fixture(scope="module")
def headless_blend(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "capture.blend"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, SCRIPT, "--video", _clip(), "--start", str(START), "--end", str(END),
                           "--quality", "draft", "--device", "cpu", "--save", str(out)],
                          cwd="/", env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return out


def test_headless_capture_writes_blend_with_animation(headless_blend):
    bpy.ops.wm.open_mainfile(filepath=str(headless_blend))
    clip = os.path.splitext(os.path.basename(_clip()))[0]
    rig = bpy.data.objects[f"{clip}_right_hand"]
    action = rig.animation_data.action
    assert action.name == f"{clip}_right_hand"
    counts = set(bake.count_keys(action).values())
    assert len(counts) == 1 and 0 < counts.pop() <= END - START
    # the overlay video and the result were kept beside the saved .blend, and load from there
    preview = bpy.data.movieclips[f"{clip}.preview.mp4"]
    assert preview.filepath == f"//hand_capture/{clip}.preview.mp4" and preview.frame_duration > 0
    assert os.path.isfile(os.path.join(os.path.dirname(headless_blend), "hand_capture", f"{clip}.npz"))


def test_capture_operator_end_to_end_then_rerun_replaces(headless_blend):
    bpy.ops.wm.open_mainfile(filepath=str(headless_blend))  # a scene holding a previous capture
    hmp_addon.register()
    try:
        s = bpy.context.scene.hmp_capture
        s.video, s.use_range, s.range_start, s.range_end = _clip(), True, START, END
        s.quality, s.device = "draft", "cpu"
        before = datablock_counts(bpy)
        assert bpy.ops.hmp.capture() == {"FINISHED"}  # blocking path: same job + bake as the modal one
        assert datablock_counts(bpy) == before  # re-run: Action, rig, camera replaced, not duplicated
        assert not any(a.name.endswith(".001") for a in bpy.data.actions)
        job = jobs.current()
        assert job.state == "done"
        # the scene is saved: the result moved beside it (hand_capture/), the temp folder went
        assert os.path.dirname(job.result_path) == os.path.join(os.path.dirname(bpy.data.filepath), "hand_capture")
        assert not os.path.exists(job.workdir)
        res = R.read(job.result_path)
        assert list(res["frame_ids"]) == list(range(START, END))
        clip = os.path.splitext(os.path.basename(_clip()))[0]
        _check_against_result(bpy.context.scene, res, "right", bpy.data.objects[f"{clip}_right_hand"])
    finally:
        hmp_addon.unregister()


def test_cancel_real_engine_mid_run_changes_nothing():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        before = datablock_counts(bpy)
        job = jobs.start(jobs.CaptureParams(video=_clip(), start=START, end=END, quality="draft", device="cpu",
                                            engine_python=hmp_addon.engine_link.default_engine_python()))
        jobs.run_to_end(job, bpy.context, timeout=300, until=lambda j: j.run.stage)  # the engine is up and working
        assert not job.finished, job.error
        assert bpy.ops.hmp.cancel_capture() == {"FINISHED"}
        assert job.state == "cancelled" and job.run.proc.poll() is not None
        assert datablock_counts(bpy) == before
        assert not os.path.exists(job.workdir)
    finally:
        hmp_addon.unregister()
