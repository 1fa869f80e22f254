"""Training data for the motion prior: MANO hand-pose sequences, resampled and cut into windows.

A sequence is a dict: ``hand_pose (T,45)`` axis-angle, ``global_orient (T,3)``, ``fps``, ``name``,
always a RIGHT hand (left hands are mirrored into right ones: the prior is learnt once, and a left
hand is fitted through ``hand_model.mirror_pose``).

Loaders (``load_sequences(paths)`` picks by file content):

- AMASS ``.npz`` (SMPL-H: ``poses`` (T,156) with the left hand at 66:111 and the right at 111:156;
  SMPL-X: ``pose_hand`` (T,90) or ``left_hand_pose``/``right_hand_pose``), with
  ``mocap_framerate`` / ``mocap_frame_rate``. SMPL-H/SMPL-X hand poses are MANO's 15 joint
  rotations in MANO's joint order, relative to MANO's flat hand (AMASS stores full poses, not PCA,
  and without adding ``hands_mean``), so they are taken as they are. The wrist's global rotation
  is the body's chain up to the wrist, which AMASS does not store per joint: it is not used (the
  prior's root channel then stays at identity for AMASS data).
- plain MANO sequence ``.npz``: ``hand_pose`` (T,45), optional ``global_orient`` (T,3), ``fps``,
  optional ``side`` ("right"/"left").
- this repository's converted Leap Motion recordings (``engine/assets/prior/leap_mano.npz``,
  made by ``tools/convert_leap.py``): many sequences in one file, keys ``{name}/hand_pose`` etc.

Resampling to the prior's frame rate is SLERP per joint (roma), then windows of ``window`` frames
with a stride. ``mirror`` turns a left-hand sequence into a right-hand one (and back).
"""

import os
import re
from pathlib import Path

import numpy as np
import roma
import torch

from engine.util.errors import EngineError


def mirror(rotvecs: np.ndarray) -> np.ndarray:
    """Mirror axis-angle rotations (..., J*3) between left and right hands (``hand_model.mirror_pose``,
    in numpy float64): (x, y, z) -> (x, -y, -z)."""
    from engine.hand_model import mirror_pose

    return mirror_pose(torch.as_tensor(np.asarray(rotvecs, dtype=np.float64))).numpy()


