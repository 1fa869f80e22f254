"""Baselines in the same code path as the fit, for comparison (HMP_METHOD.md section 5's rows).

Each takes the per-frame estimate (``engine.fit.init.per_frame_estimate``'s dict) and returns a
dict with ``global_orient (T,3)``, ``hand_pose (T,45)``, ``betas``, ``transl (T,3)``:

- ``per_frame``: the estimate of each frame with keypoints of its own; frames without are held
  from the nearest such frame (what a per-frame tracker shows);
- ``slerp``: frames without keypoints filled by SLERP between their neighbours (rotations) and
  linear interpolation (translation), over gaps of any length inside the clip;
- ``one_euro``: ``slerp``, then the One Euro filter (Casiez et al., CHI 2012) on every rotation (as
  a sign-continuous unit quaternion, renormalised) and on translation. Parameters: min_cutoff
  1.5 Hz, beta 0.5 (per unit of quaternion / metre per second), derivative cutoff 1 Hz: a common
  setting for hand tracking at 30 fps.
"""

import numpy as np
import roma
import torch

from engine.fit.init import _hold_nearest, _lerp_fill, _slerp_fill


def _pack(est):
    T = len(est["global_orient"])
    return np.concatenate([est["global_orient"][:, None], est["hand_pose"].reshape(T, 15, 3)], axis=1)


def _unpack(rot, transl, est):
    T = rot.shape[0]
    return {"global_orient": rot[:, 0].copy(), "hand_pose": rot[:, 1:].reshape(T, 45).copy(),
            "betas": np.asarray(est["betas"]).copy(), "transl": transl.copy()}


def per_frame(est):
    known = np.asarray(est["detected"], bool)
    return _unpack(_hold_nearest(_pack(est), known), _hold_nearest(est["transl"], known), est)


def slerp(est):
    known = np.asarray(est["detected"], bool)
    rot, filled = _slerp_fill(_pack(est), known, max_gap=len(known))
    transl = _lerp_fill(est["transl"], known, filled)
    covered = known | filled
    return _unpack(_hold_nearest(rot, covered), _hold_nearest(transl, covered), est)


def one_euro_filter(x, fps, min_cutoff=1.5, beta=0.5, d_cutoff=1.0):
    """One Euro filter along axis 0 of x (T, ...), every channel independently."""
    x = np.asarray(x, dtype=np.float64)
    te = 1.0 / fps

    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    out = np.empty_like(x)
    out[0] = x[0]
    dx_prev = np.zeros_like(x[0])
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) / te
        a_d = alpha(d_cutoff)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        a = alpha(min_cutoff + beta * np.abs(dx_hat))
        out[t] = a * x[t] + (1 - a) * out[t - 1]
        dx_prev = dx_hat
    return out


def one_euro_rotations(rotvecs, fps, min_cutoff=1.5, beta=0.5, d_cutoff=1.0):
    """The One Euro filter on rotations (T,...,3) axis-angle, as sign-continuous unit quaternions
    renormalised after filtering."""
    q = roma.rotvec_to_unitquat(torch.as_tensor(np.asarray(rotvecs, dtype=np.float64))).numpy()  # (T,...,4)
    for t in range(1, len(q)):  # sign continuity so the filter never averages q and -q
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    qf = one_euro_filter(q, fps, min_cutoff, beta, d_cutoff)
    qf /= np.linalg.norm(qf, axis=-1, keepdims=True)
    return roma.unitquat_to_rotvec(torch.as_tensor(qf)).numpy()


def one_euro_rotations_zero_phase(rotvecs, fps, min_cutoff=1.5, beta=0.5, d_cutoff=1.0):
    """``one_euro_rotations`` run forwards and backwards in time, the two passes averaged (quaternion
    midpoint): for a whole clip at once, the causal filter's lag cancels (as forward-backward linear
    filtering does)."""
    rotvecs = np.asarray(rotvecs, dtype=np.float64)
    fwd = one_euro_rotations(rotvecs, fps, min_cutoff, beta, d_cutoff)
    bwd = one_euro_rotations(rotvecs[::-1].copy(), fps, min_cutoff, beta, d_cutoff)[::-1].copy()
    qf = roma.rotvec_to_unitquat(torch.as_tensor(fwd))
    qb = roma.rotvec_to_unitquat(torch.as_tensor(bwd))
    qb = torch.where((qf * qb).sum(-1, keepdim=True) < 0, -qb, qb)
    q = qf + qb
    return roma.unitquat_to_rotvec(q / q.norm(dim=-1, keepdim=True)).numpy()


def one_euro(est, fps, min_cutoff=1.5, beta=0.5, d_cutoff=1.0):
    base = slerp(est)
    T = len(base["transl"])
    rot = np.concatenate([base["global_orient"][:, None], base["hand_pose"].reshape(T, 15, 3)], axis=1)
    rot_f = one_euro_rotations(rot, fps, min_cutoff, beta, d_cutoff)
    transl = one_euro_filter(base["transl"], fps, min_cutoff, beta, d_cutoff)
    return _unpack(rot_f, transl, est)


BASELINES = {"per-frame": lambda est, fps: per_frame(est), "+ SLERP": lambda est, fps: slerp(est),
             "+ One Euro": one_euro}
