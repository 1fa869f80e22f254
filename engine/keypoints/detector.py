"""MediaPipe's hand landmarker (the Tasks API) behind one small interface.

``HandDetector(max_hands=2, tracking=True)`` then ``detector(rgb, t) -> [Detection, ...]``: per hand
21 keypoints in pixels (MediaPipe order), 21 world landmarks in metres (hand-centred, axes of the
image: x right, y down, z away from the camera), the handedness score, and ``side``: this frame's answer to which hand it is. The Tasks
landmarker's label names the hand as seen in the image given (its "Right" is the subject's right
hand in ordinary, un-mirrored footage; on the demo, ASL and hard test clips every label is the
opposite of the legacy ``solutions.hands`` label, which assumed a mirrored selfie image). A clip-level decision
(``engine.keypoints.tracks``) overrides it, since per-frame labels flip.

The model is the bundle that ships in the repository (``engine/assets/mediapipe/hand_landmarker.task``,
Apache-2.0, built by ``tools/make_hand_landmarker_bundle.py`` from the models of MediaPipe 0.10.21:
the palm detector and the landmark network the legacy ``solutions.hands`` ran). Current MediaPipe
ships the Tasks runtime and no hand model; nothing is downloaded.

``tracking=True`` runs the landmarker in VIDEO mode: the palm detector runs only while fewer than
``max_hands`` hands are tracked, and each tracked hand's landmarks come from the crop predicted by
its previous frame, as the legacy graph did with ``static_image_mode=False``. VIDEO mode needs a
strictly increasing integer timestamp in ms per frame: the frame's own time (the container's
timestamps, so a variable frame rate keeps its spacing), pushed 1 ms past the previous one where
rounding or a broken container would repeat or reverse it. ``tracking=False`` is IMAGE mode (every
frame on its own).
"""

import contextlib
import os
import sys
import types
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "mediapipe" / "hand_landmarker.task"
LANDMARK_MEMBER = "hand_landmarks_detector.tflite"  # the landmark network inside the bundle

