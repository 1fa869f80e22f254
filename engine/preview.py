"""Overlay video: the detected 2D keypoints and the fitted hand's projected skeleton on each frame.

Dots are the keypoints the fit saw (filled: detected, colour from red = confidence 0 to green = 1;
hollow: filled in from the interpolated estimate); lines are the fitted skeleton, one colour per
finger. Frames where a hand is absent show nothing for it. Written atomically (temp file + rename).
"""

import os
from typing import TYPE_CHECKING

import numpy as np

from engine.contract import result as R
from engine.contract.joints import MEDIAPIPE_PARENTS
from engine.util.atomic import atomic_path
from engine.util.camera import project
from engine.util.errors import EngineError

if TYPE_CHECKING:
    from engine.contract.progress import Reporter
    from engine.video import Video

MAX_WIDTH = 1280  # previews of larger videos are scaled down
# BGR colour per finger (thumb, index, middle, ring, pinky), per MediaPipe keypoint
FINGER_BGR = [(0, 140, 255), (60, 220, 60), (255, 160, 0), (220, 60, 220), (60, 60, 255)]
KEYPOINT_FINGER = [0] + [f for f in range(5) for _ in range(4)]


def draw_hand(canvas: np.ndarray, joints_px: np.ndarray, keypoints_px: np.ndarray, confidence: np.ndarray,
              source: int, scale: float = 1.0) -> np.ndarray:
    """Draw one hand on a BGR uint8 image (H,W,3) (in place; returned): the fit's joints_px (21,2), the
    keypoints_px (21,2) with their confidence (21,), in original-video pixels; ``source`` the frame's
    keypoint source code."""
    import cv2

    thick = max(1, int(round(3 * scale)))
    radius = max(2, int(round(5 * scale)))
    jp = np.round(joints_px * scale).astype(int)
    for k in range(1, 21):
        p = MEDIAPIPE_PARENTS[k]
        cv2.line(canvas, tuple(jp[p]), tuple(jp[k]), FINGER_BGR[KEYPOINT_FINGER[k]], thick, cv2.LINE_AA)
    if source == R.SOURCE_NONE:
        return canvas
    kp = np.round(keypoints_px * scale).astype(int)
    hollow = source == R.SOURCE_INTERPOLATED
    for k in range(21):
        c = float(np.clip(confidence[k], 0, 1))
        colour = (0, int(255 * c), int(255 * (1 - c)))
        cv2.circle(canvas, tuple(kp[k]), radius, colour, 1 if hollow else -1, cv2.LINE_AA)
    return canvas


def write_preview(video: "Video", result: R.Result, path: str | os.PathLike,
                  reporter: "Reporter | None" = None) -> str:
    """Render the overlay of ``result`` (an engine.contract.result.Result) over ``video`` into ``path`` (.mp4)."""
    import cv2

    path = os.path.abspath(os.fspath(path))
    K = np.asarray(result["K"], dtype=np.float64)
    frame_ids = np.asarray(result["frame_ids"])
    row_of = {int(f): i for i, f in enumerate(frame_ids)}
    scale = min(1.0, MAX_WIDTH / float(video.width))
    size = (int(round(video.width * scale)) // 2 * 2, int(round(video.height * scale)) // 2 * 2)
    hands = {side: (hand, project(np.asarray(hand["joints"], np.float64), K)) for side, hand in result.hands.items()}
    with atomic_path(path, ".hmp-preview-", ".mp4") as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(result.fps), size)
        if not writer.isOpened():
            raise EngineError(f"cannot write the preview video {path} (no MPEG-4 encoder in this OpenCV)")
        try:
            for frame_id, rgb in video.frames(start=int(frame_ids[0]), end=int(frame_ids[-1]) + 1):
                canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                if scale != 1.0:
                    canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
                elif canvas.shape[1] != size[0] or canvas.shape[0] != size[1]:
                    canvas = cv2.resize(canvas, size)
                i = row_of.get(int(frame_id))
                if i is not None:
                    for side, (hand, joints_px) in hands.items():
                        if hand["valid"][i]:
                            draw_hand(canvas, joints_px[i], hand["keypoints_2d"][i], hand["confidence"][i],
                                      int(hand["keypoint_source"][i]), scale)
                    cv2.putText(canvas, f"frame {int(frame_id)}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                                (255, 255, 255), 1, cv2.LINE_AA)
                writer.write(canvas)
                if reporter is not None:
                    reporter.advance()
        finally:
            writer.release()
    return path
