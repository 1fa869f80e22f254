"""Joint-error metrics of docs/method.md section 7 (lower is better; millimetres).

All take ``pred`` and ``gt`` of shape (T, J, 3) in metres (any consistent joint order with the root,
the wrist, at index ``root``) and return millimetres:

- ``pa_mpjpe``: mean joint error after a per-frame Procrustes alignment (scale, rotation,
  translation) of the prediction onto the ground truth;
- ``ra_mpjpe``: mean joint error after moving the predicted root onto the true root;
- ``ra_acc``: root-aligned acceleration error, mean over frames and joints of
  ||a_pred - a_gt|| with a_t = x_{t+1} - 2 x_t + x_{t-1} (mm / frame^2), after root alignment;

and, without any alignment (they see where the hand is, not only its shape):

- ``cam_mpjpe``: mean joint error in the camera frame;
- ``wrist_error``: mean error of the root joint (the wrist) in the camera frame;
- ``wrist_acc``: mean over frames of ||a_pred - a_gt|| of the wrist's camera-frame trajectory
  (mm / frame^2): how much jerkier (or smoother) than the truth the hand moves as a whole;
- ``error_2d``: mean pixel distance between the prediction projected with its camera ``K`` and
  the truth projected with the true camera ``K_gt`` (the same ``K`` unless given): a prediction
  made with guessed intrinsics is judged in the image it was fitted to.

``valid`` (T,) bool restricts to frames where both exist (for the accelerations: triples of
consecutive valid frames).
"""

import numpy as np
from numpy.typing import ArrayLike

from engine.util.camera import project


def _check(pred: ArrayLike, gt: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (T,J,3), got {pred.shape} and {gt.shape}")
    return pred, gt


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per frame, s R pred + t closest to gt (Umeyama). pred, gt (T,J,3) -> aligned (T,J,3)."""
    mp, mg = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    X, Y = pred - mp, gt - mg
    cov = np.einsum("tji,tjk->tik", Y, X)  # (T,3,3) = sum_j y x^T
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones_like(S)
    D[:, -1] = d
    R = U @ (D[..., None] * Vt)
    var = (X ** 2).sum((1, 2))
    s = (S * D).sum(1) / np.maximum(var, 1e-12)
    return s[:, None, None] * np.einsum("tik,tjk->tji", R, X) + mg


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None) -> float:
    """PA-MPJPE (mm) of pred, gt (T,J,3) m over the frames ``valid`` (T,) bool (all when None)."""
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    return float(np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean() * 1000)


def root_align(x: np.ndarray, root: int = 0) -> np.ndarray:
    """(T,J,3) -> (T,J,3) with joint ``root`` moved to the origin in every frame."""
    return x - x[:, root:root + 1]


def ra_mpjpe(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None, root: int = 0) -> float:
    """RA-MPJPE (mm) of pred, gt (T,J,3) m over the frames ``valid`` (T,) bool (all when None)."""
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    return float(np.linalg.norm(root_align(pred, root) - root_align(gt, root), axis=-1).mean() * 1000)


def ra_acc(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None, root: int = 0) -> float:
    """RA-ACC (mm/frame^2) of pred, gt (T,J,3) m over the triples of consecutive ``valid`` (T,) frames;
    NaN when there is none."""
    pred, gt = _check(pred, gt)
    p, g = root_align(pred, root), root_align(gt, root)
    acc_p = p[2:] - 2 * p[1:-1] + p[:-2]
    acc_g = g[2:] - 2 * g[1:-1] + g[:-2]
    err = np.linalg.norm(acc_p - acc_g, axis=-1)  # (T-2,J)
    if valid is not None:
        v = np.asarray(valid, bool)
        err = err[v[2:] & v[1:-1] & v[:-2]]
    if err.size == 0:
        return float("nan")
    return float(err.mean() * 1000)


def _acc_error(p: np.ndarray, g: np.ndarray, valid: ArrayLike | None) -> np.ndarray:
    """||second difference of p - that of g||, (T,J,3) each -> (n,J) over valid triples."""
    err = np.linalg.norm((p[2:] - 2 * p[1:-1] + p[:-2]) - (g[2:] - 2 * g[1:-1] + g[:-2]), axis=-1)
    if valid is not None:
        v = np.asarray(valid, bool)
        err = err[v[2:] & v[1:-1] & v[:-2]]
    return err


def cam_mpjpe(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Camera-space MPJPE (mm) of pred, gt (T,J,3) m, no alignment, over the frames ``valid`` (T,)."""
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    return float(np.linalg.norm(pred - gt, axis=-1).mean() * 1000)


def wrist_error(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None, root: int = 0) -> float:
    """Mean camera-space error (mm) of joint ``root`` of pred, gt (T,J,3) m over the frames ``valid``."""
    pred, gt = _check(pred, gt)
    return cam_mpjpe(pred[:, root:root + 1], gt[:, root:root + 1], valid)


def wrist_acc(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None, root: int = 0) -> float:
    """Acceleration error (mm/frame^2) of joint ``root``'s camera-space path, pred, gt (T,J,3) m, over
    the triples of consecutive ``valid`` frames; NaN when there is none."""
    pred, gt = _check(pred, gt)
    err = _acc_error(pred[:, root:root + 1], gt[:, root:root + 1], valid)
    return float(err.mean() * 1000) if err.size else float("nan")


def _project(points: np.ndarray, K: ArrayLike) -> np.ndarray:
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3,3), got {K.shape}")
    z = points[..., 2:3]
    if (z <= 0).any():
        raise ValueError("points at or behind the camera (z <= 0) have no projection")
    return project(points, K)


def error_2d(pred: ArrayLike, gt: ArrayLike, K: ArrayLike, valid: ArrayLike | None = None,
             K_gt: ArrayLike | None = None) -> float:
    """Mean pixel distance: pred (T,J,3) m projected with K (3,3), gt (T,J,3) m with K_gt (default K)."""
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    uv_p, uv_g = _project(pred, K), _project(gt, K if K_gt is None else K_gt)
    return float(np.linalg.norm(uv_p - uv_g, axis=-1).mean())


METRICS = ("PA-MPJPE", "RA-MPJPE", "RA-ACC", "camera MPJPE", "wrist", "wrist acc.", "2D (px)")


def all_metrics(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None, root: int = 0,
                K: ArrayLike | None = None, K_gt: ArrayLike | None = None) -> dict[str, float]:
    """pred, gt (T,J,3) m -> {metric: value}: the three root-aligned metrics; with ``K`` (3,3) also the
    camera-space ones and the 2D error (keys as in ``METRICS``; mm, mm/frame^2, px)."""
    out = {"PA-MPJPE": pa_mpjpe(pred, gt, valid), "RA-MPJPE": ra_mpjpe(pred, gt, valid, root),
           "RA-ACC": ra_acc(pred, gt, valid, root)}
    if K is not None:
        out.update({"camera MPJPE": cam_mpjpe(pred, gt, valid), "wrist": wrist_error(pred, gt, valid, root),
                    "wrist acc.": wrist_acc(pred, gt, valid, root),
                    "2D (px)": error_2d(pred, gt, K, valid, K_gt)})
    return out
