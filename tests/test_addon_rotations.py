"""hmp_addon.rotations (numpy, runs inside Blender) against roma (torch) and hand-computed answers,
including angles near 0 and near 180 degrees."""

import math

import numpy as np
import pytest
import roma
import torch

from hmp_addon import rotations as rot

S = math.sqrt(0.5)


def _roma(fn, x):
    return fn(torch.as_tensor(np.asarray(x, np.float64))).numpy()


def _xyzw_to_wxyz(q):
    return np.concatenate([q[..., 3:], q[..., :3]], -1)


def _same_quat(a, b, tol):
    """Quaternions equal up to sign (q and -q are one rotation)."""
    return np.all(np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)) < tol)


def _test_rotvecs():
    """(N, 3): random, tiny (down to 1e-12 rad), exactly zero, and near / at a half turn about axes
    with every sign pattern (where matrix -> quaternion by the trace alone loses the axis' signs)."""
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    signs = np.array([[1, 1, 0], [1, -1, 0], [0, 1, -1], [-1, 0, 1], [1, -1, 1], [1, 1, -1]], np.float64)
    signs /= np.linalg.norm(signs, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi, 40)
    return np.concatenate([
        axes * angles[:, None],
        axes[:6] * np.array([1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.1])[:, None],
        np.zeros((1, 3)),
        signs * np.pi,
        signs * (np.pi - 1e-7),
        signs * (np.pi - 1e-3),
        axes[:6] * (np.pi - 1e-9),
    ])


AA = _test_rotvecs()


def test_known_answers():
    quarter_z = rot.axis_angle_to_matrix([0, 0, np.pi / 2])
    assert np.allclose(quarter_z, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)
    assert np.allclose(rot.axis_angle_to_quat([0, 0, np.pi / 2]), [S, 0, 0, S])
    assert np.allclose(rot.axis_angle_to_quat([np.pi, 0, 0]), [0, 1, 0, 0], atol=1e-15)
    half_x = np.diag([1.0, -1.0, -1.0])  # a half turn about x: the axis only up to sign
    assert _same_quat(rot.matrix_to_quat(half_x), np.array([0, 1.0, 0, 0]), 1e-15)
    # a half turn about (1, -1, 0)/sqrt2: 2 a a^T - I; the trace and the antisymmetric part are no help
    a = np.array([S, -S, 0])
    assert _same_quat(rot.matrix_to_quat(2 * np.outer(a, a) - np.eye(3)), np.array([0, S, -S, 0]), 1e-12)
    assert np.allclose(rot.quat_to_axis_angle([S, S, 0, 0]), [np.pi / 2, 0, 0])
    assert np.allclose(rot.quat_to_axis_angle([-S, -S, 0, 0]), [np.pi / 2, 0, 0])  # -q: the same rotation
    assert np.array_equal(rot.axis_angle_to_matrix(np.zeros(3)), np.eye(3))
    assert np.array_equal(rot.axis_angle_to_quat(np.zeros(3)), [1, 0, 0, 0])
    assert np.array_equal(rot.quat_to_axis_angle([1.0, 0, 0, 0]), np.zeros(3))


def test_axis_angle_to_matrix_matches_roma():
    want = _roma(roma.rotvec_to_rotmat, AA)
    assert np.abs(rot.axis_angle_to_matrix(AA) - want).max() < 1e-12


def test_axis_angle_to_quat_matches_roma():
    want = _xyzw_to_wxyz(_roma(roma.rotvec_to_unitquat, AA))
    got = rot.axis_angle_to_quat(AA)
    assert np.abs(np.linalg.norm(got, axis=-1) - 1).max() < 1e-12
    assert _same_quat(got, want, 1e-12)


def test_matrix_to_quat_matches_roma_near_0_and_180_degrees():
    R = _roma(roma.rotvec_to_rotmat, AA)
    want = _xyzw_to_wxyz(_roma(roma.rotmat_to_unitquat, R))
    got = rot.matrix_to_quat(R)
    assert _same_quat(got, want, 1e-7)  # half turns: the matrix only fixes the axis to ~1e-8
    assert np.all(got[..., 0] >= 0)
    # and back: the quaternion's matrix is the matrix
    back = _roma(roma.unitquat_to_rotmat, np.concatenate([got[..., 1:], got[..., :1]], -1))
    assert np.abs(back - R).max() < 1e-12


