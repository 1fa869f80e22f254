"""The recording: the ``Take`` writer (every frame encoded by its own thread, published whole with its
frames' times beside it), the checks of the output paths, and the newest-frame image for a viewer."""

import json
import os
import queue
import shutil
import threading
from collections.abc import Callable

import numpy as np

from engine import __version__
from engine.util.errors import EngineError
from engine.video import TIMES_SUFFIX  # the frames' times beside the take: engine.video reads them

FRAME_IMAGE_WIDTH = 640  # the newest-frame image for the add-on is scaled down to this width at most
TAKE_PREFIX = ".hmp-take-"  # the take being written (engine.util.atomic names it after its writer)


class Take:
    """The recording: every frame, encoded by a writer thread; ``close()`` publishes TAKE.mp4 and its
    times (see the module docstring). ``error``: why it stopped early (disk full), or None."""

    def __init__(self, path: str, fps: float, size: tuple[int, int], reserve_mb: float,
                 on_problem: Callable[[], None]) -> None:
        """TAKE.mp4 at ``path``, ``fps`` frames a second of ``size`` (width, height) pixels; ``on_problem()``
        is called (from the writer thread) when the disk has less than ``reserve_mb`` MB free."""
        import cv2

        from engine.util.atomic import remove_stale, temp_file

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

    def add(self, frame: np.ndarray, t: float) -> None:
        """Queue a BGR frame (H,W,3) uint8 captured at ``t`` seconds for the writer."""
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

    def close(self) -> int:
        """Finish writing, release the encoder and publish the take. -> frames in it (0: nothing kept)."""
        from engine.util.atomic import atomic_path, publish

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
        from engine.util.atomic import discard

        discard(self.tmp)


def check_record(path: str) -> str:
    """The take's absolute path, or EngineError: not a .mp4, or not writable."""
    from engine.capture import check_writable

    if not str(path).lower().endswith(".mp4"):
        raise EngineError(f"the take must be a .mp4 file: {path}")
    return check_writable(path, "take")


def check_frame_image(path: str) -> str:
    """The frame image's absolute path, or EngineError: not a .jpg / .png, or not writable."""
    from engine.capture import check_writable

    if not str(path).lower().endswith((".jpg", ".jpeg", ".png")):
        raise EngineError(f"--frame-image must be a .jpg or .png file: {path}")
    return check_writable(path, "frame image")


def write_frame_image(path: str, bgr: np.ndarray) -> None:
    """The newest frame for a viewer (scaled to FRAME_IMAGE_WIDTH at most), replacing the last one
    atomically (``bgr``: (H,W,3) uint8); a failure to write it is not the take's problem (skipped)."""
    import cv2

    from engine.util.atomic import atomic_path

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
