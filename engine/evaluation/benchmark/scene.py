"""The benchmark's scenes: the clips (view, hands, camera, colours), the motion (a recording source
the prior never trained on), the posed rescaled hand in camera orientation, and its path across the
image and in depth; ``make_clip`` -> the scene for ``benchmarks/render_gt.py`` and the truth."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.util.camera import project
from engine.util.errors import EngineError

from .hand import rescaled_hand

if TYPE_CHECKING:
    from engine.hand_model import HandModel

ROOT = Path(__file__).resolve().parents[3]
HELD_OUT_SOURCE = ROOT / "benchmarks" / "data" / "leap_javascript_v2.npz"
FPS = 30.0


@dataclass(frozen=True)
class Clip:
    name: str
    hands: tuple  # ("right",), ("left",) or ("right", "left")
    view: str  # the side towards the camera: palm | back | side (an edge) | end (the fingers pointing at it)
    fov: float  # the true field of view across the longer image side, degrees
    skin: tuple  # linear RGB
    background: tuple  # linear RGB
    occluder: bool  # a pole passing in front of the hand(s)


# The names said "palm" for the back of the hand and "back" for the palm until 2026-12-05 (the view
# matrices took +x for the palm's normal; the model's volar normal is -x): the clips are the same, their
# names now say which side the camera sees (docs/history.md records results under the old names).
CLIPS = (
    Clip("back-right", ("right",), "back", 52.0, (0.80, 0.55, 0.42), (0.35, 0.35, 0.38), False),
    Clip("palm-left", ("left",), "palm", 68.0, (0.25, 0.13, 0.08), (0.15, 0.25, 0.45), False),
    Clip("side-right-occluded", ("right",), "side", 60.0, (0.55, 0.33, 0.20), (0.20, 0.40, 0.20), True),
    Clip("back-left-occluded", ("left",), "back", 74.0, (0.85, 0.62, 0.50), (0.50, 0.35, 0.25), True),
    Clip("both-back", ("right", "left"), "back", 56.0, (0.65, 0.42, 0.30), (0.30, 0.30, 0.45), False),
    Clip("palm-right-occluded", ("right",), "palm", 64.0, (0.45, 0.28, 0.18), (0.40, 0.40, 0.30), True),
    Clip("end-right", ("right",), "end", 58.0, (0.70, 0.48, 0.36), (0.25, 0.32, 0.35), False),
)



def motion_source(path: str | Path | None = None) -> tuple[str, list[dict]]:
    """(description, sequences at 30 fps): ``path``, else the held-out source file when present,
    else the prior's held-out takes."""
    from engine.prior.data import load_sequences, resample, split_by_take

    path = Path(path) if path else (HELD_OUT_SOURCE if HELD_OUT_SOURCE.is_file() else None)
    if path is not None:
        seqs = load_sequences([path])
        what = f"{path.name} (all {len(seqs)} sequences; a recording source the prior never trains on)"
    else:
        from engine.prior.train import LEAP_BUNDLE, dedupe_takes

        seqs = dedupe_takes(load_sequences([ROOT / LEAP_BUNDLE]))
        _, held = split_by_take(seqs, 0.15)
        seqs = [seqs[i] for i in held]
        what = (f"the prior's held-out takes ({len(seqs)}; the same recording source as its training data: "
                f"{HELD_OUT_SOURCE.relative_to(ROOT)} is not there)")
    out = []
    for s in seqs:
        if abs(s["fps"] - FPS) > 1e-6:
            s = dict(s, hand_pose=resample(s["hand_pose"], s["fps"], FPS),
                     global_orient=resample(s["global_orient"], s["fps"], FPS), fps=FPS)
        out.append(s)
    if not out:
        raise EngineError("no motion for the benchmark")
    return what, out


