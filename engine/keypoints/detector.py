"""MediaPipe Hands behind one small interface (a move to MediaPipe's Tasks API stays in this file).

``HandDetector(max_hands=2, tracking=True)`` then ``detector(rgb) -> [Detection, ...]``: per hand
21 keypoints in pixels (MediaPipe order), 21 world landmarks in metres (hand-centred, axes of the
image: x right, y down, z away from the camera), the handedness score, and ``side``: MediaPipe's
handedness label assumes a mirrored (selfie) image, so for ordinary footage its "Left" is the
subject's right hand; ``side`` holds the un-mirrored answer for one frame. A clip-level decision
(``engine.keypoints.tracks``) overrides it, since per-frame labels flip.
"""

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np


_DEVNULL_FD = None


@contextlib.contextmanager
def quiet_native_stderr():
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


LABEL_TO_SIDE = {"Left": "right", "Right": "left"}  # MediaPipe labels are for a mirrored image


@dataclass
class Detection:
    side: str  # "right" | "left": this frame's un-mirrored handedness
    score: float  # handedness score in [0, 1]
    keypoints_2d: np.ndarray  # (21,2) pixels
    world: np.ndarray  # (21,3) metres
    confidence: np.ndarray = None  # (21,) per-joint alpha from augmented views, when computed


class HandDetector:
    def __init__(self, max_hands=2, tracking=True, model_complexity=1, min_detection_confidence=0.5,
                 min_tracking_confidence=0.5):
        import mediapipe as mp

        with quiet_native_stderr():
            self._hands = mp.solutions.hands.Hands(static_image_mode=not tracking, max_num_hands=max_hands,
                                                   model_complexity=model_complexity,
                                                   min_detection_confidence=min_detection_confidence,
                                                   min_tracking_confidence=min_tracking_confidence)

    def __call__(self, rgb):
        h, w = rgb.shape[:2]
        with quiet_native_stderr():  # graph nodes start lazily (e.g. palm detection when a hand is lost)
            res = self._hands.process(np.ascontiguousarray(rgb))
        out = []
        if not res.multi_hand_landmarks:
            return out
        for lm, world, handed in zip(res.multi_hand_landmarks, res.multi_hand_world_landmarks, res.multi_handedness):
            img = np.array([[p.x * w, p.y * h] for p in lm.landmark], dtype=np.float64)
            wl = np.array([[p.x, p.y, p.z] for p in world.landmark], dtype=np.float64)
            cls = handed.classification[0]
            out.append(Detection(LABEL_TO_SIDE.get(cls.label, "right"), float(cls.score), img, wl))
        return out

    def close(self):
        self._hands.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
