"""``python -m engine live``: record a take from a camera while showing the hand live.

    python -m engine live --source 0|/dev/videoN|URL|FILE --record TAKE.mp4 [--hands right|left|both]
        [--seconds N] [--realtime] [--progress bar|jsonl|quiet] [--frame-image NEWEST.jpg]
        [--fov DEG | --K FX,FY,CX,CY] [--hand-size MM] [--mano-dir DIR] [--frame-timeout S] [--reserve-mb MB]

Three threads and the main one:

- the reader grabs frames from ``cv2.VideoCapture`` (a device index, a ``/dev/videoN`` path, a URL or a
  file; a file with ``--realtime`` is paced by its own frame times against a monotonic clock: the
  stand-in camera for tests and for people without one) and hands **every** frame to the writer and
  the newest one to the live worker;
- the writer encodes every frame into a temporary file beside TAKE.mp4 (OpenCV's MPEG-4 ``mp4v``, as
  the preview) and, when the take ends however it ends, closes it, writes the frames' times beside it
  (``TAKE.mp4.times.json``, read back by ``engine.video``) and renames it to TAKE.mp4: the take appears
  whole and playable, or (SIGKILL) not at all; it also checks the free disk space before each frame (``--reserve-mb``);
- the stdin reader takes a ``stop`` line;
- the main thread is the live worker: MediaPipe's hand landmarker (VIDEO mode, the frame's own time)
  on the newest frame, then ``fast_pose`` (below) and one ``pose`` event per processed frame. Frames
  that arrive while it works are skipped for the live view (``dropped``), never for the recording.

The take ends on ``--seconds``, the end of the input, a ``stop`` line on stdin, SIGINT, SIGTERM or
SIGHUP, or the death of the process that launched it (``--progress jsonl``: Blender killed), and then
with ``done`` (its ``result`` is the take, with ``frames``, ``processed``, ``dropped``, ``seconds``,
``stopped_by``); or with ``error`` when the source fails (no camera, a busy one, a camera that stops
sending frames: no frame for ``--frame-timeout`` seconds), or the disk fills up: the message says
what happened and where the take recorded so far is kept (``take`` and ``frames`` in the event).

The fit is not done here: the take is an ordinary video, captured afterwards by ``engine capture``
(the add-on does so on Stop). The live detections are not reused for it: the live view sees only the
newest frames (a skipped frame has none) before they are encoded, and MediaPipe's VIDEO mode tracks
from frame to frame, so detections from the live pass could not equal a capture of the take; the
capture detects the take's frames itself (cached by content, engine.keypoints.cache), so the result of
Stop is the result of ``engine capture TAKE.mp4`` exactly.

``fast_pose``: MediaPipe's world landmarks to MANO rotations analytically, in well under a millisecond
(engine.fit.ik's optimisation takes about 4 ms per iteration for one frame on a CPU core, 0.8 s for
its 200): the root by Kabsch on the palm (wrist and the four knuckles, as the IK starts), then each
finger joint, from the knuckle outwards, the shortest rotation turning its rest bone onto the
landmarks' bone in its parent's posed frame (no twist about the bone, which no keypoint shows); then
the placement in the camera of the per-frame estimate (``place_in_camera``: least-squares translation
on the 2D keypoints, one PnP refinement). Raw, per frame: the two-stage fit after Stop is the result.
"""

import json
import os
import queue
import shutil
import signal
import sys
import threading
import time

import numpy as np

from engine import __version__
from engine import choices as C
from engine.args import Parser, intrinsics, number
from engine.errors import EngineError
from engine.progress import Reporter

FRAME_TIMEOUT_S = 5.0  # no frame from a camera for this long: it stopped sending
RESERVE_MB = 200.0  # the take stops (and is closed) when its disk has less free space than this
FRAME_IMAGE_WIDTH = 640  # the newest-frame image for the add-on is scaled down to this width at most
TIMES_SUFFIX = ".times.json"  # the frames' times beside the take (engine.video reads them)
TAKE_PREFIX = ".hmp-take-"  # the take being written (engine.atomic names it after its writer)
CAMERA_FPS = 30.0  # a camera's frame rate for the take when it states none usable


