"""``python -m engine capture``: a real clip end to end in a real subprocess, and every bad input through
``engine.commands.cli.main`` in this process (no fresh Python importing torch per case).

Each bad input must give one clear error line, exit code 2, no traceback and no result file.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from engine.contract import result as R
from engine.contract.progress import parse_line

ROOT = Path(__file__).resolve().parents[1]
CACHE = tempfile.mkdtemp(prefix="hmp-test-cache-")  # never the user's detection cache
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)  # nor left behind in /tmp
CLIP = ROOT / "tests" / "data" / "hand_short.mp4"


def run_engine(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HMP_CACHE_DIR=CACHE)
    env.pop("HMP_MANO_DIR", None)
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(*args):
    """``python -m engine ARGS`` in this process (``engine.commands.cli.main``): no fresh Python importing torch
    per bad input. Returns a CompletedProcess with what it printed."""
    import contextlib
    import io

    from engine.commands import cli

    saved = {k: os.environ.get(k) for k in ("HMP_CACHE_DIR", "HMP_MANO_DIR")}
    os.environ["HMP_CACHE_DIR"] = CACHE
    os.environ.pop("HMP_MANO_DIR", None)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(a) for a in args])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_clean_failure(proc, out, message):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0], lines[0]
    assert not Path(out).exists()
    assert not [p for p in Path(out).parent.glob(".hmp-*")], "temporary files left behind"


def write_video(path, frames, fps=30.0):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_version():
    proc = run_main("--version")
    assert proc.returncode == 0 and "engine" in proc.stdout


def test_missing_video(tmp_path):
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", tmp_path / "nope.mp4", "--out", out), out, "nope.mp4")


def test_not_a_video(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is text, not a video\n" * 50)
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", fake, "--out", out), out, "notes.mp4")


def test_zero_frame_video(tmp_path):
    import cv2

    empty = tmp_path / "empty.mp4"  # a real container with a video stream and no frame in it
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48)).release()
    if not empty.exists():
        empty.write_bytes(b"")
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", empty, "--out", out), out, "empty.mp4")


def test_no_hand_in_any_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = [np.full((240, 320, 3), 90, np.uint8) + rng.integers(0, 20, (240, 320, 3), dtype=np.uint8)
              for _ in range(8)]
    clip = write_video(tmp_path / "wall.mp4", frames)
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", clip, "--out", out, "--stages", "0"), out, "no right hand found")


def test_unwritable_output(tmp_path):
    out = tmp_path / "missing_folder" / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out), out, "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        out = locked / "r.npz"
        assert_clean_failure(run_main("capture", CLIP, "--out", out), out, "not writable")
    finally:
        locked.chmod(0o700)


def test_bad_mano_dir(tmp_path):
    (tmp_path / "mano").mkdir()
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--mano-dir", tmp_path / "mano"), out, "MANO_RIGHT.pkl")


def test_malicious_mano_file_is_refused_by_the_cli(tmp_path):
    from tests.test_hand_model import _RunsCommand, write_malicious_mano

    marker = tmp_path / "marker"
    write_malicious_mano(tmp_path / "mano", _RunsCommand(f"touch {marker}"))
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--mano-dir", tmp_path / "mano"), out,
                         "system', which a MANO model file never needs")
    proc = run_main("capture", CLIP, "--out", out, "--mano-dir", tmp_path / "mano", "--progress", "jsonl")
    assert proc.returncode == 2 and not marker.exists()
    events = [parse_line(l) for l in proc.stdout.splitlines()]
    assert events[-1]["event"] == "error" and "refused to load" in events[-1]["message"]


def test_unknown_device(tmp_path):
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--device", "tpu"), out, "unknown device 'tpu'")


def test_cuda_without_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--device", "cuda"), out, "no CUDA GPU")


def test_bad_arguments_are_one_line_and_jsonl_aware(tmp_path):
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--hands", "three"), out, "--hands")
    proc = run_main("capture", CLIP, "--out", out, "--stages", "7", "--progress", "jsonl")
    assert proc.returncode == 2
    events = [parse_line(l) for l in proc.stdout.splitlines()]
    assert events[-1]["event"] == "error" and "--stages" in events[-1]["message"]


def jsonl_events(proc):
    return [parse_line(l) for l in proc.stdout.splitlines()]


@pytest.mark.parametrize("args, message", [
    (["--K", "nan,500,320,180"], "--K expects four finite numbers"),
    (["--K", "500,500,inf,180"], "--K expects four finite numbers"),
    (["--fov", "nan"], "--fov: expected degrees between 1 and 170, got 'nan'"),
    (["--fov", "400"], "--fov: expected degrees between 1 and 170"),
    (["--start", "-3"], "--start: expected a frame number >= 0"),
    (["--end", "0"], "--end: expected a frame number > 0"),
    (["--start", "20", "--end", "10"], "--end 10 must be after --start 20"),
    (["--views", "-1"], "--views: expected a number of views from 0 to 32"),
    (["--views", "1000"], "--views: expected a number of views from 0 to 32, got '1000'"),
    (["--views", "two"], "--views: expected a number of views from 0 to 32, got 'two'"),
    (["--hand-size", "20"], "--hand-size: expected a length in mm from 40 to 150, got '20'"),
    (["--hand-size", "0"], "--hand-size: expected a length in mm from 40 to 150, got '0'"),
    (["--hand-size", "-80"], "--hand-size: expected a length in mm from 40 to 150, got '-80'"),
    (["--hand-size", "nan"], "--hand-size: expected a length in mm from 40 to 150, got 'nan'"),
    (["--hand-size", "0.08"], "--hand-size: expected a length in mm from 40 to 150, got '0.08'"),  # metres, not mm
    (["--prior", "absent.pt"], "--prior file not found: absent.pt"),
    (["--keypoints", "absent.json"], "--keypoints file not found: absent.json"),
    (["--prog", "jsonl"], "unrecognized arguments: --prog"),
])
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, *args), out, message)
    proc = run_main("capture", CLIP, "--out", out, "--progress=jsonl", *args)  # one word: honoured
    assert proc.returncode == 2
    events = jsonl_events(proc)
    assert [e["event"] for e in events if e["event"] == "error"] == ["error"] and events[-1]["event"] == "error"
    assert message in events[-1]["message"]
    assert not any(e["event"] == "stage" for e in events), events  # nothing started


def test_intrinsics_for_another_image_size_fail_before_detection(tmp_path):
    out = tmp_path / "r.npz"
    proc = run_main("capture", CLIP, "--out", out, "--K", "1500,1500,960,540", "--progress=jsonl")
    assert proc.returncode == 2
    events = jsonl_events(proc)
    assert events[-1]["event"] == "error" and "principal point (960, 540) is outside the 640x360" in events[-1]["message"]
    assert "detect" not in [e.get("stage") for e in events]


def test_a_bad_prior_checkpoint_fails_before_detection(tmp_path):
    junk = tmp_path / "prior.pt"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "r.npz"
    proc = run_main("capture", CLIP, "--out", out, "--prior", junk, "--progress=jsonl")
    assert proc.returncode == 2
    events = jsonl_events(proc)
    assert events[-1]["event"] == "error" and "cannot read the motion prior checkpoint" in events[-1]["message"]
    assert "detect" not in [e.get("stage") for e in events]


def test_progress_mode_is_read_in_both_spellings():
    from engine.commands.cli import _progress_mode

    assert _progress_mode(["v.mp4", "--progress=jsonl"]) == "jsonl"
    assert _progress_mode(["v.mp4", "--progress", "quiet"]) == "quiet"
    assert _progress_mode(["v.mp4", "--progress", "jsonl", "--progress=bar"]) == "bar"  # the last wins
    assert _progress_mode(["v.mp4", "--progress=nonsense"]) == "bar"


def test_an_internal_error_still_ends_with_one_error_event(tmp_path, monkeypatch):
    """A bug (here: an exception injected into the video reader) ends a jsonl run with a final error event
    and exit 1, and with one error: line after the traceback otherwise."""
    import engine.video

    def broken(path):
        raise ZeroDivisionError("injected fault")

    monkeypatch.setattr(engine.video, "open_video", broken)
    out = tmp_path / "r.npz"
    proc = run_main("capture", CLIP, "--out", out, "--progress", "jsonl")
    assert proc.returncode == 1
    events = jsonl_events(proc)
    assert events[-1]["event"] == "error" and "internal error (ZeroDivisionError: injected fault)" in events[-1]["message"]
    assert "Traceback" in proc.stderr and not out.exists()
    proc = run_main("capture", CLIP, "--out", out)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: internal error")


@pytest.mark.skipif(not CLIP.exists(), reason="tests/data/hand_short.mp4 is missing")
def test_capture_end_to_end_jsonl_and_preview(tmp_path):
    out, preview = tmp_path / "r.npz", tmp_path / "p.mp4"
    proc = run_engine("capture", CLIP, "--out", out, "--preview", preview, "--progress", "jsonl",
                      "--quality", "draft", "--end", "30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [parse_line(l) for l in proc.stdout.splitlines()]  # stdout is pure protocol
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages[:3] == ["read", "detect", "init"] and "write" in stages and stages[-1] == "preview"
    assert events[-1]["result"] == str(out) and events[-1]["preview"] == str(preview)
    # issue 22: the done event carries each stage's seconds, which add up to about the whole run's
    done = events[-1]
    assert list(done["stage_seconds"]) == ["startup"] + list(dict.fromkeys(stages))  # every stage run, in order
    assert all(v >= 0 for v in done["stage_seconds"].values())
    assert abs(sum(done["stage_seconds"].values()) - done["seconds"]) < 0.05
    # MediaPipe's native start-up chatter (TFLite, absl, glog info/warning lines) stays off stderr
    from engine.commands.cli import NATIVE_CHATTER

    chatter = [l for l in proc.stderr.splitlines() if NATIVE_CHATTER.match(l) or "TensorFlow Lite" in l]
    assert not chatter, chatter
    res = R.read(out)
    hand = res.hands["right"]
    assert res.num_frames == 30 and list(res["frame_ids"]) == list(range(30))
    assert hand["valid"].mean() > 0.9
    assert (hand["keypoint_source"][hand["valid"]] != R.SOURCE_NONE).all()
    # the fitted hand projects onto the detected keypoints (pixels), and sits in front of the camera
    from engine.util.camera import project

    detected = hand["keypoint_source"] == R.SOURCE_MEDIAPIPE
    err = np.linalg.norm(project(hand["joints"][detected], res["K"]) - hand["keypoints_2d"][detected], axis=-1)
    assert np.median(err) < 0.04 * res["image_size"].max(), np.median(err)
    assert (hand["joints"][..., 2] > 0.05).all()
    import cv2

    cap = cv2.VideoCapture(str(preview))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()


def test_engine_exits_when_its_launcher_is_killed(tmp_path):
    """A launcher (like Blender) killed with SIGKILL cannot stop the engine: the engine notices."""
    import signal
    import time

    pidfile = tmp_path / "engine.pid"
    launcher = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'engine', 'capture', {str(ROOT / 'demo' / 'human_hand_video.mp4')!r},"
        f" '--out', {str(tmp_path / 'r.npz')!r}, '--progress', 'jsonl', '--no-cache', '--quality', 'best'],"
        f" stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd={str(ROOT)!r})\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HMP_CACHE_DIR=CACHE)
    proc = subprocess.Popen([sys.executable, "-c", launcher], env=env)
    deadline = time.time() + 60
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline
        time.sleep(0.2)
    engine_pid = int(pidfile.read_text())
    time.sleep(3)  # the engine is working
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(engine_pid, 0)
        except ProcessLookupError:
            break
        status = Path(f"/proc/{engine_pid}/status")
        if status.exists() and "\nState:\tZ" in status.read_text():  # exited, not yet reaped by init
            break
        time.sleep(0.3)
    else:
        os.kill(engine_pid, signal.SIGKILL)
        raise AssertionError("the engine kept running after its launcher was killed")
    assert not (tmp_path / "r.npz").exists()


def test_capture_from_external_keypoints(tmp_path):
    """2D keypoints from another detector (here: MediaPipe's own, written in the documented JSON)."""
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    track = detect_hands(open_video(CLIP), options=KeypointOptions(views=0, use_cache=False, end=20))["right"]
    frames = [{"frame": int(f), "hands": [{"side": "right", "keypoints": track.keypoints_2d[i].tolist(),
                                           "scores": [0.9] * 21}]}
              for i, f in enumerate(track.frame_ids) if track.detected[i] and i != 7]  # frame 7: a gap
    (tmp_path / "k.json").write_text(json.dumps({"format": "hmp-keypoints", "version": 1, "frames": frames}))
    out = tmp_path / "r.npz"
    proc = run_main("capture", CLIP, "--out", out, "--keypoints", tmp_path / "k.json", "--end", "20",
                      "--quality", "draft", "--progress", "quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    hand = R.read(out).hands["right"]
    assert (hand["keypoint_source"][hand["keypoint_source"] != R.SOURCE_INTERPOLATED] == R.SOURCE_EXTERNAL).all()
    assert hand["keypoint_source"][7] == R.SOURCE_INTERPOLATED
    from engine.util.camera import project

    res = R.read(out)
    ext = hand["keypoint_source"] == R.SOURCE_EXTERNAL
    err = np.linalg.norm(project(hand["joints"][ext], res["K"]) - hand["keypoints_2d"][ext], axis=-1)
    assert np.median(err) < 15.0  # px on a 640x360 clip: the 2D-only fit lands on the keypoints


def test_engine_start_up_imports_neither_dynamo_nor_matplotlib():
    """Issue 22: a capture's process imports neither ``torch._dynamo`` (torch.optim's first optimiser
    pulls it in: engine.fit.optim instead) nor matplotlib (MediaPipe's drawing utilities: deferred by
    engine.keypoints.detector.import_mediapipe), before its ``start`` event or after its whole work."""
    code = (
        "import sys\n"
        "from engine.commands import cli\n"
        "before = sorted(m for m in sys.modules if m.startswith(('torch', 'matplotlib', 'mediapipe')))\n"
        "from engine import capture\n"
        "from engine.keypoints.detector import HandDetector\n"
        "from engine.fit import stages, per_frame, ik\n"
        "import numpy as np, torch\n"
        "from engine.fit.optim import Adam\n"
        "p = torch.zeros(3, requires_grad=True); o = Adam([p], lr=0.1); (p ** 2).sum().backward(); o.step()\n"
        "with HandDetector() as d: d(np.zeros((64, 64, 3), np.uint8), 0.0)\n"
        "after = [m for m in sys.modules if m.startswith(('torch._dynamo', 'matplotlib.pyplot', 'matplotlib.figure'))]\n"
        "print(before, after)\n"
        "assert not before and not after, (before, after)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_kept_models_are_the_ones_the_next_capture_uses():
    """Issue 22: the batch worker's warm models (engine.capture.keep_models) are what capture() opens,
    not a second copy loaded per clip; without keeping, each capture loads its own."""
    from engine import capture as cap
    from engine.contract.progress import Reporter

    options = cap.CaptureOptions(device="cpu")
    try:
        cap.keep_models()
        first = cap.open_inputs(str(CLIP), options, "cpu", Reporter("quiet"))
        second = cap.open_inputs(str(CLIP), options, "cpu", Reporter("quiet"))
        assert first[0]["right"] is second[0]["right"] and first[1] is second[1]
    finally:
        cap.keep_models(False)
    third = cap.open_inputs(str(CLIP), options, "cpu", Reporter("quiet"))
    assert third[0]["right"] is not first[0]["right"] and not cap._KEPT
