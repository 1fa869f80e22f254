"""Batched inverse kinematics recovers known poses of the hand model from its own keypoints."""

import numpy as np
import roma
import torch

from engine.fit.ik import ik_from_keypoints3d
from engine.hand_model import load_hand_model


def random_hands(model, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # roma.random_rotvec draws from the global generator
    go = roma.random_rotvec(T)
    # finger flexion mostly about one axis, small side-to-side and twist: plausible hands
    hp = (torch.rand(T, 45, generator=g) - 0.3) * 0.8 * torch.tensor([0.3, 0.3, 1.0]).repeat(15)
    betas = torch.randn(10, generator=g) * 0.8
    transl = torch.randn(T, 3, generator=g) * 0.1
    with torch.no_grad():
        kp = model(go, hp, betas, transl, vertices=False).keypoints
    return kp, betas


def test_ik_recovers_known_poses_within_a_millimetre():
    torch.manual_seed(0)
    model = load_hand_model("right")
    kp, betas = random_hands(model, 64)
    fit = ik_from_keypoints3d(model, kp, iters=400)
    with torch.no_grad():
        kp2 = model(fit["global_orient"], fit["hand_pose"], fit["betas"], fit["transl"], vertices=False).keypoints
    err = (kp2 - kp).norm(dim=-1) * 1000  # mm
    assert float(err.mean()) < 1.0 and float(err.max()) < 4.0, (float(err.mean()), float(err.max()))
    assert torch.allclose(fit["residual"] * 1000, err.mean(-1), atol=1e-3)
    # the shared shape is found too (overall scale and palm width are well determined)
    assert abs(float(fit["betas"][0] - betas[0])) < 0.3 and abs(float(fit["betas"][1] - betas[1])) < 0.3
    for key, shape in {"global_orient": (64, 3), "hand_pose": (64, 45), "betas": (10,), "transl": (64, 3)}.items():
        assert fit[key].shape == shape


def test_ik_degrades_gracefully_with_noise_and_skips_nan_rows():
    torch.manual_seed(1)
    model = load_hand_model("left")
    kp, _ = random_hands(model, 32, seed=3)
    noisy = kp + torch.randn_like(kp) * 0.003  # 3 mm noise, like a good detector
    noisy[5] = float("nan")
    fit = ik_from_keypoints3d(model, noisy)
    assert all(torch.isfinite(fit[k]).all() for k in ("global_orient", "hand_pose", "betas", "transl"))
    assert torch.isnan(fit["residual"][5])
    with torch.no_grad():
        kp2 = model(fit["global_orient"], fit["hand_pose"], fit["betas"], fit["transl"], vertices=False).keypoints
    keep = torch.arange(32) != 5
    err = ((kp2 - kp).norm(dim=-1)[keep] * 1000).mean()
    assert float(err) < 4.0, float(err)  # the fit is closer to the truth than the noise is


def test_ik_weights_ignore_a_wrong_joint():
    model = load_hand_model("right")
    kp, _ = random_hands(model, 8, seed=5)
    bad = kp.clone()
    bad[:, 8] += torch.tensor([0.05, 0.0, 0.0])  # index tip 5 cm off
    w = torch.ones(8, 21)
    w[:, 8] = 0
    fit = ik_from_keypoints3d(model, bad, weights=w, iters=300)
    with torch.no_grad():
        kp2 = model(fit["global_orient"], fit["hand_pose"], fit["betas"], fit["transl"], vertices=False).keypoints
    others = [j for j in range(21) if j != 8]
    assert float((kp2 - kp)[:, others].norm(dim=-1).mean()) < 0.003
    assert np.isfinite(fit["residual"].numpy()).all()
