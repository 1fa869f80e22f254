"""Metrics on hand-made cases whose answers are known exactly."""

import numpy as np
import pytest
import roma
import torch

from engine.evaluation.metrics import METRICS, all_metrics, cam_mpjpe, error_2d, pa_mpjpe, ra_acc, ra_mpjpe, wrist_acc, wrist_error


def skeleton(T=5, J=6, seed=0):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.normal(0, 0.05, (1, J, 3)), T, axis=0)


def test_pa_mpjpe_ignores_similarity_transforms():
    gt = skeleton() + np.random.default_rng(1).normal(0, 0.01, (5, 6, 3))
    R = roma.random_rotmat(5, dtype=torch.float64).numpy()
    pred = 1.7 * np.einsum("tij,tkj->tki", R, gt) + np.array([0.3, -0.2, 1.0])
    assert pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)
    # ...but not the others
    assert ra_mpjpe(pred, gt) > 10


def test_pa_mpjpe_known_value():
    # a square and a rectangle: Procrustes can only scale uniformly
    gt = np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]], float) * 0.01
    pred = np.array([[[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]]], float) * 0.01
    # best similarity of the 2x1 rectangle onto the 1x1 square: centred x = +-1 -> s*1, y = +-0.5 -> s*0.5,
    # s = (sum x_gt x_p + y_gt y_p) / sum (x_p^2 + y_p^2) = (4*0.5 + 4*0.25) / (4*1 + 4*0.25) = 0.6
    s = 0.6
    per_point = np.hypot(0.5 - s * 1.0, 0.5 - s * 0.5) * 10  # mm, same for the 4 corners
    assert pa_mpjpe(pred, gt) == pytest.approx(per_point, rel=1e-6)


def test_ra_mpjpe_known_value():
    gt = skeleton(T=3, J=4)
    pred = gt + np.array([0.1, 0.2, 0.3])  # a global shift is removed by root alignment
    assert ra_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    pred[:, 2] += np.array([0.01, 0.0, 0.0])  # one of 4 joints 10 mm off in every frame
    assert ra_mpjpe(pred, gt) == pytest.approx(2.5, rel=1e-9)
    valid = np.array([True, False, True])
    assert ra_mpjpe(pred, gt, valid) == pytest.approx(2.5, rel=1e-9)


def test_ra_acc_known_value():
    gt = skeleton(T=5, J=2)
    pred = gt.copy()
    pred[2, 1] += np.array([0.0, 0.001, 0.0])  # a 1 mm blip on joint 1 at frame 2
    # second differences at frames 1, 2, 3 of that joint: 1, -2, 1 mm; joint 0 (root) 0; mean over
    # the 3 x 2 (frame, joint) pairs: (1 + 2 + 1) / 6
    assert ra_acc(pred, gt) == pytest.approx(4 / 6, rel=1e-9)
    # constant velocity motion of the whole hand has no acceleration error
    moving = gt + np.arange(5)[:, None, None] * np.array([0.01, 0, 0])
    assert ra_acc(moving, gt) == pytest.approx(0.0, abs=1e-9)
    # valid triples only: frames 1..3 are all needed around the blip
    assert np.isnan(ra_acc(pred, gt, valid=np.array([True, False, True, False, True])))


def test_cam_mpjpe_and_wrist_error_known_values():
    gt = skeleton(T=2, J=4) + np.array([0.0, 0.0, 0.5])
    pred = gt + np.array([0.003, 0.004, 0.0])  # every joint 5 mm off (3-4-5), nothing aligns it away
    assert cam_mpjpe(pred, gt) == pytest.approx(5.0, rel=1e-9)
    assert wrist_error(pred, gt) == pytest.approx(5.0, rel=1e-9)
    assert ra_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    pred = gt.copy()
    pred[0, 0] += np.array([0.0, 0.0, 0.012])  # the wrist 12 mm deeper in frame 0 only
    pred[1, 3] += np.array([0.0, 0.008, 0.0])  # joint 3 8 mm off in frame 1 only
    assert cam_mpjpe(pred, gt) == pytest.approx((12 + 8) / 8, rel=1e-9)  # 2 frames x 4 joints
    assert wrist_error(pred, gt) == pytest.approx(12 / 2, rel=1e-9)
    assert wrist_error(pred, gt, root=3) == pytest.approx(8 / 2, rel=1e-9)
    assert wrist_error(pred, gt, valid=np.array([False, True])) == pytest.approx(0.0, abs=1e-12)


