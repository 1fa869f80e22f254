"""Joint-error metrics of HMP_METHOD.md section 4 (lower is better; millimetres).

All take ``pred`` and ``gt`` of shape (T, J, 3) in metres (any consistent joint order with the root,
the wrist, at index ``root``) and return millimetres:

- ``pa_mpjpe``: mean joint error after a per-frame Procrustes alignment (scale, rotation,
  translation) of the prediction onto the ground truth;
- ``ra_mpjpe``: mean joint error after moving the predicted root onto the true root;
- ``ra_acc``: root-aligned acceleration error, mean over frames and joints of
  ||a_pred - a_gt|| with a_t = x_{t+1} - 2 x_t + x_{t-1} (mm / frame^2), after root alignment.

``valid`` (T,) bool restricts to frames where both exist (for ra_acc: triples of consecutive
valid frames).
"""

import numpy as np


def _check(pred, gt):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (T,J,3), got {pred.shape} and {gt.shape}")
    return pred, gt


def procrustes_align(pred, gt):
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


def pa_mpjpe(pred, gt, valid=None):
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    return float(np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean() * 1000)


def root_align(x, root=0):
    return x - x[:, root:root + 1]


def ra_mpjpe(pred, gt, valid=None, root=0):
    pred, gt = _check(pred, gt)
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    return float(np.linalg.norm(root_align(pred, root) - root_align(gt, root), axis=-1).mean() * 1000)


def ra_acc(pred, gt, valid=None, root=0):
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


def all_metrics(pred, gt, valid=None, root=0):
    return {"PA-MPJPE": pa_mpjpe(pred, gt, valid), "RA-MPJPE": ra_mpjpe(pred, gt, valid, root),
            "RA-ACC": ra_acc(pred, gt, valid, root)}