def resample(rotvecs: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """SLERP-resample axis-angle rotations (T,J*3) from fps_in to fps_out -> (T',J*3), T' covering the
    same duration ((T-1)/fps_in s) at fps_out."""
    r = np.asarray(rotvecs, dtype=np.float64)
    T = r.shape[0]
    if abs(fps_in - fps_out) < 1e-6 or T < 2:
        return r.copy()
    duration = (T - 1) / fps_in
    times = np.arange(0, duration + 1e-9, 1.0 / fps_out) * fps_in  # in input frames
    i0 = np.clip(np.floor(times).astype(int), 0, T - 2)
    w = torch.as_tensor(times - i0)[:, None, None]  # (T',1,1) step from frame i0 towards i0 + 1
    q = roma.rotvec_to_unitquat(torch.as_tensor(r.reshape(T, -1, 3)))  # (T,J,4)
    q0, q1 = q[i0], q[i0 + 1]
    # SLERP with one step per output frame (roma.unitquat_slerp takes one list of steps for all pairs):
    # q0 * exp(w * log(q0^-1 q1)), along the shortest arc
    rel = roma.unitquat_to_rotvec(roma.quat_product(roma.quat_conjugation(q0), q1), shortest_arc=True)
    out = roma.unitquat_to_rotvec(roma.quat_product(q0, roma.rotvec_to_unitquat(w * rel)))
    return out.reshape(len(times), -1).numpy()


def _seq(name, hand_pose, fps, global_orient=None, side="right"):
    hand_pose = np.asarray(hand_pose, dtype=np.float64).reshape(-1, 45)
    go = (np.zeros((len(hand_pose), 3)) if global_orient is None
          else np.asarray(global_orient, np.float64).reshape(-1, 3))
    if side == "left":
        hand_pose, go = mirror(hand_pose), mirror(go)
    if not (np.isfinite(hand_pose).all() and np.isfinite(go).all()):
        raise EngineError(f"{name}: non-finite poses")
    return {"name": name, "hand_pose": hand_pose, "global_orient": go, "fps": float(fps)}


def load_file(path: str | os.PathLike) -> list[dict]:
    """All sequences in one .npz file (AMASS SMPL-H/SMPL-X, MANO sequence, or converted bundle)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            a = {k: d[k] for k in d.files}
    except Exception as exc:
        raise EngineError(f"cannot read motion file {path}: {exc}") from None
    name = Path(path).stem
    fps = None
    for key in ("mocap_framerate", "mocap_frame_rate", "fps"):
        if key in a:
            fps = float(a[key])
    if "poses" in a and a["poses"].ndim == 2 and a["poses"].shape[1] == 156:  # AMASS SMPL-H
        if fps is None:
            raise EngineError(f"{path}: AMASS file without mocap_framerate")
        p = a["poses"]
        return [_seq(f"{name}/right", p[:, 111:156], fps), _seq(f"{name}/left", p[:, 66:111], fps, side="left")]
    if "pose_hand" in a or "right_hand_pose" in a:  # AMASS SMPL-X
        if fps is None:
            raise EngineError(f"{path}: AMASS file without mocap_frame_rate")
        if "pose_hand" in a:
            left, right = a["pose_hand"][:, :45], a["pose_hand"][:, 45:90]
        else:
            left, right = a["left_hand_pose"], a["right_hand_pose"]
        return [_seq(f"{name}/right", right, fps), _seq(f"{name}/left", left, fps, side="left")]
    if "hand_pose" in a:  # plain MANO sequence
        if fps is None:
            raise EngineError(f"{path}: MANO sequence without 'fps'")
        side = str(a.get("side", "right"))
        return [_seq(name, a["hand_pose"], fps, a.get("global_orient"), side=side)]
    names = sorted({k.split("/")[0] for k in a if k.endswith("/hand_pose")})
    if names:  # bundle: {seq}/hand_pose, {seq}/global_orient, {seq}/fps
        return [_seq(n, a[f"{n}/hand_pose"], float(a[f"{n}/fps"]), a.get(f"{n}/global_orient")) for n in names]
    raise EngineError(f"{path}: not an AMASS (SMPL-H/SMPL-X), MANO sequence or converted motion file")


def load_sequences(paths: list) -> list[dict]:
    """Sequences from files and folders (searched recursively for .npz)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files = sorted(p.rglob("*.npz"))
            if not files:
                raise EngineError(f"no .npz motion files under {p}")
            for f in files:
                out += load_file(f)
        elif p.is_file():
            out += load_file(p)
        else:
            raise EngineError(f"motion data not found: {p}")
    return out


def windows(sequences: list[dict], window: int, fps: float,
            stride: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut resampled sequences into windows. Returns hand_pose (N,window,45), global_orient
    (N,window,3) and the index of the source sequence of each window (N,)."""
    stride = stride or max(1, window // 4)
    hp, go, src = [], [], []
    for k, s in enumerate(sequences):
        pose = resample(s["hand_pose"], s["fps"], fps)
        orient = resample(s["global_orient"], s["fps"], fps)
        for start in range(0, len(pose) - window + 1, stride):
            hp.append(pose[start:start + window])
            go.append(orient[start:start + window])
            src.append(k)
    if not hp:
        return np.zeros((0, window, 45)), np.zeros((0, window, 3)), np.zeros(0, np.int64)
    return np.stack(hp), np.stack(go), np.asarray(src)


def take_of(name: str) -> tuple[str, str | None]:
    """(take, file) of a sequence name. Converted bundles name sequences
    ``take@file#hand_segment`` (``tools/convert_leap.py``); AMASS ones ``file/right``; a plain
    MANO file its stem. The file is None where the name has no ``@``."""
    head = re.split(r"[/#]", name, maxsplit=1)[0]
    take, _, file = head.partition("@")
    return take, (file or None)


def split_by_take(sequences: list[dict], held_out_fraction: float = 0.15,
                  seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of training and held-out sequences, split by take (``take_of``: the same take
    recorded at several rates never lands on both sides)."""
    takes = sorted({take_of(s["name"])[0] for s in sequences})
    rng = np.random.default_rng(seed)
    rng.shuffle(takes)
    n_held = max(1, int(round(len(takes) * held_out_fraction))) if len(takes) > 1 else 0
    held = set(takes[:n_held])
    tr = [i for i, s in enumerate(sequences) if take_of(s["name"])[0] not in held]
    te = [i for i, s in enumerate(sequences) if take_of(s["name"])[0] in held]
    return tr, te
