"""``python -m engine live``: a real clip played as a camera (--realtime), an MJPEG stream over HTTP
(what IP cameras and phone webcam apps serve) that drops or stalls, a real full disk (a 1 MB tmpfs (the whole take would need 0.55 MB),
where the machine lets root mount one), real MediaPipe and OpenCV. No timed assertions: rates and
latencies are benchmarks/bench_live.py's."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from live_support import MJPEGServer

from engine.contract import progress
from engine.video import open_video, recorded_times

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(ROOT, "tests", "data", "hand_short.mp4")  # 60 frames, 640x360, 30 fps, a right hand
LONG = os.path.join(ROOT, "tests", "data", "pinch_fist.mp4")  # 192 frames, 640x720, 30 fps


class Engine:
    """``python -m engine live ... --progress jsonl`` as a real process; its events parsed with the
    add-on's parser (engine.contract.progress) as they arrive."""

    def __init__(self, *args, cwd=ROOT):
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "live", *map(str, args), "--progress", "jsonl"],
                                     cwd=cwd, env=dict(os.environ, PYTHONPATH=ROOT), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(progress.parse_line(line))  # a line that is no event fails the test

    def wait_for(self, predicate, timeout=120):
        t0 = time.monotonic()
        while not predicate(self.events):
            assert self.proc.poll() is None or self._reader.is_alive(), self.finish()
            assert time.monotonic() - t0 < timeout, f"waited {timeout} s: {self.events[-3:]}"
            time.sleep(0.02)

    def finish(self, timeout=120):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        self.stderr = self.proc.stderr.read()
        return self

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    @property
    def last(self):
        return self.events[-1]


def poses(events):
    return [e for e in events if e["event"] == "pose"]


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return n, size


def check_take(path, frames):
    """The take is a playable video of ``frames`` frames, with as many times beside it."""
    n, _ = count_frames(path)
    assert n == frames
    times = recorded_times(str(path), open_video(str(path)).num_frames)
    assert times is not None and len(times) == frames and times[0] == 0.0
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".hmp-")]  # no temporary files


def test_file_played_in_real_time_records_every_frame(tmp_path):
    take = tmp_path / "take.mp4"
    image = tmp_path / "newest.jpg"
    eng = Engine("--source", CLIP, "--record", take, "--realtime", "--frame-image", image).finish()
    assert eng.proc.returncode == 0, eng.stderr[-2000:]
    kinds = [e["event"] for e in eng.events]
    assert kinds[0] == "start" and kinds[1] == "live" and kinds[-1] == "done" and set(kinds[2:-1]) == {"pose"}
    live = eng.of("live")[0]
    assert (live["width"], live["height"], live["fps"]) == (640, 360, 30.0) and live["take"] == str(take)
    assert np.asarray(live["hands"]["right"]["rest_joints"]).shape == (16, 3) and live["frame_image"] == str(image)
    done = eng.last
    assert done["result"] == str(take) and done["frames"] == 60 and done["stopped_by"] == "end"
    assert count_frames(take) == (60, (640, 360))  # every frame of the source, its size
    check_take(take, 60)
    # the times beside it are the source's: a capture of the take sees the clip's timing
    assert np.allclose(recorded_times(str(take), 60), np.arange(60) / 30.0, atol=1e-4)
    ps = poses(eng.events)
    frames = [p["frame"] for p in ps]
    assert len(ps) == done["processed"] and frames == sorted(set(frames)) and 0 <= frames[0] and frames[-1] < 60
    assert done["dropped"] == frames[-1] + 1 - len(frames)  # skipped for the live view, between shown ones
    seen = [p for p in ps if "right" in p["hands"]]
    assert len(seen) >= 0.9 * len(ps)  # the hand is in every frame of the clip
    for p in seen:
        hand = p["hands"]["right"]
        assert (len(hand["global_orient"]), len(hand["hand_pose"]), len(hand["transl"])) == (3, 45, 3)
        assert 0.1 < hand["transl"][2] < 3.0  # in front of the camera, at arm's length
        assert p["latency_ms"] >= 0 and np.isfinite(p["time"])
    assert cv2.imread(str(image)).shape == (360, 640, 3)


