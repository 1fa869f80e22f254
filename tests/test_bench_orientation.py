"""benchmarks/bench_orientation.py's split of an orientation error into the turn about the camera's ray
and the tilt off it (docs/history.md, issue 21's rendered targets): checked on rotations whose
split is known, and on joints turned by them."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_orientation", ROOT / "benchmarks" / "bench_orientation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rot(axis, degrees):
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return roma.rotvec_to_rotmat(torch.as_tensor(axis * np.radians(degrees))).numpy()


def test_a_turn_about_the_ray_is_all_turn_and_a_tilt_all_tilt(bench):
    ray = np.array([[0.3, -0.2, 1.0]]) / np.linalg.norm([0.3, -0.2, 1.0])
    perpendicular = np.cross(ray[0], [1.0, 0.0, 0.0])
    turn, tilt = bench.turn_and_tilt(_rot(ray[0], 25)[None], ray)
    assert turn[0] == pytest.approx(25, abs=1e-6) and tilt[0] == pytest.approx(0, abs=1e-4)
    turn, tilt = bench.turn_and_tilt(_rot(perpendicular, 18)[None], ray)
    assert turn[0] == pytest.approx(0, abs=1e-4) and tilt[0] == pytest.approx(18, abs=1e-6)


def test_the_split_recomposes_the_rotation(bench):
    """A tilt after a turn: each part comes back whatever the order of the angles' sizes."""
    ray = np.array([[0.0, 0.0, 1.0]])
    for turn_deg, tilt_deg in ((10, 30), (40, 5), (0.5, 0.5)):
        R = _rot([1.0, 1.0, 0.0], tilt_deg) @ _rot(ray[0], turn_deg)  # swing after twist
        turn, tilt = bench.turn_and_tilt(R[None], ray)
        assert (turn[0], tilt[0]) == (pytest.approx(turn_deg, abs=1e-5), pytest.approx(tilt_deg, abs=1e-5))


def test_best_rotations_finds_the_turn_of_root_aligned_joints(bench):
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(5, 21, 3)) * 0.05 + np.array([0.0, 0.0, 0.5])
    R = np.stack([_rot(rng.normal(size=3), a) for a in (0, 5, 20, 45, 90)])
    # the prediction: each frame's hand turned by R^T about its wrist, and moved (root alignment removes it)
    pred = np.einsum("tji,tkj->tki", R, gt - gt[:, :1]) + gt[:, :1] + 0.1
    found = bench.best_rotations(pred, gt)
    assert np.allclose(found, R, atol=1e-9)
    assert np.allclose(bench.angle(found), [0, 5, 20, 45, 90], atol=1e-5)