def live_parser():
    p = Parser(prog="python -m engine live", allow_abbrev=False,
               description="Record a take from a camera (or a file played as one) with a live per-frame hand pose.")
    p.add_argument("--source", required=True,
                   help="camera index (0), device path (/dev/video0), stream URL, or a video file")
    p.add_argument("--record", required=True, help="the take to write (.mp4); its frame times go beside it")
    p.add_argument("--hands", choices=C.HANDS, default=C.DEFAULT_HANDS, help="hands to follow live")
    p.add_argument("--seconds", type=number(float, 0.0, what="seconds > 0", above=True), default=None,
                   help="stop after this long (default: until stopped)")
    p.add_argument("--realtime", action="store_true",
                   help="a file source plays at its own frame rate (a stand-in camera); without it, as fast as it decodes")
    p.add_argument("--progress", choices=C.PROGRESS_MODES, default=None, help="bar (default), jsonl, quiet")
    p.add_argument("--frame-image", default=None,
                   help="keep the newest processed frame in this .jpg/.png (replaced atomically), for a viewer")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--fov", type=number(float, 1.0, 170.0, what="degrees between 1 and 170"), default=None,
                     help="horizontal field of view in degrees")
    cam.add_argument("--K", type=intrinsics, default=None, metavar="FX,FY,CX,CY", help="intrinsics in pixels")
    low, high = C.HAND_SIZE_MM
    p.add_argument("--hand-size", type=number(float, low, high, what=f"a length in mm from {low:g} to {high:g}"),
                   default=None, metavar="MM", help="wrist to middle-finger knuckle, mm (default: the model's)")
    p.add_argument("--mano-dir", default=None, help="MANO folder (default: the open hand model)")
    p.add_argument("--frame-timeout", type=number(float, 0.0, 600.0, what="seconds > 0", above=True),
                   default=FRAME_TIMEOUT_S, help=f"a camera silent this long has stopped (default {FRAME_TIMEOUT_S:g} s)")
    p.add_argument("--reserve-mb", type=number(float, 0.0, what="megabytes >= 0"), default=RESERVE_MB,
                   help=f"stop recording when the take's disk has less free space than this (default {RESERVE_MB:g})")
    return p


# ---------------------------------------------------------------------------------------------- pose

def shortest_arc(a, b):
    """The smallest rotation (3,3) turning direction ``a`` onto direction ``b`` (3,)."""
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        # opposite: half a turn about any axis perpendicular to a
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        perp /= np.linalg.norm(perp)
        return 2.0 * np.outer(perp, perp) - np.eye(3)
    k = axis / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * Kx + (1 - c) * (Kx @ Kx)


def rotvec(R):
    """Axis-angle (3,) of a rotation matrix (3,3)."""
    import cv2

    return cv2.Rodrigues(np.asarray(R, np.float64))[0][:, 0]


