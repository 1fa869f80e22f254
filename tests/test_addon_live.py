"""Capture from a camera in Blender (hmp_addon/live.py, live_view.py, live_ui.py) against the real
engine: a real clip played as the camera (``engine live --realtime``), the live rig posed from the
engine's pose events, Stop, the two-stage fit of the take baked; the fit's result equal to
``engine capture`` run on the take directly.
Bad input: no camera, a stream that drops, a take too short to fit, a fit cancelled, Blender quitting
or killed while recording: one message each, the take kept."""

import os
import signal
import subprocess
import sys
import time
import types

import bpy
import numpy as np
import pytest
from addon_support import datablock_counts, forward_kinematics, operator_driver

import hmp_addon
from engine.contract import result as R
from hmp_addon import coords, live, live_ui, live_view, rig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(ROOT, "tests", "data", "hand_short.mp4")  # 60 frames, 640x360, 30 fps, a right hand
LONG = os.path.join(ROOT, "tests", "data", "pinch_fist.mp4")  # 192 frames, 640x720, 30 fps


def engine_python():
    python = os.environ.get("HMP_ENGINE_PYTHON") or hmp_addon.engine_link.default_engine_python()
    if not python or not os.path.isfile(python):
        pytest.fail("the live capture tests need the engine's Python ($HMP_ENGINE_PYTHON or the project's .venv)",
                    pytrace=False)
    return python


@pytest.fixture()
def scene(monkeypatch, tmp_path):
    monkeypatch.setenv("HMP_ENGINE_PYTHON", engine_python())
    monkeypatch.setenv("HMP_CACHE_DIR", str(tmp_path / "cache"))  # both captures of a test share it
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    s = bpy.context.scene
    s.hmp_capture.quality = "draft"
    s.hmp_capture.device = "cpu"
    s.hmp_live.folder = str(tmp_path / "takes")
    yield s
    live.cancel_current()
    hmp_addon.unregister()


_Driver = operator_driver(live_ui.HMP_OT_live_start)


def _drive(drv, until, timeout=600):
    t0 = time.monotonic()
    while True:
        ret = live_ui.HMP_OT_live_start.modal(drv, bpy.context, types.SimpleNamespace(type="TIMER"))
        if ret != {"RUNNING_MODAL"} or until(live.current()):
            return ret
        assert time.monotonic() - t0 < timeout, live.current().message
        time.sleep(0.02)


