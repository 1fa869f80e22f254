"""Rotation and geometry toolkit of the add-on (numpy only: roma / torch are not in Blender's Python).

Conventions: axis-angle vectors (..., 3) (angle = norm, radians); rotation matrices (..., 3, 3)
acting on column vectors; quaternions (..., 4) in Blender's order (w, x, y, z), unit norm. Every
function takes any leading batch shape. tests/test_addon_rotations.py checks them against roma.
"""

import numpy as np

_SMALL = 1e-8  # angles (radians) below which series expansions replace 0/0


def axis_angle_to_matrix(aa) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]  # (..., 1, 1)
    k = aa / np.maximum(theta[..., 0], 1e-12)  # unit axis (0 for a zero rotation)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)  # the cross-product matrix [k]x
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def axis_angle_to_quat(aa) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z) with w >= 0 for angles <= pi."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)  # (..., 1)
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0 (series), avoids 0/0
    scale = np.where(angle > _SMALL, np.sin(half) / np.maximum(angle, 1e-12), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def matrix_to_quat(R) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Shepperd's method: the largest of 4w^2, 4x^2, 4y^2, 4z^2 (from the diagonal) is taken first and
    the others follow from the off-diagonal sums and differences, so it stays exact near 180 degrees
    (where w -> 0 and the differences alone lose the axis' signs).
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    d21, d02, d10 = R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]
    s10, s02, s21 = R[..., 1, 0] + R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 2, 1] + R[..., 1, 2]
    # 4 * (w, x, y, z) scaled by the chosen component, one candidate per largest component
    candidates = np.stack([
        np.stack([1 + m00 + m11 + m22, d21, d02, d10], -1),   # w largest
        np.stack([d21, 1 + m00 - m11 - m22, s10, s02], -1),   # x largest
        np.stack([d02, s10, 1 - m00 + m11 - m22, s21], -1),   # y largest
        np.stack([d10, s02, s21, 1 - m00 - m11 + m22], -1),   # z largest
    ], -2)  # (..., 4 candidates, 4)
    diag = np.stack([m00 + m11 + m22, m00 - m11 - m22, -m00 + m11 - m22, -m00 - m11 + m22], -1)  # 4q_k^2 - 1
    best = np.argmax(diag, axis=-1)  # (...,)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_axis_angle(q) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3) axis-angle, angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = np.where(q[..., :1] < 0, -q, q)  # q and -q are one rotation: take the short way
    n = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(n, q[..., :1])
    return q[..., 1:] * np.where(n > 1e-12, angle / np.maximum(n, 1e-12), 2.0)  # angle/n -> 2 as n -> 0


def matrix_to_axis_angle(R) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, angle in [0, pi]."""
    return quat_to_axis_angle(matrix_to_quat(R))


def inverse(R) -> np.ndarray:
    """(..., 3, 3) rotations -> their inverses (the transposes)."""
    return np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2)


def relative(A, B) -> np.ndarray:
    """A^T B: the rotation that follows A to make B (B = A relative(A, B)), i.e. B in A's frame.
    (..., 3, 3) each, broadcast."""
    return inverse(A) @ np.asarray(B, dtype=np.float64)


def conjugate(M, R) -> np.ndarray:
    """M R M^T: rotations R (..., 3, 3) given in one frame, expressed in the frame that M (..., 3, 3)
    maps onto (a change of basis)."""
    M = np.asarray(M, dtype=np.float64)
    return M @ np.asarray(R, dtype=np.float64) @ inverse(M)


def rotate(R, v) -> np.ndarray:
    """R v: vectors v (..., 3) turned by rotations R (..., 3, 3), broadcast."""
    return np.einsum("...ab,...b->...a", np.asarray(R, dtype=np.float64), np.asarray(v, dtype=np.float64))


def without_scale(M) -> np.ndarray:
    """(..., 3, 3) rotations whose axes (columns) were scaled -> the rotations: each column made unit."""
    M = np.asarray(M, dtype=np.float64)
    return M / np.linalg.norm(M, axis=-2, keepdims=True)


def make_continuous(quats) -> np.ndarray:
    """Flip signs along time so consecutive quaternions stay in one hemisphere. (T, 4) -> (T, 4) copy
    (the same rotations; interpolating between keys then takes the short way)."""
    quats = np.array(quats, dtype=np.float64)
    if len(quats) < 2:
        return quats
    dots = np.einsum("ti,ti->t", quats[1:], quats[:-1])  # (T-1,)
    signs = np.cumprod(np.where(dots < 0.0, -1.0, 1.0))
    quats[1:] *= signs[:, None]
    return quats


def shortest_arc(a, b) -> np.ndarray:
    """(..., 3, 3) rotations turning directions a (..., 3) onto directions b (..., 3) about a x b.
    Opposite directions: a half turn about an axis perpendicular to a."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = np.sum(a * b, -1, keepdims=True)
    angle = np.arctan2(sin, cos)
    # a x b vanishes for opposite directions: use a x (the coordinate axis least along a)
    helper = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    perpendicular = np.cross(a, helper)
    perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
    opposite = (sin < 1e-9) & (cos < 0)
    unit = np.where(opposite, perpendicular, axis / np.maximum(sin, 1e-12))
    return axis_angle_to_matrix(unit * np.where(opposite, np.pi, angle))


def kabsch(src, dst) -> np.ndarray:
    """(3, 3) rotation R minimising sum ||R (src_i - mean src) - (dst_i - mean dst)||^2 over point
    sets src, dst (N, 3) (never a reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    H = (src - src.mean(0)).T @ (dst - dst.mean(0))
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    return Vt.T @ np.diag([1, 1, d]) @ U.T