def test_pose_events_follow_the_hand(tmp_path):
    """The live pose, posed on the hand model and projected, lands on MediaPipe's keypoints of the
    same frame (run again here, VIDEO mode, every frame)."""
    from engine.fit.per_frame import forward_joints
    from engine.hand_model import load_hand_model
    from engine.keypoints.detector import HandDetector
    from engine.util.camera import project

    eng = Engine("--source", CLIP, "--record", tmp_path / "take.mp4", "--realtime").finish()
    assert eng.proc.returncode == 0, eng.stderr[-2000:]
    K = np.asarray(eng.of("live")[0]["K"])
    by_frame = {p["frame"]: p["hands"]["right"] for p in poses(eng.events) if "right" in p["hands"]}
    assert len(by_frame) >= 5
    model = load_hand_model("right")
    errors = []
    with HandDetector(max_hands=2, tracking=True) as det:
        cap = cv2.VideoCapture(CLIP)
        for i in range(60):
            ok, bgr = cap.read()
            found = det(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i / 30.0)
            if i in by_frame and found:
                h = by_frame[i]
                joints = forward_joints(model, np.array([h["global_orient"]]), np.array([h["hand_pose"]]), np.zeros(10),
                                        np.array([h["transl"]]))[0]
                best = min(found, key=lambda d: np.abs(d.keypoints_2d - project(joints, K)).mean())
                errors.append(np.linalg.norm(project(joints, K) - best.keypoints_2d, axis=1).mean())
    # the hand is about 150 px long in this clip; a per-frame pose off by a finger would be 20 px and more
    assert len(errors) >= 5 and np.median(errors) < 8.0, errors


def test_fast_pose_matches_the_ik_on_the_landmarks():
    """engine.commands.live.FastPose (analytic) against engine.fit.ik (200 Adam iterations): wrist-relative
    keypoints against MediaPipe's world landmarks of real frames, within 20 % of the IK's error."""
    import torch

    from engine.commands.live import FastPose
    from engine.fit.ik import ik_from_keypoints3d
    from engine.fit.per_frame import forward_joints
    from engine.hand_model import load_hand_model
    from engine.keypoints.detector import HandDetector

    model = load_hand_model("right")
    fast = FastPose(model)
    worlds = []
    with HandDetector(max_hands=2, tracking=True) as det:
        cap = cv2.VideoCapture(CLIP)
        for i in range(0, 60):
            ok, bgr = cap.read()
            found = det(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i / 30.0)
            if found and i % 6 == 0:
                worlds.append(found[0].world)
    worlds = np.array(worlds)

    def error(go, pose):
        j = forward_joints(model, go, pose, np.zeros(10), np.zeros((len(go), 3)))
        rel, w = j - j[:, :1], worlds - worlds[:, :1]
        s = np.linalg.norm(w[:, 9], axis=-1) / np.linalg.norm(rel[:, 9], axis=-1)  # the landmarks' own size
        return np.linalg.norm(rel * s[:, None, None] - w, axis=-1).mean()

    go, pose = zip(*(fast.rotations(w) for w in worlds))
    ik = ik_from_keypoints3d(model, torch.as_tensor(worlds, dtype=torch.float32), fit_betas=False, fit_scale=True,
                             limit_weight=1e-2)
    e_fast, e_ik = error(np.array(go), np.array(pose)), error(ik["global_orient"].numpy(), ik["hand_pose"].numpy())
    assert e_fast < 1.2 * e_ik, (e_fast, e_ik)
    # no rotation: the flat rest hand comes back as zeros
    g0, p0 = fast.rotations(fast.rest)
    assert np.abs(g0).max() < 1e-6 and np.abs(p0).max() < 1e-6


@pytest.mark.parametrize("how", ["stdin", "sigterm", "sigint"])
def test_stop_by_stdin_or_signal_keeps_a_playable_take(tmp_path, how):
    take = tmp_path / "take.mp4"
    eng = Engine("--source", LONG, "--record", take, "--realtime")
    eng.wait_for(lambda ev: len(poses(ev)) >= 5)
    if how == "stdin":
        eng.proc.stdin.write("stop\n")
        eng.proc.stdin.flush()
    else:
        eng.proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    eng.finish()
    assert eng.proc.returncode == 0, eng.stderr[-2000:]
    done = eng.last
    assert done["event"] == "done" and done["stopped_by"] == ("stop" if how == "stdin" else "signal")
    assert 5 <= done["frames"] < 192  # stopped part way through the 6.4 s clip
    check_take(take, done["frames"])
    assert count_frames(take)[1] == (640, 720)


def test_seconds_limit(tmp_path):
    take = tmp_path / "take.mp4"
    eng = Engine("--source", LONG, "--record", take, "--realtime", "--seconds", "1").finish()
    assert eng.proc.returncode == 0, eng.stderr[-2000:]
    assert eng.last["stopped_by"] == "seconds" and eng.last["frames"] == 30  # 1 s at 30 fps
    check_take(take, 30)


