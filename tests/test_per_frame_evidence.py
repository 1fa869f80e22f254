"""The per-frame estimate weighs all of MediaPipe's evidence (issue 21, item 2), on a real clip with
real MediaPipe: the 2D keypoints place the fingers, each joint counts by its confidence, the
handedness score weighs the 3D landmarks, and the joints stay inside their anatomical limits."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.fit import anatomy as A
from engine.fit.per_frame import PerFrameOptions, per_frame_estimate
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.video import guess_intrinsics, open_video

CLIP = Path(__file__).parent / "data" / "hand_short.mp4"
FRAMES = 20


@pytest.fixture(scope="module")
def clip():
    video = open_video(CLIP)
    K = np.asarray(guess_intrinsics(video.width, video.height), np.float64)
    track = detect_hands(video, options=KeypointOptions(views=0, use_cache=False, end=FRAMES))["right"]
    return track, K, video.fps, load_hand_model("right")


def distance(est, K, keypoints_2d, rows=slice(None), joints=slice(None)):
    j = est["joints"][rows][:, joints]
    uv = j[..., :2] / j[..., 2:] * np.diag(K)[:2] + K[:2, 2]
    return float(np.linalg.norm(uv - keypoints_2d[rows][:, joints], axis=-1).mean())


def test_the_fingers_follow_the_2d_keypoints_and_stay_inside_their_limits(clip):
    track, K, fps, model = clip
    ik_only = per_frame_estimate(model, track, K, fps, PerFrameOptions(refine_iters=0))
    est = per_frame_estimate(model, track, K, fps)
    tips = [4, 8, 12, 16, 20]
    # the IK sees the landmarks only: its fingertips sit off the image's keypoints; the refinement
    # brings them (and every joint) nearer
    assert distance(est, K, track.keypoints_2d, joints=tips) < 0.8 * distance(ik_only, K, track.keypoints_2d, joints=tips)
    assert distance(est, K, track.keypoints_2d) < distance(ik_only, K, track.keypoints_2d)
    ang = A.joint_angles(torch.as_tensor(est["hand_pose"], dtype=torch.float32), A.joint_axes(model))
    lim = torch.as_tensor(A.LIMITS, dtype=torch.float32)
    assert float((torch.relu(ang - lim[..., 1]) + torch.relu(lim[..., 0] - ang)).max()) < 3.0


def test_a_doubted_joint_counts_less(clip):
    """A wrong keypoint (the index tip thrown 60 px to the right in half the frames) pulls the
    estimate's index tip towards it; far less when its confidence says it is in doubt."""
    track, K, fps, model = clip
    bad = track.__class__(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(track).items()})
    rows = np.arange(0, FRAMES, 2)

    def tip_x():  # the estimate's index tip, x in the image, on the thrown frames
        j = per_frame_estimate(model, bad, K, fps)["joints"][rows, 8]
        return j[:, 0] / j[:, 2] * K[0, 0] + K[0, 2]

    clean = tip_x()
    bad.keypoints_2d[rows, 8, 0] += 60.0
    trusted = float((tip_x() - clean).mean())
    bad.confidence[rows, 8] = 0.02
    doubted = float((tip_x() - clean).mean())
    assert trusted > 10.0 and abs(doubted) < 0.3 * trusted, (trusted, doubted)


def test_landmarks_of_a_hand_mediapipe_doubts_count_less(clip):
    """Frames whose 3D landmarks are the wrong hand's shape (mirrored) pull the fingers off the image
    less when MediaPipe's handedness score says it doubted which hand it saw."""
    track, K, fps, model = clip
    bad = track.__class__(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(track).items()})
    rows = np.arange(0, FRAMES, 2)
    w = bad.world_landmarks[rows]
    bad.world_landmarks[rows] = (w - w[:, :1]) * np.array([-1.0, 1.0, 1.0]) + w[:, :1]  # the other hand's shape
    bad.handedness[rows] = 0.97
    sure = per_frame_estimate(model, bad, K, fps)
    bad.handedness[rows] = 0.05
    doubted = per_frame_estimate(model, bad, K, fps)
    assert distance(doubted, K, track.keypoints_2d, rows) < 0.9 * distance(sure, K, track.keypoints_2d, rows)
