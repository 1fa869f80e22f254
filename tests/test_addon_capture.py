"""The capture path: engine subprocess, progress protocol, cancel, failures, no orphan process.

Broken engines (garbage output, crash, error event, slow) are real processes started from a
throwaway extension root holding a tiny `engine` package: they are the bad inputs under test. The
end-to-end run against the real engine on a real clip is in test_addon_e2e.py.
"""

import os
import subprocess
import sys
import time
import types

import bpy
import pytest
from addon_support import datablock_counts, fake_engine, make_result, operator_driver

import hmp_addon
from hmp_addon import jobs, operators, runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = os.path.join(ROOT, "tests", "addon_support.py")  # any existing file: fake engines never read it


def _params(**kw):
    base = dict(video=VIDEO, hands="right", engine_python=sys.executable)
    base.update(kw)
    return jobs.CaptureParams(**base)


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    yield bpy.context.scene
    jobs.cancel_current()
    hmp_addon.unregister()


def _run_to_end(job, timeout=60, until=None):
    jobs.run_to_end(job, bpy.context, timeout=timeout, until=until)  # TimeoutError fails the test
    return job


def test_argv_is_a_list_with_jsonl_progress():
    argv = runner.capture_argv("/py", "/v.mp4", "/o.npz", hands="both", device="cpu", quality="draft",
                               start=3, end=40, mano_dir="/mano")
    assert argv[:4] == ["/py", "-m", "engine", "capture"]
    assert argv[argv.index("--progress") + 1] == "jsonl" and argv[argv.index("--hands") + 1] == "both"
    assert argv[argv.index("--start") + 1] == "3" and argv[argv.index("--end") + 1] == "40"
    assert argv[argv.index("--mano-dir") + 1] == "/mano"
    assert "--hand-size" not in argv  # unset: the model's own size
    assert "--hand-size" not in runner.capture_argv("/py", "/v.mp4", "/o.npz", hand_size=0.0)  # the panel's 0


def test_panel_settings_reach_the_engine(scene, tmp_path):
    seen = tmp_path / "argv.json"
    root = fake_engine(tmp_path, f"""
        open({str(seen)!r}, "w").write(json.dumps(args))
        emit(event="error", message="stopped by the test")
        sys.exit(2)
    """)
    s = scene.hmp_capture
    s.video, s.hands, s.quality, s.root_motion = VIDEO, "both", "draft", "free"
    s.use_range, s.range_start, s.range_end = True, 5, 25
    s.hand_size = 85.0
    params = jobs.CaptureParams.from_scene(bpy.context)
    params.engine_python = sys.executable
    job = _run_to_end(jobs.CaptureJob(params, root=root))
    assert job.state == "error" and "stopped by the test" in job.error
    import json

    args = json.loads(seen.read_text())
    for flag, value in (("--hands", "both"), ("--quality", "draft"), ("--root-motion", "free"), ("--start", "5"),
                        ("--end", "25"), ("--hand-size", "85")):
        assert args[args.index(flag) + 1] == value, flag


@pytest.mark.parametrize("kw,message", [
    (dict(video=""), "choose a video file"),
    (dict(video="/no/such/video.mp4"), "video not found"),
    (dict(engine_python=""), "engine Python is not set"),
    (dict(engine_python="/no/such/python"), "engine Python not found"),
    (dict(start=10, end=5), "empty frame range"),
    (dict(hand_size=20.0), r"hand size must be 0 \(the model's own\) or from 40 to 150 mm \(got 20\)"),
    (dict(targets={"right": None}), "choose the right armature"),
])
def test_bad_settings_are_refused_before_starting(scene, kw, message):
    with pytest.raises(runner.EngineSetupError, match=message):
        jobs.start(_params(**kw))
    assert jobs.current() is None or jobs.current().finished


def test_capture_operator_reports_missing_video(scene):
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match="choose a video file first"):
        bpy.ops.hmp.capture()
    assert "choose a video" in bpy.context.window_manager.hmp_state.last_error
    assert datablock_counts(bpy) == before


