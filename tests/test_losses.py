"""Known answers for each term of the fit (engine.fit.losses) and for the window / chunk blending."""

import math

import numpy as np
import pytest
import roma
import torch

from engine.fit import losses as L
from engine.fit.windows import blend_rotations, crossfade_chunks, layout

DEG = math.pi / 180


def rz(deg):
    """Axis-angle of a rotation by deg about z, (3,) tensor."""
    return torch.tensor([0.0, 0.0, deg * DEG], dtype=torch.float64)


def test_orientation_terms_are_squared_geodesic_angles_in_the_chosen_unit():
    phi = torch.stack([rz(0), rz(10), rz(30)])
    phi_hat = torch.stack([rz(0), rz(0), rz(0)])
    # L_o: 0 + 10^2 + 30^2 degrees^2; L_os: (10-0)^2 + (30-10)^2
    assert float(L.orient_data(phi, phi_hat, L.ROT_UNIT)) == pytest.approx(1000.0, rel=1e-5)
    assert float(L.orient_smooth(phi, L.ROT_UNIT)) == pytest.approx(500.0, rel=1e-5)
    assert float(L.orient_data(phi, phi_hat)) == pytest.approx(1000.0 * DEG ** 2, rel=1e-5)  # radians
    # geodesic, not a difference of axis-angle vectors: 350 deg about z is 10 deg away from identity
    assert float(L.orient_data(rz(350)[None], rz(0)[None], L.ROT_UNIT)) == pytest.approx(100.0, rel=1e-4)


def test_translation_terms_are_squared_distances_in_the_chosen_unit():
    tau = torch.tensor([[0.0, 0, 0.5], [0.01, 0, 0.5], [0.01, 0.02, 0.5]])
    tau_hat = torch.tensor([[0.0, 0, 0.5], [0.0, 0, 0.5], [0.0, 0, 0.5]])
    # in centimetres: data 0 + 1 + (1 + 4); smoothness 1 + 4
    assert float(L.transl_data(tau, tau_hat, L.TRANSL_UNIT)) == pytest.approx(6.0, rel=1e-5)
    assert float(L.transl_smooth(tau, L.TRANSL_UNIT)) == pytest.approx(5.0, rel=1e-5)
    assert float(L.transl_smooth(tau)) == pytest.approx(5e-4, rel=1e-5)  # metres


def test_residual_terms_and_shape_term():
    delta = torch.zeros(3, 45)
    delta[1, 0] = 2 * DEG
    delta[2, 0] = 2 * DEG
    delta[2, 44] = 1 * DEG
    assert float(L.residual_size(delta, L.ROT_UNIT)) == pytest.approx(4 + 4 + 1, rel=1e-5)
    assert float(L.residual_smooth(delta, L.ROT_UNIT)) == pytest.approx(4 + 1, rel=1e-5)
    assert float(L.shape_reg(torch.tensor([1.0, -2.0, 0.5]))) == pytest.approx(5.25)


def test_joint_acceleration_is_in_pixels_at_the_joints_depth():
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    # joint 0 at 1 m (0.5 px per mm): 1 mm sideways then back, a second difference of -2 mm -> (-1 px)^2;
    # joint 1 at 0.5 m moving steadily (no acceleration) -> 0; a depth jump of 1 mm in its middle frame
    # counts too, at that frame's depth
    p = torch.zeros(3, 2, 3)
    p[:, 0, 2] = 1.0
    p[1, 0, 0] = 0.001
    p[:, 1, 2] = 0.5
    p[:, 1, 1] = torch.tensor([0.0, 0.01, 0.02])
    assert float(L.joint_accel(p, K)) == pytest.approx(1.0, rel=1e-4)
    p[1, 1, 2] = 0.501
    assert float(L.joint_accel(p, K)) == pytest.approx(1.0 + (2 * 0.001 * 500 / 0.501) ** 2, rel=1e-4)
    # moving the hand away does not lower it through the gradient (the depth is only a weight)
    q = p.clone().requires_grad_(True)
    L.joint_accel(q, K).backward()
    assert float(q.grad[1, 0, 2]) == 0.0