_DEVNULL_FD = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 (MediaPipe's TFLite/absl chatter, e.g.
    "Created TensorFlow Lite XNNPACK delegate" whenever a graph node starts, ignores
    GLOG_minloglevel), restoring it afterwards. Python-level errors still raise. Two dup2 calls:
    cheap enough to wrap every frame."""
    global _DEVNULL_FD
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        if _DEVNULL_FD is None:
            _DEVNULL_FD = os.open(os.devnull, os.O_WRONLY)
        os.dup2(_DEVNULL_FD, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _DeferredModule(types.ModuleType):
    """A stand-in for a module that imports the real one on its first attribute access (the stand-in
    then forwards to it, and ``sys.modules`` holds the real one)."""

    def __getattr__(self, attr):
        import importlib

        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__["_real"] = real
        return getattr(real, attr)


def import_mediapipe() -> types.ModuleType:
    """``mediapipe``, imported without running ``matplotlib.pyplot``: ``import mediapipe`` imports every
    Tasks API, whose drawing utilities import pyplot (about 0.8-1.3 s on a 2-core CPU, issue 22) that
    the engine never uses. pyplot stands deferred (``_DeferredModule``) while mediapipe imports, so it
    runs only if something uses it (drawing with MediaPipe's utilities still works)."""
    if "mediapipe" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
        stand_in = _DeferredModule("matplotlib.pyplot")
        stand_in.__spec__ = None
        sys.modules["matplotlib.pyplot"] = stand_in
        try:
            import mediapipe
        finally:
            if sys.modules.get("matplotlib.pyplot") is stand_in:
                del sys.modules["matplotlib.pyplot"]  # a later import of pyplot gets the real module
    import mediapipe

    return mediapipe


def _read_bundle(member=None):
    """The bundle's bytes (``member`` None) or one member's; an EngineError naming the file when it is
    missing or not a bundle (a checkout without the asset, a damaged install)."""
    from engine.util.errors import EngineError

    try:
        with zipfile.ZipFile(MODEL_BUNDLE) as z:
            landmarks = z.read(LANDMARK_MEMBER)
        return landmarks if member == LANDMARK_MEMBER else MODEL_BUNDLE.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise EngineError(f"MediaPipe's hand model bundle is missing or damaged ({MODEL_BUNDLE}: {exc}); "
                          "rebuild it with tools/make_hand_landmarker_bundle.py or reinstall the extension") from None


def model_bundle_bytes() -> bytes:
    """The hand landmarker bundle's bytes, for the Tasks landmarker (see ``_read_bundle``'s error)."""
    return _read_bundle()


def landmark_model_bytes() -> bytes:
    """The landmark network alone (the bundle's ``hand_landmarks_detector.tflite``), for LiteRT."""
    return _read_bundle(LANDMARK_MEMBER)


LABEL_TO_SIDE = {"Right": "right", "Left": "left"}  # the Tasks label is the un-mirrored hand (module doc)


@dataclass
class Detection:
    side: str  # "right" | "left": this frame's un-mirrored handedness
    score: float  # handedness score in [0, 1]
    keypoints_2d: np.ndarray  # (21,2) pixels
    world: np.ndarray  # (21,3) metres
    confidence: np.ndarray = None  # (21,) per-joint alpha from augmented views, when computed


class HandDetector:
    """MediaPipe's HandLandmarker on the shipped bundle (see the module docstring).

    The thresholds are the landmarker's defaults, which are the legacy graph's: 0.5 to detect a
    palm, 0.5 for a tracked hand to stay present (the legacy graph's ``min_tracking_confidence``), and 0.5
    for Tasks' ``min_tracking_confidence``, which is not the legacy option of that name: the overlap
    (IoU) above which a palm found again is taken for a hand already tracked.
    """

    def __init__(self, max_hands: int = 2, tracking: bool = True, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        import_mediapipe()
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        self.tracking = tracking
        mode = vision.RunningMode.VIDEO if tracking else vision.RunningMode.IMAGE
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model_bundle_bytes()), running_mode=mode,
            num_hands=max_hands, min_hand_detection_confidence=min_detection_confidence,
            min_hand_presence_confidence=min_presence_confidence, min_tracking_confidence=min_tracking_confidence)
        with quiet_native_stderr():
            self._landmarker = vision.HandLandmarker.create_from_options(options)
        self._last_ms = None

    def timestamp_ms(self, t: float | None) -> int:
        """The VIDEO-mode timestamp for a frame at ``t`` seconds (None: 1 ms past the previous
        frame): its own time in ms, or 1 ms past the previous one where that would not increase."""
        ms = None if t is None or not np.isfinite(t) else int(round(float(t) * 1000.0))
        if self._last_ms is not None and (ms is None or ms <= self._last_ms):
            ms = self._last_ms + 1
        self._last_ms = 0 if ms is None else ms
        return self._last_ms

    def __call__(self, rgb, t=None):
        """Hands in one RGB frame (H,W,3) uint8 at ``t`` seconds (VIDEO mode's timestamp)."""
        mp = import_mediapipe()
        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with quiet_native_stderr():  # graph nodes start lazily (e.g. palm detection when a hand is lost)
            if self.tracking:
                res = self._landmarker.detect_for_video(image, self.timestamp_ms(t))
            else:
                res = self._landmarker.detect(image)
        out = []
        for lm, world, handed in zip(res.hand_landmarks, res.hand_world_landmarks, res.handedness):
            img = np.array([[p.x * w, p.y * h] for p in lm], dtype=np.float64)
            wl = np.array([[p.x, p.y, p.z] for p in world], dtype=np.float64)
            cls = handed[0]
            out.append(Detection(LABEL_TO_SIDE.get(cls.category_name, "right"), float(cls.score), img, wl))
        return out

    def close(self) -> None:
        with quiet_native_stderr():  # LiteRT announces each accelerator it destroys
            self._landmarker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