@pytest.mark.parametrize("body,message", [
    ('emit(event="start", protocol=1)\nprint("hello from a broken engine")\n',
     "finished without reporting a result; it printed unexpected output: 'hello from a broken engine'"),
    ('emit(event="start", protocol=1)\nsys.stderr.write("Traceback...\\n")\n1 / 0\n',
     "engine crashed (exit code 1): ZeroDivisionError: division by zero"),
    ('emit(event="error", message="cannot decode video.mp4")\nsys.exit(2)\n', "engine: cannot decode video.mp4"),
    ('emit(event="done", result=out)\n', "result file not found"),  # claims success, wrote nothing
    ('open(out, "wb").write(b"garbage")\nemit(event="done", result=out)\n', "result file"),
])
def test_broken_engines_report_and_change_nothing(scene, tmp_path, body, message):
    before = datablock_counts(bpy)
    job = _run_to_end(jobs.start(_params(), root=fake_engine(tmp_path, body)))
    assert job.state == "error"
    assert message in job.error
    assert datablock_counts(bpy) == before
    assert not os.path.exists(job.workdir)  # nothing left behind


SLOW = """
emit(event="start", protocol=1, command="capture", engine_version="fake")
emit(event="stage", stage="detect", message="Detecting hands")
for i in range(600):
    emit(event="progress", stage="detect", done=i, total=600)
    time.sleep(0.1)
"""


def test_cancel_stops_engine_and_changes_nothing(scene, tmp_path):
    before = datablock_counts(bpy)
    job = jobs.start(_params(), root=fake_engine(tmp_path, SLOW))
    # progress events arrive through the reader thread
    _run_to_end(job, timeout=30, until=lambda j: j.fraction != 0.0)
    assert job.message == "Detecting hands" and 0 < job.fraction < 1
    assert bpy.ops.hmp.cancel_capture() == {"FINISHED"}
    assert job.state == "cancelled" and job.run.proc.poll() is not None
    assert datablock_counts(bpy) == before


def test_run_to_end_times_out_by_cancelling(scene, tmp_path):
    job = jobs.start(_params(), root=fake_engine(tmp_path, SLOW))
    seen = []
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1 s"):
        jobs.run_to_end(job, bpy.context, timeout=1.0, on_step=lambda j: seen.append(j.fraction))
    assert 1.0 <= time.monotonic() - t0 < 10
    assert job.state == "cancelled" and job.run.proc.poll() is not None
    assert len(seen) > 5 and seen == sorted(seen)  # called after every step, progress never goes back


_Driver = operator_driver(operators.HMP_OT_capture)


def test_modal_step_escape_cancels(scene, tmp_path):
    job = jobs.start(_params(), root=fake_engine(tmp_path, SLOW))
    drv = _Driver()
    modal = operators.HMP_OT_capture.modal
    for _ in range(20):
        assert modal(drv, bpy.context, types.SimpleNamespace(type="TIMER")) == {"RUNNING_MODAL"}
        time.sleep(0.05)
    assert bpy.context.window_manager.hmp_state.running
    assert modal(drv, bpy.context, types.SimpleNamespace(type="MOUSEMOVE")) == {"PASS_THROUGH"}
    assert modal(drv, bpy.context, types.SimpleNamespace(type="ESC")) == {"CANCELLED"}
    assert job.state == "cancelled" and job.run.proc.poll() is not None
    assert not bpy.context.window_manager.hmp_state.running
    assert drv.reports and "cancelled" in drv.reports[-1][1]