@pytest.mark.parametrize("after", ["close", "stall"])
def test_a_stream_that_fails_halfway_keeps_the_take(tmp_path, after):
    server = MJPEGServer(CLIP, 40, after=after)
    take = tmp_path / "take.mp4"
    try:
        eng = Engine("--source", server.url, "--record", take, "--frame-timeout", "2").finish(timeout=180)
    finally:
        server.close()
    assert eng.proc.returncode == 2, eng.stderr[-2000:]
    err = eng.last
    assert err["event"] == "error" and err["frames"] == 40 and err["take"] == str(take)
    assert f"stream {server.url} stopped sending frames" in err["message"]
    assert f"the take so far (40 frames) is kept in {take}" in err["message"]
    check_take(take, 40)
    # the stream states no rate it keeps (OpenCV says 25 for MJPEG): the times beside the take are the
    # frames' arrival, about 1/30 s apart
    steps = np.diff(recorded_times(str(take), 40))
    assert np.median(steps) < 1 / 25.0


def test_no_camera_and_bad_arguments_are_one_clear_error(tmp_path):
    cases = [
        (["--source", "7"], "cannot open camera 7: no such camera, or another program is using it"),
        (["--source", "/dev/video97"], "no camera at /dev/video97: the device does not exist"),
        (["--source", tmp_path / "none.mp4"], "source not found"),
        (["--source", os.path.join(ROOT, "README.md")], "cannot read video file"),
        (["--source", "http://127.0.0.1:9/none.mjpg", "--frame-timeout", "2"], "cannot open stream"),
        (["--source", CLIP, "--record", tmp_path / "take.avi"], "the take must be a .mp4 file"),
        (["--source", CLIP, "--record", tmp_path / "no" / "take.mp4"], "take folder does not exist"),
        (["--source", CLIP, "--hands", "three"], "argument --hands: invalid choice"),
    ]
    for args, message in cases:
        if "--record" not in args:
            args = args + ["--record", tmp_path / "take.mp4"]
        eng = Engine(*args).finish()
        assert eng.proc.returncode == 2, (args, eng.stderr[-1000:])
        assert eng.last["event"] == "error" and message in eng.last["message"], (args, eng.last)
        assert not os.path.exists(tmp_path / "take.mp4") and "Traceback" not in eng.stderr
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".hmp-")]


def test_full_disk_stops_the_take_and_keeps_it(tmp_path):
    """A real full disk: a 1 MB tmpfs (the whole take would need 0.55 MB). The take stops while its disk still has the space to close it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): " + mounted.stderr.decode()[-200:])
    try:
        take = mnt / "take.mp4"
        eng = Engine("--source", LONG, "--record", take, "--reserve-mb", "0.7").finish()
        assert eng.proc.returncode == 2, eng.stderr[-2000:]
        err = eng.last
        assert err["event"] == "error" and f"the disk holding {take} is full" in err["message"]
        assert 0 < err["frames"] < 192 and f"the take so far ({err['frames']} frames) is kept" in err["message"]
        check_take(take, err["frames"])
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_recorded_times_only_for_the_file_they_fit(tmp_path):
    video = tmp_path / "v.mp4"
    import shutil

    shutil.copy(CLIP, video)
    sidecar = str(video) + ".times.json"
    uneven = (np.arange(60) / 30.0 + np.r_[0, np.cumsum(np.full(59, 0.01))]).tolist()
    with open(sidecar, "w") as fh:
        json.dump({"times": uneven}, fh)
    got = [t for _, _, t in open_video(str(video)).frames(with_time=True)]
    assert np.allclose(got, uneven)
    for bad in ({"times": uneven[:-1]}, {"times": uneven[::-1]}, {"no": 1}, "garbage"):
        with open(sidecar, "w") as fh:
            fh.write(json.dumps(bad) if bad != "garbage" else "{")
        got = [t for _, _, t in open_video(str(video)).frames(with_time=True)]
        assert np.allclose(got, np.arange(60) / 30.0, atol=1e-3)  # the container's, unchanged


def test_pick_hands_for_the_live_view():
    from engine.commands.live import pick_hands
    from engine.keypoints.detector import Detection

    def det(side, score):
        return Detection(side, score, np.zeros((21, 2)), np.zeros((21, 3)))

    r, l, l2 = det("right", 0.9), det("left", 0.8), det("left", 0.95)
    assert pick_hands([], ("right",)) == {}
    assert pick_hands([l, r], ("right",)) == {"right": r}  # its own label first
    assert pick_hands([l2], ("right",)) == {"right": l2}  # a lone hand whatever its label (labels flip)
    assert pick_hands([r, l], ("right", "left")) == {"right": r, "left": l}
    assert pick_hands([l, l2], ("right", "left")) == {"left": l2, "right": l}  # two "left": the better one keeps it