def test_pose_data_is_the_squared_geodesic_angle_per_joint():
    pose = torch.zeros(2, 45)
    pose[1, 3:6] = rz(20)
    pose[1, 42:45] = rz(-10)
    assert float(L.pose_data(pose, torch.zeros(2, 45), L.ROT_UNIT)) == pytest.approx(400 + 100, rel=1e-4)


def test_2d_term_is_robust_and_weighted_by_confidence_squared():
    K = torch.tensor([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
    points = torch.tensor([[[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]]])  # project to (320,240), (420,240)
    target = torch.tensor([[[323.0, 244.0], [420.0, 240.0]]])  # 5 px off, exact
    alpha = torch.tensor([[0.5, 1.0]])
    r2 = 25.0
    expected = 0.25 * (40 ** 2 * r2 / (40 ** 2 + r2))
    assert float(L.keypoints_2d(points, K, target, alpha)) == pytest.approx(expected, rel=1e-5)
    # far outliers saturate at the scale's square instead of growing quadratically
    far = torch.tensor([[[320.0 + 4000, 240.0], [420.0, 240.0]]])
    assert float(L.keypoints_2d(points, K, far, torch.tensor([[1.0, 1.0]]))) == pytest.approx(1600.0, rel=1e-3)


def test_window_blend_of_rotations_is_a_quaternion_mean():
    T = 40
    lay = layout(T, 30.0, prior_window=24, prior_fps=30.0, overlap=8)
    W, n = lay.frame_index.shape
    assert W >= 2
    # every window says 20 deg about z, except the second which says 40: inside the overlap the blend
    # lies between, weighted by the ramp; elsewhere it is exactly the window's value
    angles = torch.full((W, n), 20.0)
    angles[1] = 40.0
    rotvecs = torch.zeros(W, n, 1, 3)
    rotvecs[..., 0, 2] = angles * DEG
    out = blend_rotations(rotvecs, lay, T, torch.zeros(T, 1, 3))  # (T,1,3)
    got = out[:, 0, 2] / DEG
    w1 = torch.zeros(T).index_add(0, lay.frame_index[1][lay.mask[1]], lay.weight[1][lay.mask[1]])
    expected = 20.0 + 20.0 * w1  # about z, a normalised quaternion mean of two angles is close to linear
    assert torch.allclose(got, expected, atol=0.15)
    assert float(got[0]) == pytest.approx(20.0, abs=1e-4)


def test_chunk_crossfade_blends_rotations_on_the_short_arc():
    # two chunks overlapping by 4 frames whose rotations are 170 and -170 deg about z: the same
    # rotation family 20 deg apart across 180 deg. A mean of axis-angle vectors passes through
    # identity (0 deg); the quaternion blend stays near 180 deg.
    spans = [(0, 10), (6, 16)]
    go = [np.tile([0.0, 0.0, 170 * DEG], (10, 1)), np.tile([0.0, 0.0, -170 * DEG], (10, 1))]
    results = [{"global_orient": g, "hand_pose": np.zeros((10, 45)), "transl": np.full((10, 3), k, float)}
               for k, g in enumerate(go)]
    out = crossfade_chunks(spans, results, 16, overlap=4)
    angles = np.degrees(np.linalg.norm(out["global_orient"], axis=1))
    assert np.all(angles >= 169.9), angles  # never towards identity
    R = roma.rotvec_to_rotmat(torch.as_tensor(out["global_orient"]))
    yaw = np.degrees(np.arctan2(R[:, 1, 0].numpy(), R[:, 0, 0].numpy())) % 360
    assert np.all(np.diff(yaw) >= -1e-6) and yaw[0] == pytest.approx(170) and yaw[-1] == pytest.approx(190)
    # translation: 0 outside on the first chunk, 1 on the second, a linear ramp inside the overlap
    np.testing.assert_allclose(out["transl"][:6, 0], 0)
    np.testing.assert_allclose(out["transl"][10:, 0], 1)
    np.testing.assert_allclose(out["transl"][6:10, 0], [0.2, 0.4, 0.6, 0.8], atol=1e-9)


@pytest.mark.parametrize("literal", [False, True])
def test_smoothness_is_per_second_so_any_frame_rate_smooths_alike(literal):
    """The same steady motion (10 cm/s, 30 deg/s over 1 s) at 15 and at 30 fps: L_ts and L_os per
    second are equal; read per frame pair (the literal form) they halve as the frame rate doubles."""
    from engine.fit.stages import FitOptions, _Chunk
    from engine.hand_model import load_hand_model

    model = load_hand_model("right")
    options = FitOptions.literal() if literal else FitOptions()
    terms, acc = {}, {}
    for fps in (15.0, 30.0):
        t = torch.arange(int(fps) + 1, dtype=torch.float32) / fps
        tau = torch.stack([0.1 * t, torch.zeros_like(t), 0.5 + 0 * t], -1)
        phi = torch.stack([torch.zeros_like(t), torch.zeros_like(t), np.radians(30) * t], -1)
        T = len(t)
        init = {"global_orient": phi.numpy(), "transl": tau.numpy(), "hand_pose": np.zeros((T, 45)), "betas": np.zeros(10)}
        chunk = _Chunk(model, init, np.zeros((T, 21, 2)), np.zeros((T, 21)), np.eye(3), slice(0, T), "cpu",
                       options, fps)
        got = chunk.data_terms(phi, torch.zeros(T, 45), torch.zeros(10), tau)
        terms[fps] = (float(got["ts"]), float(got["os"]))
        # joints accelerating steadily (1 m/s^2 sideways at 0.5 m): the same L_ja per second at any rate
        joints = torch.zeros(T, 21, 3)
        joints[..., 2] = 0.5
        joints[..., 0] = 0.5 * t[:, None] ** 2
        acc[fps] = float(L.joint_accel(joints, torch.eye(3)) * chunk.smooth_scale ** 3)
    ratio_ts, ratio_os = terms[30.0][0] / terms[15.0][0], terms[30.0][1] / terms[15.0][1]
    expected = 0.5 if literal else 1.0
    assert ratio_ts == pytest.approx(expected, rel=1e-3) and ratio_os == pytest.approx(expected, rel=1e-3)
    # per frame triple the sum falls with the cube of the rate (T - 2 triples of (a / fps^2)^2 each);
    # per second it does not, but for the one triple fewer than frame pairs at each end
    per_triple = (29 / 14) * (15 / 30) ** 4
    assert acc[30.0] / acc[15.0] == pytest.approx(per_triple * (1 if literal else 8), rel=1e-3)
    if not literal:  # 10 cm/s for 1 s in cm at 30 fps: 30 pairs of (10/30 cm)^2, times 30/30
        assert terms[30.0][0] == pytest.approx(30 * (10 / 30) ** 2, rel=1e-3)


def test_no_worse_is_zero_within_the_margin_and_counts_confident_joints_only():
    K = torch.tensor([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    points = torch.tensor([[[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]]])  # project to (50, 50) and (60, 50)
    target = torch.tensor([[[50.0, 50.0], [50.0, 50.0]]])  # joint 1 is 10 px off
    unit = torch.tensor([2.0])  # 2 px per hand unit: joint 1 is 5 units off
    alpha = torch.tensor([[1.0, 1.0]])
    reference = torch.zeros(1, 2)
    assert float(L.no_worse(points, K, target, alpha, reference, unit, 1.0, 0.5)) == pytest.approx(16.0)  # (5-1)^2
    assert float(L.no_worse(points, K, target, alpha, reference + 4.5, unit, 1.0, 0.5)) == 0.0  # within the margin
    assert float(L.no_worse(points, K, target, alpha * 0.4, reference, unit, 1.0, 0.5)) == 0.0  # not confident
