"""Metrics on hand-made cases whose answers are known exactly."""

import numpy as np
import pytest
import roma
import torch

from engine.metrics import all_metrics, pa_mpjpe, ra_acc, ra_mpjpe


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


def test_all_metrics_and_shape_checks():
    gt = skeleton()
    m = all_metrics(gt, gt)
    assert set(m) == {"PA-MPJPE", "RA-MPJPE", "RA-ACC"} and all(v == pytest.approx(0, abs=1e-6) for v in m.values())
    with pytest.raises(ValueError):
        pa_mpjpe(gt[:, :3], gt)