def test_matrix_and_quat_to_axis_angle_match_roma():
    R = _roma(roma.rotvec_to_rotmat, AA)
    got = rot.matrix_to_axis_angle(R)
    assert np.abs(_roma(roma.rotvec_to_rotmat, got) - R).max() < 1e-12  # the same rotation
    small = np.linalg.norm(AA, axis=-1) < 3.0  # away from the half turn the vector itself is unique
    assert np.abs(got[small] - _roma(roma.rotmat_to_rotvec, R)[small]).max() < 1e-9
    assert np.all(np.linalg.norm(got, axis=-1) <= np.pi + 1e-12)
    q = rot.axis_angle_to_quat(AA)
    assert np.abs(rot.quat_to_axis_angle(q)[small] - AA[small]).max() < 1e-12


def test_batches_keep_their_shape():
    aa = AA[:24].reshape(2, 3, 4, 3)
    assert rot.axis_angle_to_matrix(aa).shape == (2, 3, 4, 3, 3)
    assert rot.axis_angle_to_quat(aa).shape == (2, 3, 4, 4)
    assert rot.matrix_to_quat(rot.axis_angle_to_matrix(aa)).shape == (2, 3, 4, 4)
    assert rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa)).shape == (2, 3, 4, 3)


def test_make_continuous_flips_to_one_hemisphere():
    q = np.array([[1.0, 0, 0, 0], [-S, -S, 0, 0], [0, -1.0, 0, 0], [S, S, 0, 0]])
    got = rot.make_continuous(q)
    assert np.allclose(got, [[1, 0, 0, 0], [S, S, 0, 0], [0, 1, 0, 0], [S, S, 0, 0]])
    assert np.array_equal(q[1], [-S, -S, 0, 0])  # the input is left alone
    assert np.array_equal(rot.make_continuous(q[:1]), q[:1])


@pytest.mark.parametrize("a, b, want", [
    ([1, 0, 0], [0, 1, 0], [[0, -1, 0], [1, 0, 0], [0, 0, 1]]),      # a quarter turn about z
    ([0, 0, 2], [0, 0, 5], np.eye(3)),                                # same direction: no turn
])
def test_shortest_arc_known_answers(a, b, want):
    assert np.allclose(rot.shortest_arc(np.array(a, float), np.array(b, float)), want, atol=1e-15)


def test_shortest_arc_turns_a_onto_b_also_opposite():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 3))
    b = rng.normal(size=(50, 3))
    b[:3] = -a[:3] * np.array([[1.0], [2.0], [0.5]])  # opposite directions
    b[3] = a[3] * 3  # the same direction
    b[4] = -a[4] + 1e-12  # opposite within rounding
    b[5] = np.array([-1.0, 0, 0])
    a[5] = np.array([1.0, 0, 0])
    R = rot.shortest_arc(a, b)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    assert np.abs(np.einsum("tab,tb->ta", R, unit(a)) - unit(b)).max() < 1e-9
    assert np.allclose(np.linalg.det(R), 1) and np.allclose(R @ np.swapaxes(R, -1, -2), np.eye(3), atol=1e-12)
    # the shortest: the turn's angle is the angle between a and b, about an axis perpendicular to both
    angle = np.linalg.norm(rot.matrix_to_axis_angle(R), axis=-1)
    between = np.arccos(np.clip(np.sum(unit(a) * unit(b), -1), -1, 1))
    assert np.abs(angle - between).max() < 1e-6


def test_kabsch_recovers_a_rotation_and_never_reflects():
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(10, 3))
    R = _roma(roma.rotvec_to_rotmat, [0.3, -2.0, 1.1])
    moved = pts @ R.T + np.array([1.0, 2, 3])
    assert np.abs(rot.kabsch(pts, moved) - R).max() < 1e-12
    mirrored = pts * np.array([-1.0, 1, 1])  # the best fit would be a reflection: still a rotation
    assert np.isclose(np.linalg.det(rot.kabsch(pts, mirrored)), 1.0)


def test_inverse_relative_conjugate_rotate_without_scale():
    rng = np.random.default_rng(3)
    A, B, M = (rot.axis_angle_to_matrix(rng.normal(size=(5, 3))) for _ in range(3))
    v = rng.normal(size=(5, 3))
    assert np.allclose(rot.inverse(A) @ A, np.eye(3))
    assert np.allclose(A @ rot.relative(A, B), B)
    assert np.allclose(rot.relative(A[0], B), A[0].T @ B)  # broadcast: one frame, a batch of rotations
    # a rotation about axis a, expressed through M, turns about M a by the same angle
    aa = rng.normal(size=(5, 3))
    assert np.allclose(rot.conjugate(M, rot.axis_angle_to_matrix(aa)), rot.axis_angle_to_matrix(rot.rotate(M, aa)))
    assert np.allclose(rot.rotate(A, v), (A @ v[..., None])[..., 0])
    assert np.allclose(rot.rotate(A, v[0]), A @ v[0])  # one vector, a batch of rotations
    scaled = A * np.array([2.0, 0.5, 3.0])  # columns scaled
    assert np.allclose(rot.without_scale(scaled), A)
