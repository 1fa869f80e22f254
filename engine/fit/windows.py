"""Windows of the motion prior over a clip, and the blend of their overlaps.

The prior decodes a window of ``prior.window`` frames at ``prior.fps``, i.e. a fixed duration. In
clip frames (any frame rate) a window spans ``n = floor(duration * fps) + 1`` frames; consecutive
windows overlap by 16 prior frames (the authors' setting) scaled to the clip's rate, and the last
window is aligned with the clip's end. Inside an overlap each window's weight ramps linearly, so
the blended motion has no jump at a border. A clip shorter than one window gets one window that
decodes only the times it has.

On uneven frame times (a variable frame rate: ``layout(..., times=)``) the windows are laid on the
frames' real times instead: each window holds the frames within the prior's duration of its first
frame (so windows hold different numbers of frames, padded to the longest and masked), the overlap
and the blend ramps are in seconds, each slot is decoded at its frame's real time from the window's
start, and ``resample_windows`` reads the clip at the prior's frame times through the frames' real
times.
"""

from dataclasses import dataclass

import numpy as np
import roma
import torch

from engine.prior.model import blend_at


@dataclass
class Layout:
    starts: np.ndarray  # (W,) first clip frame of each window
    length: int  # clip frames per (full) window
    frame_index: torch.Tensor  # (W,n) clip frame of each window slot (clamped), long
    mask: torch.Tensor  # (W,n) slot inside the clip
    weight: torch.Tensor  # (W,n) blend weight of each slot (0 outside), sums to 1 per frame
    times: torch.Tensor  # (W,n) seconds from the window start
    frame_times: np.ndarray = None  # (T,) s from the first frame when laid on uneven times, else None