def test_modal_step_finishes_with_a_result(scene, tmp_path):
    result = tmp_path / "prepared.npz"
    make_result(result, T=10, mesh=False)
    body = f"""
emit(event="start", protocol=1)
emit(event="stage", stage="fit1", message="Fitting")
emit(event="progress", stage="fit1", done=1, total=1)
shutil.copy({str(result)!r}, out)
emit(event="done", result=out, preview=None)
"""
    job = jobs.start(_params(), root=fake_engine(tmp_path, body))
    drv = _Driver()
    t0 = time.monotonic()
    while True:
        ret = operators.HMP_OT_capture.modal(drv, bpy.context, types.SimpleNamespace(type="TIMER"))
        if ret != {"RUNNING_MODAL"}:
            break
        time.sleep(0.02)
        assert time.monotonic() - t0 < 30
    assert ret == {"FINISHED"}, drv.reports
    assert job.state == "done"
    clip = os.path.splitext(os.path.basename(VIDEO))[0]
    assert bpy.data.actions[f"{clip}_right_hand"] is bpy.data.objects[f"{clip}_right_hand"].animation_data.action


def test_target_deleted_during_capture(scene, tmp_path):
    result = tmp_path / "prepared.npz"
    make_result(result, T=6, mesh=False)
    assert bpy.ops.hmp.import_result(filepath=str(result)) == {"FINISHED"}  # a rig with the MANO bones
    arm = bpy.data.objects["my clip_right_hand"]
    arm.name = "Target"
    body = f"""
time.sleep(1.0)
shutil.copy({str(result)!r}, out)
emit(event="done", result=out)
"""
    job = jobs.start(_params(targets={"right": "Target"}), root=fake_engine(tmp_path, body))
    bpy.data.objects.remove(arm)
    before = datablock_counts(bpy)
    _run_to_end(job)
    assert job.state == "error" and "'Target' was deleted during the capture" in job.error
    assert datablock_counts(bpy) == before


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


QUIT_SCRIPT = """
import sys, bpy, hmp_addon
from hmp_addon import jobs
hmp_addon.register()
p = jobs.CaptureParams(video=sys.argv[1], engine_python=sys.executable)
job = jobs.start(p, root=sys.argv[2])
jobs.run_to_end(job, bpy.context, until=lambda j: j.run.stage)
print("ENGINE_PID", job.run.proc.pid, flush=True)
if sys.argv[3] == "load":
    bpy.ops.wm.read_homefile()   # load_pre handler: the engine must stop
    print("STATE", job.state, job.run.proc.poll() is not None, flush=True)
sys.exit(0)   # Blender quits mid-capture: atexit must stop the engine
"""


# silent after its first lines, so a closed pipe cannot be what stops it: only the add-on can
SILENT = """
emit(event="start", protocol=1, command="capture", engine_version="fake")
emit(event="stage", stage="detect", message="Detecting hands")
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["quit", "load"])
def test_no_orphan_engine_when_blender_quits_or_loads(tmp_path, how):
    root = fake_engine(tmp_path, SILENT)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", QUIT_SCRIPT, VIDEO, root, how], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("ENGINE_PID", "STATE")))
    assert "ENGINE_PID" in lines, proc.stdout + proc.stderr[-2000:]
    pid = int(lines["ENGINE_PID"])
    t0 = time.monotonic()
    while _alive(pid) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert not _alive(pid)
    if how == "load":
        assert lines["STATE"] == "cancelled True"


STATUS_SCRIPT = """
import os, sys, bpy, hmp_addon
from hmp_addon import jobs, ui
hmp_addon.register()
job = jobs.start(jobs.CaptureParams(video=sys.argv[1], engine_python=sys.executable), root=sys.argv[2])
jobs.run_to_end(job, bpy.context, until=lambda j: j.fraction != 0.0)
def draw(menu, context):
    ui.HMP_PT_capture.draw(menu, context)      # panel while running: progress bar + Cancel
    ui.draw_status(menu, context)               # the status bar's progress
    print("DRAWN", flush=True)
    job.cancel()
    os._exit(0)
