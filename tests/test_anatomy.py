"""The finger joints' anatomical limits (engine.fit.anatomy), on the real hand models and real frames."""

import numpy as np
import pytest
import torch

from engine.fit import anatomy as A
from engine.fit.ik import ik_from_keypoints3d
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.video import open_video

DATA = __import__("pathlib").Path(__file__).parent / "data"


def keypoints(model, pose, go=None, transl=None):
    with torch.no_grad():
        return model(torch.zeros(1, 3) if go is None else go, pose, torch.zeros(10),
                     torch.zeros(1, 3) if transl is None else transl, vertices=False).keypoints[0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_flexion_curls_each_finger_towards_the_palm(side):
    model = load_hand_model(side)
    axes = A.joint_axes(model)
    rest = keypoints(model, torch.zeros(1, 45))
    centre = rest[[0, 5, 9, 13, 17]].mean(0)
    for finger, (joint, tip) in {"index": (1, 8), "middle": (4, 12), "ring": (10, 16), "pinky": (7, 20)}.items():
        pose = torch.zeros(1, 45)
        pose[0, 3 * joint:3 * joint + 3] = axes[joint, 0] * np.radians(60)  # the PIP flexed 60 degrees
        moved = keypoints(model, pose)[tip] - rest[tip]
        volar = axes[joint, 1]
        assert float(moved @ volar) > 0.01, finger  # the tip goes to the palm's side (metres)
        # and comes nearer the palm's centre: a curl, not a backward bend
        assert (keypoints(model, pose)[tip] - centre).norm() < (rest[tip] - centre).norm()
    # the reading of an angle: a rotation about one axis reads as that angle, the others 0
    pose = torch.zeros(1, 45)
    pose[0, 3:6] = axes[1, 2] * np.radians(20)  # a twist of 20 degrees of the index's PIP
    ang = A.joint_angles(pose, axes)[0, 1]
    assert torch.allclose(ang, torch.tensor([0.0, 0.0, 20.0]), atol=1e-3)


def test_limit_penalty_is_zero_inside_and_grows_outside():
    model = load_hand_model("right")
    axes = A.joint_axes(model)
    assert float(A.limit_penalty(torch.zeros(3, 45), axes)) == 0.0
    bent = torch.zeros(1, 45)
    bent[0, 3:6] = axes[1, 0] * np.radians(90)  # index PIP flexed 90 degrees: inside -5..115
    assert float(A.limit_penalty(bent, axes)) == 0.0
    back = torch.zeros(1, 45)
    back[0, 3:6] = -axes[1, 0] * np.radians(25)  # bent backwards 25 degrees: 20 past the -5 limit
    assert float(A.limit_penalty(back, axes)) == pytest.approx(20.0 ** 2, rel=1e-3)


def test_ik_on_real_landmarks_stays_inside_the_limits_at_the_same_accuracy():
    """Real frames (the ASL clip's folded fingers): without limits the IK twists phalanges about
    their own axes and trades sideways bends against flexion, which no keypoint shows; with them
    every angle stays inside (within a degree) and the landmarks are fitted as well."""
    video = open_video(DATA / "asl_hand_50.mp4")
    world = detect_hands(video, options=KeypointOptions(views=0, use_cache=False))["right"].world_landmarks
    model = load_hand_model("right")
    lim = torch.as_tensor(A.LIMITS, dtype=torch.float32)
    out = {}
    for weight in (0.0, 1e-2):
        ik = ik_from_keypoints3d(model, torch.as_tensor(world, dtype=torch.float32), fit_betas=False, fit_scale=True,
                                 limit_weight=weight)
        ang = A.joint_angles(ik["hand_pose"], A.joint_axes(model))
        out[weight] = (float((torch.relu(ang - lim[..., 1]) + torch.relu(lim[..., 0] - ang)).max()),
                       float(ik["residual"].mean()))
    assert out[0.0][0] > 30.0  # the unconstrained IK leaves the limits by tens of degrees
    assert out[1e-2][0] < 1.0 and out[1e-2][1] < 1.05 * out[0.0][1]
