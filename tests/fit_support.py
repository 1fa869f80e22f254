"""Synthetic clips for the fit's tests: the real hand model posed by real held-out motion, seen by a
pinhole camera, and what a detector would report of it (no mocks: the inputs the engine gets)."""

import numpy as np
import torch

K = np.array([[900.0, 0, 320], [0, 900.0, 240], [0, 0, 1]])
FPS = 30.0


def held_out_motion(T):
    """(global_orient (T,3) camera frame, hand_pose (T,45)) of the longest held-out Leap Motion take
    (real motion the prior never trained on)."""
    import roma

    from engine.prior.data import load_sequences, split_by_take
    from engine.prior.train import LEAP_BUNDLE

    seqs = load_sequences([LEAP_BUNDLE])
    _, held = split_by_take(seqs, 0.15)
    seq = max((seqs[i] for i in held), key=lambda s: len(s["hand_pose"]))
    assert len(seq["hand_pose"]) >= T
    leap_to_camera = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # Leap: y up, z towards the user
    go = roma.rotmat_to_rotvec(leap_to_camera @ roma.rotvec_to_rotmat(
        torch.as_tensor(seq["global_orient"][:T], dtype=torch.float32)))
    return go, torch.as_tensor(seq["hand_pose"][:T], dtype=torch.float32)


def keypoints_of(model, go, pose, betas, depth=0.5):
    """The model's 21 keypoints (T,21,3) for these poses and shape, the hand's mean position
    ``depth`` metres in front of the camera."""
    with torch.no_grad():
        kp = model(go, pose, torch.as_tensor(betas, dtype=torch.float32), torch.zeros(len(go), 3),
                   vertices=False).keypoints
    return (kp - kp[:, :1].mean(0, keepdim=True) + torch.tensor([0.0, 0.0, depth])).numpy().astype(np.float64)


def track_of(kp3d, seed=0, px=1.5, mm=3.0, missing=()):
    """What a detector gives: 2D keypoints with pixel noise and metric 3D landmarks with mm noise;
    frames in ``missing`` have none."""
    from engine.contract import result as R
    from engine.keypoints import HandTrack
    from engine.util.camera import project

    rng = np.random.default_rng(seed)
    T = len(kp3d)
    kp2d = project(kp3d, K) + rng.normal(0, px, (T, 21, 2))
    world = kp3d - kp3d[:, :1] + rng.normal(0, mm / 1000, (T, 21, 3))
    source = np.full(T, R.SOURCE_MEDIAPIPE, np.uint8)
    conf = np.full((T, 21), 0.9)
    missing = list(missing)
    source[missing], kp2d[missing], conf[missing], world[missing] = R.SOURCE_NONE, 0.0, 0.0, np.nan
    return HandTrack(kp2d, conf, source, world, np.arange(T), np.full(T, 0.9))
