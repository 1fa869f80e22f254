"""Baselines in the same code path as the fit, for comparison (docs/method.md section 7).

Each takes the per-frame estimate (``engine.fit.per_frame.per_frame_estimate``'s dict) and returns a
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

from engine.fit.temporal import hold_nearest, lerp_fill, one_euro_filter, one_euro_rotations, slerp_fill


def _pack(est):
    T = len(est["global_orient"])
    return np.concatenate([est["global_orient"][:, None], est["hand_pose"].reshape(T, 15, 3)], axis=1)


def _unpack(rot, transl, est):
    T = rot.shape[0]
    return {"global_orient": rot[:, 0].copy(), "hand_pose": rot[:, 1:].reshape(T, 45).copy(),
            "betas": np.asarray(est["betas"]).copy(), "transl": transl.copy()}


def per_frame(est: dict) -> dict:
    known = np.asarray(est["detected"], bool)
    return _unpack(hold_nearest(_pack(est), known), hold_nearest(est["transl"], known), est)


def slerp(est: dict) -> dict:
    known = np.asarray(est["detected"], bool)
    rot, filled = slerp_fill(_pack(est), known, max_gap=len(known))
    transl = lerp_fill(est["transl"], known, filled)
    covered = known | filled
    return _unpack(hold_nearest(rot, covered), hold_nearest(transl, covered), est)


def one_euro(est: dict, fps: float, min_cutoff: float = 1.5, beta: float = 0.5, d_cutoff: float = 1.0) -> dict:
    base = slerp(est)
    T = len(base["transl"])
    rot = np.concatenate([base["global_orient"][:, None], base["hand_pose"].reshape(T, 15, 3)], axis=1)
    rot_f = one_euro_rotations(rot, fps, min_cutoff, beta, d_cutoff)
    transl = one_euro_filter(base["transl"], fps, min_cutoff, beta, d_cutoff)
    return _unpack(rot_f, transl, est)


BASELINES = {"per-frame": lambda est, fps: per_frame(est), "+ SLERP": lambda est, fps: slerp(est),
             "+ One Euro": one_euro}