def kabsch(src, dst):
    """Rotation R (3,3) minimising |R (src - mean) - (dst - mean)|^2."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ np.diag([1.0, 1.0, d]) @ Vt


class FastPose:
    """MediaPipe's world landmarks (21,3) + 2D keypoints (21,2) -> MANO global_orient (3,), hand_pose
    (45,), transl (3,) in the camera (see the module docstring)."""

    PALM = [0, 5, 9, 13, 17]

    def __init__(self, model):
        from engine import joints as J
        from engine.fit.per_frame import forward_joints

        self.model = model
        z = np.zeros((1, 3))
        self.rest = forward_joints(model, z, np.zeros((1, 45)), np.zeros(10), z)[0]  # (21,3) MediaPipe order
        self.parents = J.MANO_PARENTS
        self.mp_of = J.MANO_TO_MEDIAPIPE
        self.rest_joints = self.rest[J.MANO_TO_MEDIAPIPE]  # (16,3) the rig's skeleton

    def rotations(self, world):
        """-> global_orient (3,), hand_pose (45,) from world landmarks (21,3) (camera axes)."""
        world = np.asarray(world, np.float64)
        G = np.empty((16, 3, 3))
        G[0] = kabsch(self.rest[self.PALM], world[self.PALM])
        pose = np.zeros((15, 3))
        for j in range(1, 16):
            k = int(self.mp_of[j])
            parent = G[int(self.parents[j])]
            local = shortest_arc(self.rest[k + 1] - self.rest[k], parent.T @ (world[k + 1] - world[k]))
            G[j] = parent @ local
            pose[j - 1] = rotvec(local)
        return rotvec(G[0]), pose.reshape(45)

    def __call__(self, world, keypoints_2d, K):
        from engine.fit.per_frame import place_in_camera

        go, pose = self.rotations(world)
        go, transl = place_in_camera(self.model, go[None], pose[None], np.zeros(10),
                                     np.asarray(keypoints_2d, np.float64)[None], np.ones((1, 21)), K)
        return go[0], pose, transl[0]


def pick_hands(detections, sides):
    """{side: Detection} for the live view: by MediaPipe's label, the better-scored first; with one
    side asked for, the best detection whatever its label (labels flip frame to frame; the capture after
    Stop decides identities over the whole take)."""
    if not detections:
        return {}
    ranked = sorted(detections, key=lambda d: -d.score)
    if len(sides) == 1:
        same = [d for d in ranked if d.side == sides[0]]
        return {sides[0]: (same or ranked)[0]}
    out = {}
    for det in ranked:
        side = det.side if det.side not in out else next((s for s in sides if s not in out), None)
        if side is not None and side not in out:
            out[side] = det
    return out


# -------------------------------------------------------------------------------------------- source

def parse_source(text):
    """-> (kind, value): ("camera", index) | ("device", path) | ("url", url) | ("file", path)."""
    text = str(text).strip()
    if text.isdigit():
        return "camera", int(text)
    if text.startswith("/dev/"):
        return "device", text
    if "://" in text:
        return "url", text
    return "file", text


def describe(kind, value):
    return {"camera": f"camera {value}", "device": f"camera {value}", "url": f"stream {value}",
            "file": f"video file {value}"}[kind]


def open_source(kind, value, timeout_s):
    """An opened ``cv2.VideoCapture``, or EngineError saying why not."""
    import cv2

    where = describe(kind, value)
    if kind == "file":
        if not os.path.isfile(value):
            raise EngineError(f"source not found: {value} (give a camera index such as 0, a /dev/videoN device, "
                              "a stream URL or a video file)")
    if kind == "device" and not os.path.exists(value):
        raise EngineError(f"no camera at {value}: the device does not exist (is the camera plugged in?)")
    if kind in ("url", "file"):
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(value, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    else:
        cap = cv2.VideoCapture(value)
    if not cap.isOpened():
        cap.release()
        if kind in ("camera", "device"):
            raise EngineError(f"cannot open {where}: no such camera, or another program is using it")
        if kind == "url":
            raise EngineError(f"cannot open {where}: unreachable, or not a video stream OpenCV can read")
        raise EngineError(f"cannot read {where}: not a video file, or a format OpenCV cannot decode")
    return cap


class Take:
    """The recording: every frame, encoded by a writer thread; ``close()`` publishes TAKE.mp4 and its
    times (see the module docstring). ``error``: why it stopped early (disk full), or None."""

    def __init__(self, path, fps, size, reserve_mb, on_problem):
        import cv2

        from engine.atomic import remove_stale, temp_file

        self.path = path
        self.directory = os.path.dirname(path)
        remove_stale(self.directory, TAKE_PREFIX, ".mp4")  # a take being written when its engine was killed
        fd, self.tmp = temp_file(self.directory, TAKE_PREFIX, ".mp4")
        os.close(fd)
        self.fps, self.size = float(fps), size
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if not self.writer.isOpened():
            self._discard()
            raise EngineError(f"cannot write the take {path} (no MPEG-4 encoder in this OpenCV)")
        self.reserve = reserve_mb * 1e6
        self.on_problem = on_problem
        self.times = []
        self.frames = 0
        self.error = None
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._write, daemon=True, name="take-writer")
        self._thread.start()

    def add(self, frame, t):
        self.times.append(float(t))
        self._queue.put(frame)

    def _write(self):
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self.error is not None:
                continue  # drained, not written: the disk is full
            free = shutil.disk_usage(self.directory).free  # one statvfs: cheap beside encoding a frame
            if free < self.reserve:
                self.error = (f"the disk holding {self.path} is full ({free / 1e6:.1f} MB free, "
                              f"{self.reserve / 1e6:.0f} MB kept free to close the take): recording stopped")
                self.on_problem()
                continue
            self.writer.write(frame)
            self.frames += 1

    def close(self):
        """Finish writing, release the encoder and publish the take. -> frames in it (0: nothing kept)."""
        from engine.atomic import atomic_path, publish

        self._queue.put(None)
        self._thread.join()
        self.writer.release()
        if self.frames == 0:
            self._discard()
            return 0
        times = self.times[:self.frames]
        t0 = times[0]
        sidecar = {"frames": self.frames, "fps": self.fps, "width": self.size[0], "height": self.size[1],
                   "times": [round(t - t0, 6) for t in times], "engine_version": __version__}
        try:
            with atomic_path(self.path + TIMES_SUFFIX, ".hmp-times-", ".json") as tmp:
                with open(tmp, "w") as fh:
                    json.dump(sidecar, fh)
            publish(self.tmp, self.path)
        except OSError as exc:
            # the temporary take stays where it is: say where
            raise EngineError(f"cannot finish the take {self.path}: {exc.strerror or exc}; the frames recorded are "
                              f"in {self.tmp}") from None
        return self.frames

    def _discard(self):
        from engine.atomic import discard

        discard(self.tmp)


# ---------------------------------------------------------------------------------------------- run

class Live:
    """One live session: the reader, the take, the stop conditions (see the module docstring)."""

    def __init__(self, args, reporter):
        self.args = args
        self.reporter = reporter
        self.stop_event = threading.Event()
        self.stopped_by = None
        self.failure = None  # a source failure (message)
        self.cond = threading.Condition()
        self.newest = None  # (index, time, bgr, arrival monotonic, arrival wall)
        self.read_count = 0
        self.reader_done = False
        self.last_arrival = None

    def stop(self, why):
        if self.stopped_by is None:
            self.stopped_by = why
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()

    # the reader thread
    def read(self, cap, kind, first, first_t):
        import cv2

        fps = self.fps
        realtime = kind == "file" and self.args.realtime
        start = time.monotonic()
        frame, t = first, first_t
        i = 0
        try:
            while True:
                if realtime:
                    delay = start + t - first_t - time.monotonic()
                    if delay > 0 and self.stop_event.wait(delay):
                        break
                if self.stop_event.is_set():
                    break
                # a file played in real time: the frame is due at its time, and its latency counts from
                # then even when this thread gets to it late
                self._arrive(i, t, frame, due=start + t - first_t if realtime else None)
                if self.stop_event.is_set():
                    break
                i += 1
                ok, frame = cap.read()
                if self.stop_event.is_set():
                    break
                if not ok or frame is None:
                    if kind == "file":
                        self.stop("end")
                    else:
                        self.failure = (f"{describe(kind, self.source)} stopped sending frames after "
                                        f"{self.read_count} frames")
                        self.stop("failure")
                    break
                if frame.shape[1::-1] != self.size:
                    frame = cv2.resize(frame, self.size)
                if kind == "file":
                    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                    t = msec / 1000.0 if np.isfinite(msec) and msec >= 0 else i / fps
                    if self.times_from_file and t <= self.take.times[-1]:
                        t = i / fps  # a container without usable timestamps
                else:
                    t = time.monotonic() - start
        finally:
            self.reader_done = True
            with self.cond:
                self.cond.notify_all()

    def _arrive(self, i, t, frame, due=None):
        """Frame ``i`` (time ``t``) has arrived (monotonic ``due``: when it was due, else now): into the
        take, and the newest for the live view."""
        if self.args.seconds is not None and self.take.times and t - self.take.times[0] >= self.args.seconds - 1e-6:
            self.stop("seconds")  # this frame is past the take's length: not recorded
            return
        now = time.monotonic()
        arrival = now if due is None else min(due, now)
        self.take.add(frame, t)
        self.read_count = i + 1
        self.last_arrival = now
        with self.cond:
            self.newest = (i, t, frame, arrival, time.time() - (now - arrival))
            self.cond.notify_all()

    def run(self):
        import cv2

        args = self.args
        kind, value = parse_source(args.source)
        self.source = value
        record = check_record(args.record)
        if args.frame_image is not None:
            check_frame_image(args.frame_image)
        sides = C.sides_of(args.hands)
        from engine.hand_model import load_hand_model

        size_m = None if args.hand_size is None else args.hand_size / 1000.0
        models = {side: load_hand_model(side=side, mano_dir=args.mano_dir, device="cpu", hand_size=size_m)
                  for side in sides}
        poses = {side: FastPose(models[side]) for side in sides}
        cap = open_source(kind, value, args.frame_timeout)
        # the first frame: a camera that opens but sends nothing is busy or broken
        first = _first_frame(cap, args.frame_timeout)
        if first is None:
            cap.release()
            where = describe(kind, value)
            if kind == "file":
                raise EngineError(f"{where} has no video frames")
            raise EngineError(f"{where} opened but sends no frames (none within {args.frame_timeout:g} s): is another "
                              "program using it?")
        h, w = first.shape[:2]
        self.size = (w, h)
        stated = cap.get(cv2.CAP_PROP_FPS)
        stated_ok = np.isfinite(stated) and 1.0 <= stated <= 1000.0
        self.fps = float(stated) if stated_ok else CAMERA_FPS
        self.times_from_file = kind == "file"
        first_t = 0.0
        if kind == "file":
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            first_t = msec / 1000.0 if np.isfinite(msec) and msec >= 0 else 0.0
        from engine.video import guess_intrinsics

        if args.K is not None:
            fx, fy, cx, cy = args.K
            K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        else:
            K = np.asarray(guess_intrinsics(w, h, fov_deg=args.fov), dtype=np.float64)
        from engine.keypoints.detector import HandDetector

        try:
            detector = HandDetector(max_hands=2, tracking=True)
            self.take = Take(record, self.fps, self.size, args.reserve_mb, on_problem=lambda: self.stop("disk"))
        except BaseException:
            cap.release()
            if "detector" in locals():
                detector.close()
            raise
        self.reporter.event("live", take=record, source=str(args.source), width=w, height=h, fps=self.fps,
                            K=K.round(4).tolist(), frame_image=_abs(args.frame_image),
                            hands={side: {"rest_joints": poses[side].rest_joints.round(6).tolist(),
                                         "rest_keypoints": poses[side].rest.round(6).tolist()} for side in sides})
        reader = threading.Thread(target=self.read, args=(cap, kind, first, first_t), daemon=True, name="reader")
        reader.start()
        processed = dropped = 0
        last_index = -1
        last_status = time.monotonic()
        try:
            while True:
                with self.cond:
                    while (self.newest is None or self.newest[0] == last_index) and not self.stop_event.is_set() \
                            and not self.reader_done:
                        self.cond.wait(timeout=0.25)
                        if self._silent(kind):
                            break
                    item = self.newest if self.newest is not None and self.newest[0] != last_index else None
                if self._silent(kind):
                    self.failure = (f"{describe(kind, value)} stopped sending frames: none for "
                                    f"{args.frame_timeout:g} s after {self.read_count} frames")
                    self.stop("failure")
                if item is None or self.stop_event.is_set():
                    if self.stop_event.is_set() or self.reader_done:
                        break
                    continue
                i, t, frame, arrival, wall = item
                dropped += max(0, i - last_index - 1)
                last_index = i
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                hands = {}
                for side, det in pick_hands(detector(rgb, t), sides).items():
                    go, pose, transl = poses[side](det.world, det.keypoints_2d, K)
                    hands[side] = {"global_orient": _r(go), "hand_pose": _r(pose), "transl": _r(transl),
                                   "score": round(float(det.score), 3)}
                if args.frame_image:
                    write_frame_image(args.frame_image, frame)
                processed += 1
                try:
                    self.reporter.event("pose", frame=int(i), time=round(float(t - self.take.times[0]), 6),
                                        wall=round(wall, 4), latency_ms=round(1000 * (time.monotonic() - arrival), 1),
                                        dropped=int(dropped), hands=hands)
                except (BrokenPipeError, OSError):  # whoever reads us is gone: keep the take, end it
                    self.stop("parent")
                    break
                if self.reporter.mode == "bar" and time.monotonic() - last_status > 1.0:
                    last_status = time.monotonic()
                    self.reporter.log(f"recording: {self.read_count} frames, {processed} shown live")
        finally:
            self.stop(self.stopped_by or "error")
            reader.join(timeout=1.0)  # a read blocked on a dead stream is left (the take does not need it)
            if not reader.is_alive():
                cap.release()  # never under a read() still blocked on a dead stream
            detector.close()
            frames = self.take.close()
        self.summary = {"frames": frames, "processed": processed, "dropped": dropped}
        if self.take.error or self.failure:
            kept = (f"; the take so far ({frames} frames) is kept in {record}" if frames
                    else "; no frame was recorded")
            raise LiveError(f"{self.take.error or self.failure}{kept}", take=record if frames else None, frames=frames)
        duration = (self.take.times[frames - 1] - self.take.times[0] + 1.0 / self.fps) if frames else 0.0
        return {"result": record, "frames": frames, "processed": processed, "dropped": dropped,
                "seconds": round(duration, 3), "times": record + TIMES_SUFFIX, "stopped_by": self.stopped_by}

    def _silent(self, kind):
        if kind == "file" or self.last_arrival is None or self.reader_done:
            return False
        return time.monotonic() - self.last_arrival > self.args.frame_timeout


class LiveError(EngineError):
    """The source failed or the disk filled up while recording; ``take``: the take kept (or None)."""

    def __init__(self, message, take=None, frames=0):
        super().__init__(message)
        self.take, self.frames = take, frames


def _first_frame(cap, timeout_s):
    """The first frame, or None when none comes within ``timeout_s`` (a read blocked past it is left)."""
    box = {}

    def grab():
        ok, frame = cap.read()
        box["frame"] = frame if ok else None

    thread = threading.Thread(target=grab, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return box.get("frame")


def _r(a):
    return [round(float(v), 5) for v in np.asarray(a).ravel()]


def _abs(path):
    return None if path is None else os.path.abspath(path)


def check_record(path):
    from engine.capture import check_writable

    if not str(path).lower().endswith(".mp4"):
        raise EngineError(f"the take must be a .mp4 file: {path}")
    return check_writable(path, "take")


def check_frame_image(path):
    from engine.capture import check_writable

    if not str(path).lower().endswith((".jpg", ".jpeg", ".png")):
        raise EngineError(f"--frame-image must be a .jpg or .png file: {path}")
    return check_writable(path, "frame image")


def write_frame_image(path, bgr):
    """The newest frame for a viewer (scaled to FRAME_IMAGE_WIDTH at most), replacing the last one
    atomically; a failure to write it is not the take's problem (skipped)."""
    import cv2

    from engine.atomic import atomic_path

    h, w = bgr.shape[:2]
    if w > FRAME_IMAGE_WIDTH:
        bgr = cv2.resize(bgr, (FRAME_IMAGE_WIDTH, int(round(h * FRAME_IMAGE_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ext = os.path.splitext(path)[1].lower()
    ok, data = cv2.imencode(".png" if ext == ".png" else ".jpg", bgr)
    if not ok:
        return
    try:
        with atomic_path(path, ".hmp-frame-", ext, clean_stale=False) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data.tobytes())
    except OSError:
        pass


# ---------------------------------------------------------------------------------------- main

def _watch_stdin(live):
    """A ``stop`` line on stdin ends the take (end of stdin does not: a shell may give none)."""
    try:
        for line in sys.stdin:
            if line.strip().lower() in ("stop", "q", "quit"):
                live.stop("stop")
                return
    except (OSError, ValueError):
        pass


def _watch_parent(live, interval=0.5):
    """The launcher died (Blender killed): end the take cleanly, as a stop."""
    parent = os.getppid()
    if parent <= 1:
        return

    def watch():
        while not live.stop_event.is_set():
            time.sleep(interval)
            if os.getppid() != parent:
                live.stop("parent")
                return

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv=None):
    from engine.cli import _progress_mode, filter_native_stderr

    argv = list(sys.argv[1:] if argv is None else argv)
    reporter = Reporter(_progress_mode(argv))
    with filter_native_stderr():
        return _main(argv, reporter)


def _main(argv, reporter):
    live = None
    previous = {}
    try:
        args = live_parser().parse_args(argv)
        if args.K is not None and (args.K[2] < 0 or args.K[3] < 0):
            raise EngineError("--K: the principal point must be inside the image (cx, cy >= 0)")
        reporter.start("live", __version__)
        live = Live(args, reporter)

        def on_signal(signum, frame):
            live.stop("signal")

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    previous[sig] = signal.signal(sig, on_signal)
        threading.Thread(target=_watch_stdin, args=(live,), daemon=True, name="stdin").start()
        if reporter.mode == "jsonl":
            _watch_parent(live)
        out = live.run()
        try:
            reporter.done(out.pop("result"), None, **out)
        except (BrokenPipeError, OSError):  # the launcher is gone; the take is written
            pass
        return 0
    except LiveError as exc:
        reporter.event("error", message=str(exc), take=exc.take, frames=exc.frames)
        if reporter.mode != "jsonl":
            reporter.error(str(exc))
        return 2
    except EngineError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except Exception as exc:  # a bug: the traceback, and still one final error line / event
        import traceback

        traceback.print_exc(file=sys.stderr)
        take = getattr(live, "take", None)
        kept = (f"; the take so far is kept in {take.path}" if take is not None and os.path.isfile(take.path) else "")
        reporter.error(f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''})"
                       f"{kept}; please report it with the traceback above")
        return 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