def test_wrist_acc_known_value():
    T = 6
    t = np.arange(T, dtype=float)
    gt = skeleton(T=T, J=3) + np.array([0.0, 0.0, 0.5])
    # truth accelerates uniformly along x: x = 0.5 * a t^2, a = 2 mm/frame^2; the prediction moves at
    # constant speed: every second difference differs from the truth's by exactly 2 mm
    gt[:, :, 0] += 0.5 * 0.002 * t[:, None] ** 2
    pred = gt.copy()
    pred[:, :, 0] = gt[0, :, 0] + 0.004 * t[:, None]
    assert wrist_acc(pred, gt) == pytest.approx(2.0, rel=1e-9)
    # a 3 mm blip of the wrist at frame 3 on top of the truth: second differences 3, -6, 3 at frames
    # 2, 3, 4 over the 4 triples (frames 1..4 as centres): (3 + 6 + 3) / 4
    blip = gt.copy()
    blip[3, 0, 1] += 0.003
    assert wrist_acc(blip, gt) == pytest.approx(12 / 4, rel=1e-9)
    # a blip on another joint is not the wrist's; root-aligned, the same blip is every other joint's
    other = gt.copy()
    other[3, 2, 1] += 0.003
    assert wrist_acc(other, gt) == pytest.approx(0.0, abs=1e-12)
    assert ra_acc(blip, gt) == pytest.approx(2 * 12 / (4 * 3), rel=1e-9)
    valid = np.array([True, True, True, True, False, True])  # triples centred on frames 1 (0) and 2 (3)
    assert wrist_acc(blip, gt, valid) == pytest.approx(3 / 2, rel=1e-9)


def test_error_2d_known_value():
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    gt = np.array([[[0.0, 0.0, 0.5], [0.1, -0.05, 0.5]]])  # -> (320, 240) and (420, 190) px
    pred = gt.copy()
    pred[0, 1, 0] += 0.006  # 6 mm at 0.5 m: 500 * 0.006 / 0.5 = 6 px
    assert error_2d(pred, gt, K) == pytest.approx(6 / 2, rel=1e-9)
    # a point slid along its own ray projects to the same pixel: no 2D error, but a camera-space one
    along = gt * 1.2
    assert error_2d(along, gt, K) == pytest.approx(0.0, abs=1e-9)
    assert cam_mpjpe(along, gt) > 90
    # a prediction made with a guessed focal length is projected with that K, the truth with its own:
    # the truth seen with f = 400 at z = 0.5, the same pixels at 20 % less depth with f = 500
    K_true = K.copy()
    K_true[0, 0] = K_true[1, 1] = 400.0
    guessed = gt.copy()
    guessed[..., 2] *= 1.25
    assert error_2d(guessed, gt, K, K_gt=K_true) == pytest.approx(0.0, abs=1e-9)
    assert error_2d(gt, gt, K, K_gt=K_true) == pytest.approx(np.hypot(100, -50) * 0.2 / 2, rel=1e-9)
    with pytest.raises(ValueError):
        error_2d(gt * np.array([1, 1, -1]), gt, K)


def test_all_metrics_and_shape_checks():
    gt = skeleton()
    m = all_metrics(gt, gt)
    assert set(m) == {"PA-MPJPE", "RA-MPJPE", "RA-ACC"} and all(v == pytest.approx(0, abs=1e-6) for v in m.values())
    with pytest.raises(ValueError):
        pa_mpjpe(gt[:, :3], gt)
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    full = all_metrics(gt + np.array([0, 0, 0.5]), gt + np.array([0, 0, 0.5]), K=K)
    assert tuple(full) == METRICS and all(v == pytest.approx(0, abs=1e-6) for v in full.values())
