"""Where the rendered benchmark's root-aligned error comes from: the hand's orientation, split into the
turn about the viewing ray (in the image plane) and the tilt towards or away from the camera.

    .venv/bin/python -m engine benchmark --quality draft --workdir W   # leaves W/<clip>.fits.npz
    .venv/bin/python benchmarks/bench_orientation.py W [--frames 90] [--size 480x360]

For every hand track the rendered benchmark fitted (its ``.fits.npz`` beside each clip, the truth
re-made from the same seeds), per method and frame: the rotation R that best turns the fit's
root-aligned joints onto the truth's (Kabsch, no scale), split as R = R_tilt R_turn with R_turn about
the camera ray through the wrist (swing-twist decomposition). Printed: RA-MPJPE, the error left once
R is removed ("shape": fingers and proportions), the turn and the tilt in degrees (mean), and the
tilt's clip-level bias (the angle of the clip's mean rotation) against its frame-to-frame part.

A camera pins the turn (it is in the image); the tilt shows only through foreshortening, which a
hand whose proportions are not known confuses with a shorter bone (cos 30 deg = 0.87: a tilt of 30
degrees looks like bones 13 % shorter).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import roma
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mdtable import print_table  # noqa: E402

METHODS = ("per-frame", "stage I", "stage II")


def best_rotations(pred, gt):
    """Per frame, the rotation R (T,3,3) with R @ pred_j ~ gt_j of root-aligned joints (Kabsch about
    the wrist: roma's nearest rotation to sum_j g p^T)."""
    P, G = pred - pred[:, :1], gt - gt[:, :1]
    return roma.special_procrustes(torch.as_tensor(np.einsum("tji,tjk->tik", G, P))).numpy()


def turn_and_tilt(R, ray):
    """Swing-twist of R (T,3,3) about the unit rays (T,3): (turn about the ray, tilt off it), degrees."""
    q = roma.rotmat_to_unitquat(torch.as_tensor(R)).numpy()  # (T,4) xyzw
    proj = (q[:, :3] * ray).sum(1, keepdims=True) * ray
    twist = np.concatenate([proj, q[:, 3:]], 1)
    norm = np.linalg.norm(twist, axis=1, keepdims=True)
    twist = np.where(norm > 1e-9, twist / np.maximum(norm, 1e-12), np.array([0, 0, 0, 1.0]))
    turn = 2 * np.degrees(np.arccos(np.clip(np.abs(twist[:, 3]), 0, 1)))
    # swing = q twist^-1: its angle
    w = np.abs((q * twist).sum(1))  # <q, twist> = cos(swing / 2)
    tilt = 2 * np.degrees(np.arccos(np.clip(w, 0, 1)))
    return turn, tilt


def angle(R):
    """Rotation angle(s) of R (...,3,3), degrees."""
    R = torch.as_tensor(R)
    return np.degrees(roma.rotmat_geodesic_distance(R, torch.eye(3, dtype=R.dtype).expand_as(R)).numpy())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", help="a rendered benchmark's --workdir (its .fits.npz files)")
    ap.add_argument("--frames", type=int, default=90, help="the benchmark's --frames")
    ap.add_argument("--size", default="480x360", help="the benchmark's --size")
    args = ap.parse_args(argv)

    from engine.evaluation.benchmark import CLIPS, clip_plan, make_clip, motion_source

    size = tuple(int(v) for v in args.size.split("x"))
    _, seqs = motion_source(None)
    rows = []
    for clip, clip_motions, seed in clip_plan(CLIPS, seqs, args.frames):  # the benchmark's own: the same truth
        fits_path = Path(args.workdir) / f"{clip.name}.fits.npz"
        if not fits_path.is_file():
            continue
        _, truth, _, _ = make_clip(clip, clip_motions, args.frames, size, seed=seed)
        with np.load(fits_path) as fits:
            for side in clip.hands:
                gt = truth[side]
                ray = gt[:, 0] / np.linalg.norm(gt[:, 0], axis=1, keepdims=True)
                for meth in METHODS:
                    if f"{side}/{meth}" not in fits.files:
                        continue
                    pred = fits[f"{side}/{meth}"]
                    R = best_rotations(pred, gt)
                    P, G = pred - pred[:, :1], gt - gt[:, :1]
                    ra = np.linalg.norm(P - G, axis=-1).mean() * 1000
                    shape = np.linalg.norm(np.einsum("tik,tjk->tji", R, P) - G, axis=-1).mean() * 1000
                    turn, tilt = turn_and_tilt(R, ray)
                    mean_R = roma.special_procrustes(torch.as_tensor(R.mean(0))).numpy()  # the clip's bias
                    rows.append((f"{clip.name} {side}", meth, ra, shape, turn.mean(), tilt.mean(), angle(mean_R),
                                 angle(np.einsum("tij,kj->tik", R, mean_R)).mean()))
    print_table("Per hand track", ["hand track", "method", "RA-MPJPE mm", "without orientation mm", "turn deg",
                                   "tilt deg", "clip bias deg", "about the bias deg"],
                [(r[0], r[1], *(f"{v:.1f}" for v in r[2:])) for r in rows])
    means = []
    for meth in METHODS:
        sel = np.array([r[2:] for r in rows if r[1] == meth])
        if len(sel):
            means.append((meth, *(f"{v:.1f}" for v in sel.mean(0))))
    print_table("Mean over hand tracks", ["method", "RA-MPJPE mm", "without orientation mm", "turn deg", "tilt deg",
                                          "clip bias deg", "about the bias deg"], means)
    return 0


if __name__ == "__main__":
    sys.exit(main())
