"""Along time: filling gaps between known frames and the One Euro filter (numpy in, numpy out).

A leaf of ``engine.fit`` (numpy, roma, torch only): the per-frame estimate, the baselines and the
two-stage fit all read it, and it reads none of them.

Gaps (axis 0 is time, T frames; ``known`` (T,) bool marks the frames that have values):

    rotvecs, filled = slerp_fill(rotvecs (T,J,3), known, max_gap)   # SLERP inside short gaps
    values = lerp_fill(values (T,C), known, filled)                  # linear, on the same frames
    values = hold_nearest(values (T,...), known)                     # copy the nearest known frame

The One Euro filter (Casiez et al., CHI 2012), causal, every channel on its own:

    one_euro_filter(x (T,...), fps)                     # any values
    one_euro_rotations(rotvecs (T,...,3), fps)          # as sign-continuous unit quaternions
    one_euro_rotations_zero_phase(rotvecs (T,...,3), fps)  # forwards and backwards, averaged

Each takes ``times=`` (T,) seconds for frames at uneven times (the filter's own time steps, as the
original filter has them); ``uneven_times(frame_times, fps)`` says whether a clip's times need it.
"""

import numpy as np
import roma
import torch


def slerp_fill(rotvecs: np.ndarray, known: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill unknown frames of rotvecs (T,J,3) axis-angle between known frames at most max_gap apart
    (max_gap unknown frames in a row), by SLERP of every rotation.

    known (T,) bool. Returns (filled rotvecs (T,J,3), filled (T,) bool: the frames it wrote). Frames
    outside any fillable gap keep their values.
    """
    out = rotvecs.copy()
    filled = np.zeros(len(known), dtype=bool)
    idx = np.flatnonzero(known)
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a <= 1 or b - a > max_gap + 1:
            continue
        steps = torch.as_tensor((np.arange(a + 1, b) - a) / (b - a), dtype=torch.float64)
        q0 = roma.rotvec_to_unitquat(torch.as_tensor(rotvecs[a], dtype=torch.float64))
        q1 = roma.rotvec_to_unitquat(torch.as_tensor(rotvecs[b], dtype=torch.float64))
        q = roma.unitquat_slerp(q0, q1, steps)  # (S,J,4)
        out[a + 1:b] = roma.unitquat_to_rotvec(q).numpy()
        filled[a + 1:b] = True
    return out, filled


def lerp_fill(values: np.ndarray, known: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Linear interpolation of values (T,C) between the known (T,) frames, written on the frames
    marked ``filled`` (T,) bool only (``slerp_fill``'s mask, so translation and rotation fill the
    same gaps). Returns a copy (T,C)."""
    out = values.copy()
    idx = np.flatnonzero(known)
    frames = np.flatnonzero(filled)
    if len(idx) and len(frames):
        for k in range(values.shape[1]):
            out[frames, k] = np.interp(frames, idx, values[idx, k])
    return out


def hold_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Copy each unknown frame of values (T,...) from the nearest known (T,) frame (the later one on
    a tie). Returns a copy (T,...); needs at least one known frame."""
    idx = np.flatnonzero(known)
    T = len(known)
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(T)), 0, len(idx) - 1)]
    prev = idx[np.clip(np.searchsorted(idx, np.arange(T)) - 1, 0, len(idx) - 1)]
    use_prev = np.abs(np.arange(T) - prev) < np.abs(np.arange(T) - nearest)
    nearest = np.where(use_prev, prev, nearest)
    out = values.copy()
    out[~known] = values[nearest[~known]]
    return out


# frame times off a constant rate by less than this share of a frame are the constant rate (timestamps
# rounded to milliseconds, a container's jitter)
EVEN_TOLERANCE = 0.25


def uneven_times(frame_times: np.ndarray | None, fps: float) -> np.ndarray | None:
    """The frame times (T,) s as float64 when they are uneven: some step between frames differs from
    1 / fps by more than EVEN_TOLERANCE of a frame (a variable frame rate, dropped frames); None
    when they are even, absent (None), not finite or not increasing (the constant rate is used)."""
    if frame_times is None:
        return None
    times = np.asarray(frame_times, dtype=np.float64)
    if len(times) < 3 or not np.all(np.isfinite(times)):
        return None
    steps = np.diff(times)
    if np.any(steps <= 0) or np.all(np.abs(steps * fps - 1.0) <= EVEN_TOLERANCE):
        return None
    return times


def one_euro_filter(x: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 0.5,
                    d_cutoff: float = 1.0, times: np.ndarray = None) -> np.ndarray:
    """One Euro filter along axis 0 of x (T, ...), every channel independently; float64 (T, ...).

    min_cutoff and d_cutoff in Hz; beta per unit of x per second. times (T,) s, increasing: each
    step's own time instead of 1 / fps (uneven frame times)."""
    x = np.asarray(x, dtype=np.float64)
    steps = np.full(max(len(x) - 1, 0), 1.0 / fps) if times is None else np.maximum(np.diff(times), 1e-6)

    def alpha(cutoff, te):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    out = np.empty_like(x)
    out[0] = x[0]
    dx_prev = np.zeros_like(x[0])
    for t in range(1, len(x)):
        te = steps[t - 1]
        dx = (x[t] - out[t - 1]) / te
        a_d = alpha(d_cutoff, te)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        a = alpha(min_cutoff + beta * np.abs(dx_hat), te)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
        dx_prev = dx_hat
    return out


def one_euro_rotations(rotvecs: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 0.5,
                       d_cutoff: float = 1.0, times: np.ndarray = None) -> np.ndarray:
    """The One Euro filter on rotations (T,...,3) axis-angle, as sign-continuous unit quaternions
    renormalised after filtering (times (T,) s: see ``one_euro_filter``). Returns (T,...,3) axis-angle."""
    q = roma.rotvec_to_unitquat(torch.as_tensor(np.asarray(rotvecs, dtype=np.float64))).numpy()  # (T,...,4)
    for t in range(1, len(q)):  # sign continuity so the filter never averages q and -q
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    qf = one_euro_filter(q, fps, min_cutoff, beta, d_cutoff, times)
    qf /= np.linalg.norm(qf, axis=-1, keepdims=True)
    return roma.unitquat_to_rotvec(torch.as_tensor(qf)).numpy()


def one_euro_rotations_zero_phase(rotvecs: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 0.5,
                                  d_cutoff: float = 1.0, times: np.ndarray = None) -> np.ndarray:
    """``one_euro_rotations`` run forwards and backwards in time, the two passes averaged (quaternion
    midpoint): for a whole clip at once, the causal filter's lag cancels (as forward-backward linear
    filtering does). rotvecs (T,...,3), times (T,) s or None -> (T,...,3) axis-angle."""
    rotvecs = np.asarray(rotvecs, dtype=np.float64)
    back = None if times is None else -np.asarray(times, dtype=np.float64)[::-1]  # time run backwards, increasing
    fwd = one_euro_rotations(rotvecs, fps, min_cutoff, beta, d_cutoff, times)
    bwd = one_euro_rotations(rotvecs[::-1].copy(), fps, min_cutoff, beta, d_cutoff, back)[::-1].copy()
    qf = roma.rotvec_to_unitquat(torch.as_tensor(fwd))
    qb = roma.rotvec_to_unitquat(torch.as_tensor(bwd))
    qb = torch.where((qf * qb).sum(-1, keepdim=True) < 0, -qb, qb)
    q = qf + qb
    return roma.unitquat_to_rotvec(q / q.norm(dim=-1, keepdim=True)).numpy()
