"""One live session (``Live``): the reader thread, the take, the live worker on the newest frame and the
stop conditions (the package docstring tells the whole story)."""

import argparse
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.commands.live.pose import FastPose, pick_hands
from engine.commands.live.source import describe, open_source, parse_source
from engine.commands.live.take import TIMES_SUFFIX, Take, check_frame_image, check_record, write_frame_image
from engine.contract import choices as C
from engine.contract.progress import Reporter
from engine.util.errors import EngineError

if TYPE_CHECKING:
    import cv2

CAMERA_FPS = 30.0  # a camera's frame rate for the take when it states none usable


class Live:
    """One live session: the reader, the take, the stop conditions (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, reporter: Reporter) -> None:
        """``args``: ``engine.commands.live.cli.live_parser``'s; events through ``reporter``."""
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

    def stop(self, why: str) -> None:
        """End the take (the first reason given is kept in ``stopped_by``), waking every thread."""
        if self.stopped_by is None:
            self.stopped_by = why
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()

    # the reader thread
    def read(self, cap: "cv2.VideoCapture", kind: str, first: np.ndarray, first_t: float) -> None:
        """The reader thread: every frame (BGR (H,W,3), the first already read at ``first_t`` s) into the
        take and, the newest, to the live worker, until a stop, the end of a file or a silent camera."""
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

    def run(self) -> dict[str, Any]:
        """The session, the live worker on this thread -> the ``done`` event's fields (``result``: the
        take); LiveError when the source fails or the disk fills up (the take so far kept)."""
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

    def __init__(self, message: str, take: str | None = None, frames: int = 0) -> None:
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