def _frames(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    return n


def test_live_argv():
    argv = live.live_argv("/py", "0", "/t/take.mp4", "both", "/t/n.jpg", realtime=False, seconds=5, fov=70.0,
                          hand_size=85.0)
    assert argv[:4] == ["/py", "-m", "engine", "live"]
    pairs = {argv[i]: argv[i + 1] for i in range(4, len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--source"] == "0" and pairs["--record"] == "/t/take.mp4" and pairs["--hands"] == "both"
    assert pairs["--progress"] == "jsonl" and pairs["--seconds"] == "5" and pairs["--fov"] == "70"
    assert pairs["--frame-image"] == "/t/n.jpg" and pairs["--hand-size"] == "85" and "--realtime" not in argv
    assert live.is_file_source("/clips/a.mp4") and not live.is_file_source("0")
    assert not live.is_file_source("/dev/video0") and not live.is_file_source("rtsp://cam/1")


def test_start_live_rig_stop_fit_bake_equals_direct_capture(scene, tmp_path):
    scene.hmp_live.source = CLIP
    drv = _Driver()
    job = drv.job_start(bpy.context)
    assert job is not None, drv.reports
    # the recording: the rig follows the engine's pose events (a take long enough to fit before Stop)
    _drive(drv, lambda j: j.poses_applied >= 3 and j.last_pose["frame"] >= 2 * live.LIVE_MIN_FRAMES, timeout=120)
    assert job.state == "recording" and bpy.context.window_manager.hmp_live_state.running
    take_name = os.path.splitext(os.path.basename(job.take))[0]
    obj = bpy.data.objects[f"{take_name}_right_hand"]
    assert job.rigs == {"right": obj.name} and obj.animation_data is None  # live: posed, no keys yet
    # the rig's bones sit where the hand model's forward kinematics puts the newest pose's joints
    event = job.last_pose
    hand = event["hands"]["right"]
    rest = np.array([obj.data.bones[n].head_local for n in rig.BONE_NAMES])
    rest_cv = rest @ coords.CV_TO_BLENDER  # Blender -> camera frame (the matrix is orthogonal)
    want = forward_kinematics(rest_cv, np.array([hand["global_orient"]]), np.array([hand["hand_pose"]]),
                              np.array([hand["transl"]]))[0]
    bpy.context.view_layer.update()
    heads = np.array([list(obj.pose.bones[n].head) for n in rig.BONE_NAMES])
    assert np.abs(heads - coords.points_to_blender(want)).max() < 1e-4
    # the camera image behind the live camera
    _drive(drv, lambda j: bpy.data.images.get(live_view.IMAGE_NAME) is not None, timeout=60)
    image = bpy.data.images[live_view.IMAGE_NAME]
    assert tuple(image.size) == (640, 360)
    cam = bpy.data.objects[f"{take_name}_camera"]
    assert any(bg.image == image for bg in cam.data.background_images)
    # Stop (Esc while recording is Stop): the take closes, the fit starts (a loaded machine may have
    # reached the clip's end already: that ends the take too)
    if job.state == "recording":
        live_ui.HMP_OT_live_start.modal(drv, bpy.context, types.SimpleNamespace(type="ESC"))
    ret = _drive(drv, lambda j: False, timeout=900)
    assert ret == {"FINISHED"}, drv.reports
    assert job.state == "done", (job.error, drv.reports)
    n = _frames(job.take)
    assert job.frames == n and live.LIVE_MIN_FRAMES <= n <= 60  # stopped part way or at the clip's end
    # baked onto the very rig that moved live, one key per valid frame; the camera image gone
    assert bpy.data.objects[f"{take_name}_right_hand"] is obj
    assert obj.animation_data.action.name == f"{take_name}_right_hand"
    assert bpy.data.images.get(live_view.IMAGE_NAME) is None
    assert scene.hmp_capture.video == job.take  # Capture would fit it again
    assert "Captured" in bpy.context.window_manager.hmp_live_state.last_info
    # the result of Stop is `engine capture` of the take, run directly with the same options
    direct = tmp_path / "direct.npz"
    proc = subprocess.run([engine_python(), "-m", "engine", "capture", job.take, "--out", str(direct), "--hands",
                           "right", "--quality", "draft", "--device", "cpu", "--progress", "quiet"], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours, theirs = R.read(job.capture.result_path), R.read(str(direct))
    assert np.array_equal(ours["frame_ids"], theirs["frame_ids"]) and len(ours["frame_ids"]) == n
    for key in ("global_orient", "hand_pose", "transl", "joints", "betas", "valid"):
        assert np.allclose(ours.hands["right"][key], theirs.hands["right"][key], atol=1e-5), key


def test_cancel_during_the_fit_keeps_the_take(scene):
    before = datablock_counts(bpy)
    scene.hmp_live.source = LONG
    scene.hmp_live.seconds = 1.0
    scene.hmp_capture.quality = "best"  # a long fit, to be cancelled
    job = live.start(bpy.context)
    live.run_to_end(job, bpy.context, timeout=300, until=lambda j: j.state == "fitting")
    assert bpy.ops.hmp.live_cancel() == {"FINISHED"}
    live.run_to_end(job, bpy.context, timeout=60)
    assert job.state == "cancelled" and f"the take is kept in {job.take}" in job.info
    assert _frames(job.take) == 30 and os.path.isfile(job.take + ".times.json")
    assert scene.hmp_capture.video == job.take
    assert datablock_counts(bpy) == before  # the live rig and camera went with the fit
    assert bpy.data.images.get(live_view.IMAGE_NAME) is None


def test_a_take_too_short_to_fit_is_kept(scene):
    scene.hmp_live.source = LONG
    scene.hmp_live.seconds = 0.1  # 3 frames
    job = live.start(bpy.context)
    live.run_to_end(job, bpy.context, timeout=300)
    assert job.state == "error"
    assert job.error == (f"the take is too short to fit: 3 frames, the fit needs at least {live.LIVE_MIN_FRAMES}; "
                         f"it is kept in {job.take}")
    assert _frames(job.take) == 3


def test_no_camera_is_one_clear_error(scene):
    before = datablock_counts(bpy)
    scene.hmp_live.source = "7"
    with pytest.raises(RuntimeError, match="set Seconds"):  # from a script a camera must be given a length
        bpy.ops.hmp.live_start()
    scene.hmp_live.seconds = 2.0
    assert live_ui.HMP_OT_live_start.execute(_Driver(), bpy.context) == {"CANCELLED"}
    job = live.current()
    assert job.state == "error" and job.error == (
        "engine: cannot open camera 7: no such camera, or another program is using it")
    assert bpy.context.window_manager.hmp_live_state.last_error == f"Camera capture failed: {job.error}"
    assert not os.path.exists(job.take) and datablock_counts(bpy) == before


@pytest.mark.parametrize("source,message", [("", "choose a camera"), ("/no/such/clip.mp4", "no camera or video file")])
def test_bad_source_is_refused_before_starting(scene, source, message):
    scene.hmp_live.source = source
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.hmp.live_start()
    assert message in bpy.context.window_manager.hmp_live_state.last_error


def test_a_camera_that_stops_sending_keeps_the_take(scene):
    from live_support import MJPEGServer

    server = MJPEGServer(CLIP, 20, after="close")
    try:
        scene.hmp_live.source = server.url
        job = live.start(bpy.context)
        live.run_to_end(job, bpy.context, timeout=300)
    finally:
        server.close()
    assert job.state == "error"
    assert f"stream {server.url} stopped sending frames after 20 frames" in job.error
    assert f"the take so far (20 frames) is kept in {job.take}" in job.error
    assert _frames(job.take) == 20 and scene.hmp_capture.video == job.take


QUIT_SCRIPT = """
import os, signal, sys, time, bpy, hmp_addon
from hmp_addon import live
hmp_addon.register()
s = bpy.context.scene.hmp_live
s.source, s.folder = sys.argv[1], sys.argv[2]
job = live.start(bpy.context)
live.run_to_end(job, bpy.context, timeout=120, until=lambda j: j.poses_seen >= 3)
print("TAKE", job.take, flush=True)
print("ENGINE_PID", job.run.proc.pid, flush=True)
if sys.argv[3] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)   # Blender killed: the engine must notice and close the take
sys.exit(0)   # Blender quits mid-take: atexit stops the engine, which closes the take
"""


@pytest.mark.parametrize("how", ["quit", "kill"])
def test_blender_closed_while_recording_keeps_the_take(tmp_path, how):
    env = dict(os.environ, PYTHONPATH=ROOT, HMP_ENGINE_PYTHON=engine_python())
    proc = subprocess.run([sys.executable, "-c", QUIT_SCRIPT, LONG, str(tmp_path), how], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("TAKE", "ENGINE_PID")))
    assert "TAKE" in lines, proc.stdout + proc.stderr[-3000:]
    take, pid = lines["TAKE"], int(lines["ENGINE_PID"])
    t0 = time.monotonic()
    while not os.path.isfile(take) and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    n = _frames(take)
    assert 3 <= n < 192 and os.path.isfile(take + ".times.json")
    while time.monotonic() - t0 < 30:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the engine outlived Blender")


DRAW_SCRIPT = """
import os, sys, bpy, hmp_addon
from hmp_addon import live, live_ui
hmp_addon.register()
s = bpy.context.scene.hmp_live
s.source, s.folder = sys.argv[1], sys.argv[2]
job = live.start(bpy.context)
live.run_to_end(job, bpy.context, timeout=120, until=lambda j: j.poses_seen >= 1)
live._CURRENT = None
def draw(menu, context):
    live_ui.HMP_PT_live.draw(menu, context)     # idle: the settings and Start
    print("IDLE", flush=True)
    live._CURRENT = job
    live_ui.HMP_PT_live.draw(menu, context)     # recording: the take's time and poses, Stop
    print("RECORDING", flush=True)
    job.cancel()
    os._exit(0)
bpy.context.window_manager.popup_menu(draw)
os._exit(1)
"""


def test_panel_draws_idle_and_recording(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, HMP_ENGINE_PYTHON=engine_python())
    proc = subprocess.run([sys.executable, "-c", DRAW_SCRIPT, LONG, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "IDLE" in proc.stdout and "RECORDING" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
