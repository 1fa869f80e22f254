"""The rendered benchmark's truth: a hand that is not the fitted model, rendered in Blender (Cycles
CPU), found by real MediaPipe where it truly is, and scored with the engine's metrics."""

import numpy as np
import pytest
import torch

from engine.contract.joints import MEDIAPIPE_PARENTS
from engine.evaluation.benchmark import CLIPS, make_clip, motion_source, pick_motions, render, rescaled_hand
from engine.evaluation.benchmark.scene import pose_hand
from engine.evaluation.metrics import all_metrics
from engine.fit.per_frame import per_frame_estimate
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.util.camera import project
from engine.video import guess_intrinsics, open_video


def bone_lengths(model):
    """Rest-pose lengths (20,) of the bones between the 21 keypoints (MediaPipe order), metres."""
    with torch.no_grad():
        z = torch.zeros(1, 3)
        kp = model(z, torch.zeros(1, 45), torch.zeros(1, 10), z).keypoints[0].numpy()
    return np.linalg.norm(kp[1:] - kp[MEDIAPIPE_PARENTS[1:]], axis=-1)


def test_each_view_shows_the_side_of_the_hand_it_names():
    """A clip's view says which side of the hand faces the camera, judged by the palm's normal of
    engine.fit.anatomy (the rule the finger limits curl towards), for right and mirrored left hands."""
    hand = load_hand_model("right")
    motion = ("rest", np.zeros((1, 45)), np.zeros((1, 3)))
    facing = {}
    for view in ("palm", "back", "side", "end"):
        for side in ("right", "left"):
            _, kp = pose_hand(hand, motion, view, side)
            kp = kp[0]
            towards_thumb, along_palm = kp[5] - kp[17], kp[9] - kp[0]  # little -> index knuckle, wrist -> middle
            volar = np.cross(towards_thumb, along_palm) * (1 if side == "right" else -1)
            facing[view, side] = -volar[2] / np.linalg.norm(volar)  # 1: the palm looks straight at the camera
    assert all(facing["palm", s] > 0.9 and facing["back", s] < -0.9 for s in ("right", "left")), facing
    assert all(abs(facing["side", s]) < 0.5 for s in ("right", "left")), facing  # an edge faces the camera
    assert {c.view for c in CLIPS} == {"palm", "back", "side", "end"}
    assert all(c.name.startswith(c.view) for c in CLIPS if c.view in ("palm", "back") and len(c.hands) == 1)


def test_rescaled_hand_is_not_the_model():
    model = load_hand_model("right")
    hand, info = rescaled_hand(np.random.default_rng(0))
    ratio = bone_lengths(hand) / bone_lengths(model)  # (20,) per bone
    assert abs(info["size"] - 1) >= 0.05
    assert np.ptp(ratio) > 0.1  # not one uniform scale: bones change by different factors
    assert (ratio >= 0.8).all() and (ratio <= 1.25).all()  # within size x palm x +-15 % per segment
    # the mesh follows the bones: each fingertip vertex hangs from its distal joint by that bone's factor
    with torch.no_grad():
        rest = lambda m: m(torch.zeros(1, 3), torch.zeros(1, 45), torch.zeros(1, 10), torch.zeros(1, 3)).keypoints[0]
        kp_h, kp_m = rest(hand).numpy(), rest(model).numpy()
    A = info["size"] * np.array([1.0, *info["palm"]])
    for tip, distal, seg in ((8, 7, 2), (12, 11, 5), (4, 3, 14)):  # index, middle, thumb: MANO joints 3, 6, 15
        expected = info["segments"][seg] * (kp_m[tip] - kp_m[distal]) * A
        np.testing.assert_allclose(kp_h[tip] - kp_h[distal], expected, atol=1e-6)
    assert np.abs(bone_lengths(hand) - bone_lengths(model)).max() > 0.003  # m: a hand that is not the model

def test_tiny_rendered_clip_gives_sensible_metrics(tmp_path):
    """3 frames of the both-hands clip at 320x240 through MediaPipe and the per-frame estimate, with the
    guessed intrinsics (the true field of view differs), scored against the rescaled hand's keypoints."""
    T, size = 3, (320, 240)
    clip = next(c for c in CLIPS if len(c.hands) == 2)
    _, seqs = motion_source()
    scene, truth, K_true, _ = make_clip(clip, pick_motions(seqs, 2, T), T, size, seed=7)
    np.savez(tmp_path / "clip.npz", **scene)
    render(tmp_path / "clip.npz", tmp_path / "clip.mp4")
    video = open_video(tmp_path / "clip.mp4")
    tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(views=0, use_cache=False))
    K = guess_intrinsics(*size)
    assert abs(K[0, 0] - K_true[0, 0]) > 20  # the pipeline is not told the true camera
    for side in ("right", "left"):
        track = tracks[side]
        assert track.detected.all(), side
        err = np.linalg.norm(track.keypoints_2d - project(truth[side], K_true), axis=-1)
        assert np.median(err) < 12.0, (side, np.median(err))  # px: MediaPipe's joints on the rendered hand
        est = per_frame_estimate(load_hand_model(side), track, K, video.fps)
        m = all_metrics(est["joints"], truth[side], K=K, K_gt=K_true)
        assert m["2D (px)"] < 15.0, (side, m)
        assert m["PA-MPJPE"] < 25.0, (side, m)
        assert m["RA-MPJPE"] < 60.0, (side, m)
        # depth follows the guessed focal length: the camera-space error is larger than the root-aligned one
        assert m["RA-MPJPE"] < m["camera MPJPE"] < 250.0, (side, m)
        # one frame triple: the wrist's acceleration error is bounded by the depth error's scale (a wrist
        # thrown 15 cm between frames would be a broken placement, not detector noise)
        assert 0.0 <= m["wrist acc."] < 150.0, (side, m)