def pick_motions(seqs: list[dict], n: int, T: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """n (name, hand_pose (T,45), global_orient (T,3)) stretches, longest sequences first; a sequence
    used k times gives k stretches spread over its length; one shorter than T plays forwards then back."""
    pool = sorted(seqs, key=lambda s: -len(s["hand_pose"]))
    use = [k % len(pool) for k in range(n)]
    out = []
    for k in range(n):
        s = pool[use[k]]
        L = len(s["hand_pose"])
        if L >= T:
            count, r = use.count(use[k]), use[:k].count(use[k])
            start = int(round(r * (L - T) / max(1, count - 1)))
            idx = start + np.arange(T)
        else:  # ping-pong instead of a jump back to the start
            period = max(1, 2 * L - 2)
            idx = np.arange(T) % period
            idx = np.where(idx < L, idx, period - idx)
        out.append((f"{s['name']} [{idx[0]}:{idx[-1] + 1}]", s["hand_pose"][idx], s["global_orient"][idx]))
    return out


def clip_plan(clips: "tuple[Clip, ...]", seqs: list[dict], T: int) -> "Iterator[tuple[Clip, list, int]]":
    """(clip, its hands' motions (``pick_motions``' tuples), its scene seed) for each clip in order: the
    one place that decides which motion and which seed a clip gets, so that anything re-making a clip's
    truth (``make_clip``) gets the benchmark's own."""
    motions = iter(pick_motions(seqs, sum(len(c.hands) for c in clips), T))
    for i, clip in enumerate(clips):
        yield clip, [next(motions) for _ in clip.hands], 1000 + i


def view_matrix(view: str) -> np.ndarray:
    """(3,3): the model frame (a right hand: fingers -y, thumb -z, the palm's volar normal -x by
    ``engine.fit.anatomy``'s rule) -> the camera's (OpenCV: x right, y down, z forward) orientation at
    the clip's start, for ``view``: the side of the hand that faces the camera."""
    back = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # volar -x -> +z: the back faces the camera
    if view == "back":
        return back
    if view == "palm":  # volar -x -> -z; fingers up, the right thumb on the image's right
        return np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
    if view == "side":  # the back turned 70 degrees away: the little finger's edge towards the camera
        a = np.radians(70.0)
        Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        return Ry @ back
    if view == "end":  # from the back view, the fingers tipped 65 degrees towards the camera: end-on
        a = np.radians(65.0)
        Rx = np.array([[1.0, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        return Rx @ back
    raise ValueError(f"unknown view {view!r}")


def pose_hand(hand: "HandModel", motion: tuple, view: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Posed vertices (T,V,3) and keypoints (T,21,3) of ``hand`` (a right hand) doing ``motion``, in
    camera orientation about the wrist's rest position; ``side`` left mirrors both (x -> -x)."""
    import roma
    import torch

    _, hand_pose, orient = motion
    T = len(hand_pose)
    Rl = roma.rotvec_to_rotmat(torch.as_tensor(orient, dtype=torch.float32))
    rel = Rl[:1].transpose(-1, -2) @ Rl  # the recorded turning, relative to its first frame
    go = roma.rotmat_to_rotvec(torch.as_tensor(view_matrix(view), dtype=torch.float32) @ rel)
    with torch.no_grad():
        out = hand(go, torch.as_tensor(hand_pose, dtype=torch.float32), torch.zeros(10), torch.zeros(T, 3))
    verts, kp = out.vertices.numpy().astype(np.float64), out.keypoints.numpy().astype(np.float64)
    if side == "left":
        flip = np.array([-1.0, 1.0, 1.0])
        verts, kp = verts * flip, kp * flip
    return verts, kp


def _wave(rng, T):
    """A smooth random curve (T,) in [-1, 1]: two slow sinusoids (0.3-1.2 cycles over the clip)."""
    t = np.linspace(0.0, 1.0, T)
    f, ph, a = rng.uniform(0.3, 1.2, 2), rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.4, 1.0, 2)
    w = (a[:, None] * np.sin(2 * np.pi * f[:, None] * t + ph[:, None])).sum(0)
    return w / np.abs(w).max()


def place(kps: list[np.ndarray], rng: np.random.Generator, K: np.ndarray, size: tuple[int, int],
          centres_x: tuple[float, ...] = (0.0,), lateral: float = 0.10, depth: tuple[float, float] = (0.35, 0.70),
          margin: float = 8.0) -> tuple[list[np.ndarray], tuple[float, float, float]]:
    """Smooth random paths for the hands' palm centres (each kps[i] (T,21,3) about the origin):
    lateral +-``lateral`` m about ``centres_x`` (x) and 0, and a depth curve inside ``depth``, all
    hands at the same depth; the lateral swing shrinks (and the near end of the depth recedes) until
    every keypoint stays ``margin`` px inside the image. Returns the offsets [(T,3)] and the path's
    (depth min, depth max, lateral amplitude)."""
    T = len(kps[0])
    width, height = size
    zmin, zmax = rng.uniform(depth[0], depth[0] + 0.08), rng.uniform(depth[1] - 0.1, depth[1])
    wz = (_wave(rng, T) + 1) / 2
    wx, wy = [_wave(rng, T) for _ in kps], [_wave(rng, T) for _ in kps]
    centres = [k[:, [0, 9]].mean(1).mean(0) for k in kps]
    amp = lateral
    for _ in range(60):
        z = zmin + (zmax - zmin) * wz
        offs = [np.stack([cx + amp * x, 0.6 * amp * y, z], -1) - c for cx, x, y, c in zip(centres_x, wx, wy, centres)]
        pts = np.concatenate([k + o[:, None] for k, o in zip(kps, offs)], 1)
        uv = project(pts, K)
        if (uv.min() >= margin and (uv[..., 0].max() <= width - margin) and uv[..., 1].max() <= height - margin
                and pts[..., 2].min() > 0.1):
            return offs, (float(z.min()), float(z.max()), float(amp))
        if amp > 0.02:
            amp *= 0.85
        else:
            zmin, zmax = zmin + 0.02, max(zmax, zmin + 0.04)
    raise EngineError("cannot fit the rendered hand(s) in the image: a wider field of view or a smaller hand")


def make_clip(clip: Clip, motions: list[tuple], T: int, size: tuple[int, int],
              seed: int) -> tuple[dict, dict[str, np.ndarray], np.ndarray, str]:
    """One clip's scene (dict for render_gt.py) and truth: {side: keypoints (T,21,3)}, K_true, notes."""
    from engine.video import guess_intrinsics

    rng = np.random.default_rng(seed)
    K = guess_intrinsics(*size, fov_deg=clip.fov)
    hand, info = rescaled_hand(rng)  # one person: both hands the same proportions, mirrored
    faces = hand.faces.numpy()
    posed = [pose_hand(hand, m, clip.view, side) for side, m in zip(clip.hands, motions)]
    centres_x = (0.0,) if len(clip.hands) == 1 else (-0.09, 0.09)  # the right hand on the image's left
    offs, (z0, z1, amp) = place([kp for _, kp in posed], rng, K, size, centres_x)
    verts, face_list, truth, n = [], [], {}, 0
    for side, (v, kp), o in zip(clip.hands, posed, offs):
        verts.append(v + o[:, None])
        face_list.append((faces[:, ::-1] if side == "left" else faces) + n)  # mirrored: faces turned
        n += v.shape[1]
        truth[side] = kp + o[:, None]
    scene = {"vertices": np.concatenate(verts, 1).astype(np.float32), "faces": np.concatenate(face_list),
             "K": K, "size": np.array(size), "fps": FPS, "skin": np.array(clip.skin),
             "background": np.array(clip.background)}
    if clip.occluder:  # a pole sweeping across in front of the hand(s) during the clip
        allkp = np.concatenate(list(truth.values()), 1)
        zp = max(0.2, allkp[..., 2].min() - 0.06)
        half = zp * np.tan(np.radians(clip.fov) / 2)
        x = np.interp(np.arange(T), [0, T - 1], [-half, half])
        scene["occluder"] = np.stack([x, np.full(T, allkp[:, :, 1].mean()), np.full(T, zp)], -1)
        scene["occluder_radius"] = 0.025
    segs = info["segments"]
    note = (f"hand size x{info['size']:.2f}, palm length x{info['palm'][0]:.2f} width x{info['palm'][1]:.2f}, "
            f"finger segments x{segs.min():.2f}-{segs.max():.2f}; true FOV {clip.fov:g} deg; depth "
            f"{z0:.2f}-{z1:.2f} m, lateral swing +-{amp:.3f} m")
    return scene, truth, K, note