bpy.context.window_manager.popup_menu(draw)
os._exit(1)
"""


def test_progress_draws_while_running(tmp_path):
    root = fake_engine(tmp_path, SLOW)
    proc = subprocess.run([sys.executable, "-c", STATUS_SCRIPT, VIDEO, root], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    assert "DRAWN" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def python_without_torch(tmp_path):
    """A real Python that starts and has numpy (linked from this environment) but nothing else the
    engine needs: what a system Python looks like to the add-on."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import numpy

    keep = tmp_path / "only_numpy"
    keep.mkdir()
    src = os.path.dirname(os.path.dirname(numpy.__file__))
    for name in ("numpy", "numpy.libs"):
        if os.path.exists(os.path.join(src, name)):
            os.symlink(os.path.join(src, name), keep / name)
    with open(os.path.join(site, "only_numpy.pth"), "w") as fh:
        fh.write(str(keep) + "\n")
    return str(py)


def test_check_engine_fails_for_a_python_without_torch(scene, tmp_path, monkeypatch):
    """Issue 12.1: it used to run `python -m engine --version` only, which needs nothing but the
    standard library, and said "Engine OK" for the system Python; the capture then crashed."""
    py = python_without_torch(tmp_path)
    with pytest.raises(runner.EngineSetupError) as err:
        runner.engine_version(py)
    msg = str(err.value)
    assert "lacks torch, opencv-contrib-python, mediapipe, smplx, roma, scipy, tqdm" in msg, msg
    assert "numpy" not in msg.split("lacks")[1].split("(")[0]  # numpy is there
    assert "Set Up Engine" in msg
    monkeypatch.setenv("HMP_ENGINE_PYTHON", py)
    with pytest.raises(RuntimeError, match="lacks torch"):
        bpy.ops.hmp.check_engine()
    state = bpy.context.window_manager.hmp_state
    assert not state.engine_ok and "lacks torch" in state.engine_status
    # the project's own environment has everything
    monkeypatch.setenv("HMP_ENGINE_PYTHON", sys.executable)
    assert bpy.ops.hmp.check_engine() == {"FINISHED"}
    assert state.engine_ok and state.engine_status.startswith("Engine OK: hmp-hand-capture engine")


def test_check_engine_reports_broken_engine(scene, tmp_path, monkeypatch):
    root = fake_engine(tmp_path, "")  # its engine package has no __version__: broken
    with pytest.raises(runner.EngineSetupError, match="engine is broken"):
        runner.engine_version(sys.executable, root=root)
    monkeypatch.setenv("HMP_ENGINE_PYTHON", "/no/such/python")
    with pytest.raises(RuntimeError, match="engine Python not found"):
        bpy.ops.hmp.check_engine()
    assert not bpy.context.window_manager.hmp_state.engine_ok


def test_both_hands_requested_one_found(scene, tmp_path):
    result = tmp_path / "prepared.npz"
    make_result(result, T=5, sides=("left",), mesh=False)
    body = f"""
shutil.copy({str(result)!r}, out)
emit(event="done", result=out)
"""
    job = _run_to_end(jobs.start(_params(hands="both"), root=fake_engine(tmp_path, body)))
    assert job.state == "done" and [i["side"] for i in job.imported] == ["left"]
    assert job.warnings == ["no right hand found in the video"]


def test_the_panel_says_how_long_the_capture_took(scene, tmp_path):
    """Issue 22: the engine's done event carries the capture's seconds; the panel's message after the
    capture says them."""
    result = tmp_path / "prepared.npz"
    make_result(result, T=10, mesh=False)
    body = f"""
emit(event="start", protocol=1)
emit(event="stage", stage="fit1", message="Fitting")
shutil.copy({str(result)!r}, out)
emit(event="done", result=out, preview=None, seconds=12.34, stage_seconds={{"fit1": 12.0}})
"""
    job = jobs.start(_params(), root=fake_engine(tmp_path, body))
    drv = _Driver()
    t0 = time.monotonic()
    while operators.HMP_OT_capture.modal(drv, bpy.context, types.SimpleNamespace(type="TIMER")) == {"RUNNING_MODAL"}:
        time.sleep(0.02)
        assert time.monotonic() - t0 < 30
    assert job.state == "done" and job.run.seconds == 12.34 and job.run.stage_seconds == {"fit1": 12.0}
    assert " in 12.3 s" in bpy.context.window_manager.hmp_state.last_info
