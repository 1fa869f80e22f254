"""Video decoding (OpenCV, streamed) and the camera intrinsics guess.

    video = open_video(path)          # EngineError for missing / unreadable / non-video / empty files
    video.fps, video.width, video.height, video.num_frames, video.rotation
    for frame_id, rgb in video.frames(start=0, end=None): ...   # rgb (H,W,3) uint8, upright
    short_read_message(video, start, end, frame_ids_read)      # a warning when the file ended early
    fps_message(video)                                          # a warning when the frame rate is a guess

A damaged or half-downloaded file can say it has more frames than decode: ``frames`` raises
EngineError when nothing decodes from ``start`` on, and stops quietly at the first frame that does
not decode otherwise (``short_read_message`` then says how many of the frames asked for were read).

Rotation metadata (phones record portrait clips as rotated landscape streams) is applied by
OpenCV's FFmpeg backend (CAP_PROP_ORIENTATION_AUTO, on by default since 4.5); ``width``/``height``
are those of the upright frames as decoded. Variable-frame-rate files: OpenCV reports the
container's average rate, which becomes the clip's ``fps``; frames are taken in decode order
(one result row per decoded frame), as the field's video pipelines do. A take recorded by ``python -m
engine live`` keeps each frame's capture time beside it (``TAKE.mp4.times.json``): those are the
frames' times when the file fits them (``recorded_times``).
"""

import os
from collections.abc import Iterator, Sequence

import numpy as np

from engine.util.errors import EngineError

# Default horizontal-or-vertical field of view (of the longer image side), degrees. Phone main
# cameras and webcams span roughly 60-75 degrees along the long side; 60 degrees errs towards the
# narrower (longer focal length) end, which errs towards placing the hand slightly too far away
# rather than distorting it. Give --fov or --K when the camera is known.
DEFAULT_FOV_DEG = 60.0
GUESSED_FPS = 30.0  # the frame rate of a file that states none usable (outside 1..1000 fps)


def guess_intrinsics(width: int, height: int, fov_deg: float | None = None) -> np.ndarray:
    """Pinhole K (3,3) with square pixels, principal point at the image centre, and ``fov_deg``
    (default ``DEFAULT_FOV_DEG``) across the longer image side."""
    fov = DEFAULT_FOV_DEG if fov_deg is None else float(fov_deg)
    if not 1.0 <= fov <= 170.0:
        raise EngineError(f"--fov must be between 1 and 170 degrees, got {fov:g}")
    f = 0.5 * max(width, height) / np.tan(np.radians(fov) / 2)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


class Video:
    """An opened video file; ``frames()`` decodes it again on each call (streaming)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import cv2

        self.path = os.fspath(path)
        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                raise EngineError(f"cannot read {self.path}: not a video file, or a format OpenCV cannot decode")
            ok, frame = cap.read()
            if not ok or frame is None:
                raise EngineError(f"{self.path} has no video frames")
            self.height, self.width = frame.shape[:2]
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps_guessed = not (np.isfinite(fps) and 1.0 <= fps <= 1000.0)
            self.fps_stated = float(fps)  # what the file says (NaN, 0, absurd: then ``fps`` is GUESSED_FPS)
            self.fps = GUESSED_FPS if self.fps_guessed else float(fps)
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.num_frames = count if count > 0 else self._count(cap) + 1
            self.rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)
        finally:
            cap.release()
        self.recorded_times = recorded_times(self.path, self.num_frames)

    @staticmethod
    def _count(cap):
        n = 0
        while cap.grab():
            n += 1
        return n

    def frames(self, start: int = 0, end: int | None = None, with_time: bool = False) -> Iterator[tuple]:
        """Yield (frame_id, rgb uint8 (H,W,3)) for start <= frame_id < end, in order; with
        ``with_time`` also the frame's presentation time in seconds (the container's timestamps,
        right for variable-frame-rate files)."""
        import cv2

        cap = cv2.VideoCapture(self.path)
        try:
            i = 0
            while i < start and cap.grab():  # grab() is exact where seeking is not (B-frames, VFR)
                i += 1
            if i < start:  # the file ends (or breaks) before ``start``: never label earlier frames as later
                raise EngineError(self._unreadable_from(start, i))
            while end is None or i < end:
                ok, frame = cap.read()
                if not ok:
                    if i == start and start < self.num_frames:  # nothing decodes from ``start`` on
                        raise EngineError(self._unreadable_from(start, i))
                    break
                if frame.shape[:2] != (self.height, self.width):  # odd streams change size: keep one
                    frame = cv2.resize(frame, (self.width, self.height))
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if with_time and self.recorded_times is not None:
                    yield i, rgb, self.recorded_times[i]
                elif with_time:
                    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                    yield i, rgb, (msec / 1000.0 if np.isfinite(msec) and msec >= 0 else i / self.fps)
                else:
                    yield i, rgb
                i += 1
        finally:
            cap.release()


    def _unreadable_from(self, start, readable):
        return (f"{self.path}: no frame decodes from frame {start} on (the file says {self.num_frames} frames, "
                f"only the first {readable} are readable: is it damaged or incompletely downloaded?)")


TIMES_SUFFIX = ".times.json"  # a take's frame times, beside it (engine.commands.live writes them)


def recorded_times(path: "str | os.PathLike", num_frames: int) -> list[float] | None:
    """The frames' times (list of seconds from the first) that ``engine live`` wrote beside a take it
    recorded (``TAKE.mp4.times.json``: a camera's frames arrive when they do, while the .mp4 states one
    frame rate), or None: no such file, or one that does not fit this video (another frame count, times
    not increasing) and is then ignored."""
    import json

    try:
        with open(os.fspath(path) + TIMES_SUFFIX) as fh:
            data = json.load(fh)
        times = [float(t) for t in data["times"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(times) != num_frames or not all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        return None
    return times


def short_read_message(video: "Video", start: int, end: int | None, frame_ids: Sequence[int]) -> str | None:
    """A warning when fewer frames were read than ``start..end`` asks for (a damaged or half-downloaded
    file), else None. ``frame_ids``: the frames actually read."""
    want_end = video.num_frames if end is None else min(end, video.num_frames)
    wanted, got = max(0, want_end - start), len(frame_ids)
    if got >= wanted:
        return None
    last = int(frame_ids[-1]) if got else start - 1
    return (f"only {got} of the {wanted} frames asked for could be read ({start}..{want_end - 1}; read "
            f"{start}..{last}): {video.path} looks damaged or incompletely downloaded; the result covers "
            "the frames read")


def open_video(path: str | os.PathLike) -> "Video":
    """The video at ``path``, opened; EngineError when it is missing, unreadable, not a video or empty."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EngineError(f"video not found: {path}")
    if os.path.isdir(path):
        raise EngineError(f"expected a video file, got a folder: {path}")
    if not os.access(path, os.R_OK):
        raise EngineError(f"video is not readable (permissions): {path}")
    if os.path.getsize(path) == 0:
        raise EngineError(f"video file is empty (0 bytes, no frames): {path}")
    return Video(path)


def fps_message(video: "Video") -> str | None:
    """A warning for the user when ``video.fps`` is a guess (the file states no usable frame rate), else None."""
    if not video.fps_guessed:
        return None
    return (f"{os.path.basename(video.path)} states no usable frame rate ({video.fps_stated:g} fps): "
            f"assumed {video.fps:g} fps, so the result's timing (and the keys' spacing) may be off")