def layout(T: int, fps: float, prior_window: int, prior_fps: float, overlap: int = 16,
           device: str | torch.device = "cpu", times: np.ndarray | None = None) -> Layout:
    """The prior's windows over a clip of T frames at ``fps`` (see the module docstring); ``times``
    (T,) seconds, increasing: lay them on these (uneven) frame times instead of the constant rate."""
    if times is not None:
        return _layout_on_times(np.asarray(times, dtype=np.float64), fps, prior_window, prior_fps, overlap, device)
    duration = (prior_window - 1) / prior_fps
    n = int(np.floor(duration * fps + 1e-6)) + 1
    ov = int(round(overlap * fps / prior_fps))
    ov = min(ov, n // 2)
    if T <= n:
        starts = np.array([0])
    else:
        stride = max(1, n - ov)
        starts = list(range(0, T - n + 1, stride))
        if starts[-1] != T - n:
            starts.append(T - n)
        starts = np.array(starts)
    slots = np.arange(n)
    frames = starts[:, None] + slots[None]
    mask = frames < T
    ramp = np.minimum(1.0, np.minimum(slots + 1, n - slots) / (ov + 1.0))[None].repeat(len(starts), 0)
    ramp[0, : n // 2] = 1.0  # the clip's own ends are not blended with anything
    ramp[-1, n // 2:] = 1.0
    weight = np.where(mask, ramp, 0.0)
    total = np.zeros(T)
    np.add.at(total, frames[mask], weight[mask])
    weight = np.where(mask, weight / np.maximum(total[np.minimum(frames, T - 1)], 1e-9), 0.0)
    return Layout(starts=starts, length=n,
                  frame_index=torch.as_tensor(np.minimum(frames, T - 1), device=device),
                  mask=torch.as_tensor(mask, device=device),
                  weight=torch.as_tensor(weight, dtype=torch.float32, device=device),
                  times=torch.as_tensor(slots / fps, dtype=torch.float32, device=device)[None].expand(len(starts), n))


def _layout_on_times(times, fps, prior_window, prior_fps, overlap, device):
    """``layout`` on uneven frame times (T,) s: windows of the prior's duration in seconds, started
    every (duration - overlap) seconds at the first frame at or after that time, the last one ending
    at the clip's last frame; ramps over the overlap in seconds."""
    T = len(times)
    t = times - times[0]
    duration = (prior_window - 1) / prior_fps
    ov = min(overlap / prior_fps, duration / 2)
    eps = 1e-6
    last = int(np.searchsorted(t, t[-1] - duration - eps))  # the first frame within a duration of the end
    starts = [0]
    while starts[-1] < last:
        nxt = int(np.searchsorted(t, t[starts[-1]] + duration - ov - eps))
        starts.append(min(max(nxt, starts[-1] + 1), last))
    starts = np.array(starts)
    ends = np.searchsorted(t, t[starts] + duration + eps, side="right")  # (W,) one past each window's last frame
    n = int((ends - starts).max())
    slots = np.arange(n)
    frames = starts[:, None] + slots[None]
    mask = frames < ends[:, None]
    frames = np.minimum(frames, ends[:, None] - 1)  # padding repeats the window's last frame
    rel = t[frames] - t[starts][:, None]  # (W,n) seconds from the window's start
    span = rel[:, -1:]  # each window's own length in seconds
    step = 1.0 / fps  # the ramps of the constant-rate layout, in seconds: (slot + 1) / (ov + 1) frames
    ramp = np.minimum(1.0, np.minimum(rel + step, span - rel + step) / (ov + step))
    ramp[0, rel[0] <= span[0] / 2] = 1.0  # the clip's own ends are not blended with anything
    ramp[-1, rel[-1] >= span[-1] / 2] = 1.0
    weight = np.where(mask, ramp, 0.0)
    total = np.zeros(T)
    np.add.at(total, frames[mask], weight[mask])
    weight = np.where(mask, weight / np.maximum(total[frames], 1e-9), 0.0)
    return Layout(starts=starts, length=int(np.floor(duration * fps + 1e-6)) + 1,
                  frame_index=torch.as_tensor(frames, device=device),
                  mask=torch.as_tensor(mask, device=device),
                  weight=torch.as_tensor(weight, dtype=torch.float32, device=device),
                  times=torch.as_tensor(rel, dtype=torch.float32, device=device), frame_times=t)


def blend_rotations(rotvecs: torch.Tensor, lay: Layout, T: int, reference: torch.Tensor) -> torch.Tensor:
    """Per clip frame, the weighted average of the windows' rotations (unit quaternions, signs
    aligned to ``reference``). rotvecs (W,n,J,3); reference (T,J,3) -> (T,J,3)."""
    q = roma.rotvec_to_unitquat(rotvecs)  # (W,n,J,4)
    q_ref = roma.rotvec_to_unitquat(reference)[lay.frame_index]  # (W,n,J,4)
    sign = torch.where((q * q_ref).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    contrib = q * sign * lay.weight[..., None, None]
    J = rotvecs.shape[2]
    acc = torch.zeros(T, J, 4, dtype=q.dtype, device=q.device)
    acc = acc.index_add(0, lay.frame_index[lay.mask], contrib[lay.mask])
    return roma.unitquat_to_rotvec(roma.quat_normalize(acc))


def resample_windows(values: torch.Tensor, lay: Layout, fps: float, prior_window: int,
                     prior_fps: float) -> torch.Tensor:
    """Per window, rotations (T,J*3) resampled from clip frames to the prior's frames: (W,prior_window,J*3).

    Linear interpolation of quaternions (then normalised) between the two nearest clip frames; past the
    clip's end the last frame is held (the decoder is still asked for the whole window). On a layout
    laid on uneven times (``lay.frame_times``) the prior's frame k of a window is read at the time
    k / prior_fps after the window's first frame, between the frames around that time."""
    T = values.shape[0]
    t_prior = torch.arange(prior_window, dtype=torch.float32, device=values.device) / prior_fps
    if lay.frame_times is None:
        pos = torch.as_tensor(lay.starts, dtype=torch.float32, device=values.device)[:, None] + t_prior[None] * fps
    else:  # fractional frame positions of those times (np.interp holds the last frame past the end)
        at = lay.frame_times[lay.starts][:, None] + t_prior.cpu().numpy()[None]
        pos = torch.as_tensor(np.interp(at, lay.frame_times, np.arange(T)), dtype=torch.float32, device=values.device)
    pos = pos.clamp(max=T - 1)
    q = roma.rotvec_to_unitquat(values.reshape(T, -1, 3))  # (T,J,4), one sequence read by every window
    out = blend_at(q[None].expand(pos.shape[0], *q.shape), pos)
    return roma.unitquat_to_rotvec(out).reshape(*pos.shape, -1)


def crossfade_chunks(spans: list[tuple[int, int]], results: list[dict[str, np.ndarray]], T: int,
                     overlap: int) -> dict[str, np.ndarray]:
    """Blend per-chunk results over a clip of T frames.

    spans: [(a, b)] chunk frame ranges that overlap by up to ``overlap`` frames; results: per chunk a
    dict with ``global_orient (b-a,3)``, ``hand_pose (b-a,45)`` (axis-angle) and ``transl (b-a,3)``.
    Inside an overlap the weights ramp linearly from one chunk to the next. Rotations are blended as
    sign-aligned unit quaternions (a normalised weighted mean: exact at the ramp's ends, on the short
    arc between them, correct at any angle, where a mean of axis-angle vectors is not); translation
    linearly. Returns the blended dict (T,...) as float64 numpy arrays.
    """
    weights = np.zeros((len(spans), T))
    for k, (a, b) in enumerate(spans):
        ramp = np.ones(b - a)
        ov = min(overlap, b - a)
        if k > 0:
            ramp[:ov] = np.linspace(0, 1, ov + 2)[1:-1]
        if k < len(spans) - 1:
            ramp[-ov:] = np.minimum(ramp[-ov:], np.linspace(1, 0, ov + 2)[1:-1])
        weights[k, a:b] = ramp
    weights /= weights.sum(0, keepdims=True)
    out = {"transl": np.zeros((T, 3))}
    for k, (a, b) in enumerate(spans):
        out["transl"][a:b] += weights[k, a:b, None] * np.asarray(results[k]["transl"], np.float64)
    for key in ("global_orient", "hand_pose"):
        acc = torch.zeros(T, np.asarray(results[0][key]).shape[-1] // 3, 4, dtype=torch.float64)
        first = torch.zeros_like(acc)  # the first chunk's quaternion at each frame: the sign reference
        seen = torch.zeros(T, dtype=torch.bool)
        for k, (a, b) in enumerate(spans):
            rv = torch.as_tensor(np.asarray(results[k][key], np.float64)).reshape(b - a, -1, 3)
            q = roma.rotvec_to_unitquat(rv)
            new = ~seen[a:b]
            first[a:b][new] = q[new]
            seen[a:b] = True
            sign = torch.where((q * first[a:b]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
            acc[a:b] += torch.as_tensor(weights[k, a:b])[:, None, None] * q * sign
        out[key] = roma.unitquat_to_rotvec(roma.quat_normalize(acc)).reshape(T, -1).numpy()
    return out
