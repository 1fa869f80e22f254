"""Synthetic hand motion between the real static hand poses of handy.js (MIT), for the prior.

    .venv/bin/python tools/convert_handy.py SRC_DIR [--out engine/assets/prior/handy_synthetic.npz]

SRC_DIR holds ``Handy-poses-right.js`` and ``Handy-poses-left.js`` of stewdio/handy.js (folder
src): 56 poses per hand recorded with an Oculus Quest's hand tracking, each the 25 joint positions
of the OpenXR / WebXR hand layout (wrist; thumb metacarpal, proximal, distal, tip; then per finger
metacarpal, proximal, intermediate, distal, tip), millimetres, relative to the wrist.

1. Each pose -> the 21 MediaPipe-order keypoints (the thumb's metacarpal joint as its CMC, each
   finger's proximal joint as its MCP; the finger metacarpal joints are left out), left hands
   mirrored into right ones, then inverse kinematics on the open default hand model
   (``engine.fit.ik``, as tools/convert_leap.py does), one shape per hand.
2. SYNTHETIC motion (not a recording): sequences that go from a random pose to another random pose
   with minimum-jerk transitions (10s^3 - 15s^4 + 6s^5) of 0.3-1.0 s, each finger starting up to
   0.1 s apart; holds of 0.1-0.8 s between transitions; the wrist turns with each transition by a
   random rotation of up to 40 degrees and holds still in between; smooth noise (about 1 degree,
   Gaussian-filtered over 0.1 s) on every joint. 30 fps, per joint SLERP (roma), a fixed seed.

The bundle (``{name}/hand_pose`` (T,45), ``/global_orient`` (T,3), ``/fps``; the converted static
poses as ``poses/hand_pose`` etc. are in ``--poses-out``) is read by ``engine.prior.data``.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FPS = 30.0
# OpenXR joint of each MediaPipe keypoint: wrist, thumb CMC..tip, then MCP, PIP, DIP, tip per finger
OPENXR_OF_MEDIAPIPE = [0, 1, 2, 3, 4] + [5 * f + k for f in range(1, 5) for k in (1, 2, 3, 4)]
# MANO hand_pose joints (15, MANO order: index 3, middle 3, pinky 3, ring 3, thumb 3) per finger
FINGER_JOINTS = {"index": [0, 1, 2], "middle": [3, 4, 5], "pinky": [6, 7, 8], "ring": [9, 10, 11],
                 "thumb": [12, 13, 14]}


def read_poses(path):
    """[(name, handedness, (25,3) mm)] from a Handy-poses-*.js file (one JSON object a line)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip().rstrip(",")
        if not line.startswith('{"names"'):
            continue
        p = json.loads(line)
        out.append((p["names"][0], p["handedness"], np.asarray(p["jointPositions"], dtype=np.float64)))
    if not out:
        raise SystemExit(f"no poses in {path}")
    return out


def keypoints(joints25, handedness):
    kp = joints25[OPENXR_OF_MEDIAPIPE] / 1000.0
    return kp * np.array([-1.0, 1.0, 1.0]) if handedness == "left" else kp


def min_jerk(s):
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def slerp(r0, r1, w):
    """Per joint SLERP between rotation vectors r0, r1 (...,3) with weights w (broadcast)."""
    import roma
    import torch

    q0 = roma.rotvec_to_unitquat(torch.as_tensor(r0))
    q1 = roma.rotvec_to_unitquat(torch.as_tensor(r1))
    q1 = torch.where((q0 * q1).sum(-1, keepdim=True) < 0, -q1, q1)
    rel = roma.quat_product(roma.quat_conjugation(q0), q1)
    step = roma.rotvec_to_unitquat(roma.unitquat_to_rotvec(rel) * torch.as_tensor(w)[..., None])
    return roma.unitquat_to_rotvec(roma.quat_product(q0, step)).numpy()


def compose(a, b):
    import roma
    import torch

    return roma.rotvec_composition([torch.as_tensor(a), torch.as_tensor(b)]).numpy()


def synthesize(poses, seconds, rng):
    """One synthetic sequence of about ``seconds``: hand_pose (T,45), global_orient (T,3)."""
    from scipy.ndimage import gaussian_filter1d

    hp, go = [], []
    cur = poses[rng.integers(len(poses))].reshape(15, 3)
    wrist = rng.normal(size=3)
    wrist *= np.deg2rad(rng.uniform(0, 40)) / np.linalg.norm(wrist)
    n = 0
    while n < seconds * FPS:
        hold = int(round(rng.uniform(0.1, 0.8) * FPS))
        hp += [cur.reshape(45)] * hold
        go += [wrist] * hold
        nxt = poses[rng.integers(len(poses))].reshape(15, 3)
        axis = rng.normal(size=3)
        turn = axis / np.linalg.norm(axis) * np.deg2rad(rng.uniform(0, 40))
        wrist_next = compose(turn, wrist)
        dur = rng.uniform(0.3, 1.0)
        lag = np.zeros(15)
        for joints in FINGER_JOINTS.values():
            lag[joints] = rng.uniform(0, 0.1)
        t = np.arange(1, int(round((dur + 0.1) * FPS)) + 1) / FPS  # (K,)
        w = min_jerk((t[:, None] - lag[None]) / dur)  # (K,15)
        hp += list(slerp(np.broadcast_to(cur, (len(t), 15, 3)), np.broadcast_to(nxt, (len(t), 15, 3)), w)
                   .reshape(-1, 45))
        go += list(slerp(np.broadcast_to(wrist, (len(t), 3)), np.broadcast_to(wrist_next, (len(t), 3)),
                         min_jerk(t / dur)))
        cur, wrist = nxt, wrist_next
        n = len(hp)
    hp, go = np.stack(hp), np.stack(go)
    noise = gaussian_filter1d(rng.normal(size=hp.shape), sigma=0.1 * FPS, axis=0)
    noise *= np.deg2rad(1.0) / max(noise.std(), 1e-9)
    return hp + noise, go


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("--out", default=str(ROOT / "engine" / "assets" / "prior" / "handy_synthetic.npz"))
    ap.add_argument("--poses-out", default=str(ROOT / "engine" / "assets" / "prior" / "handy_poses.npz"))
    ap.add_argument("--sequences", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each synthetic sequence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = ap.parse_args()

    import torch

    from engine.fit.ik import ik_from_keypoints3d
    from engine.hand_model import load_hand_model

    torch.set_num_threads(args.threads)
    model = load_hand_model("right")
    poses, names, orients, kps = [], [], [], []
    for side in ("right", "left"):
        items = read_poses(Path(args.src) / f"Handy-poses-{side}.js")
        kp = np.stack([keypoints(j, h) for _, h, j in items])
        fit = ik_from_keypoints3d(model, torch.as_tensor(kp, dtype=torch.float32), iters=args.iters)
        res = fit["residual"].numpy()
        print(f"{side}: {len(items)} poses, IK residual {float(res.mean()) * 1000:.1f} mm "
              f"(worst {float(res.max()) * 1000:.1f} mm, {items[int(np.argmax(res))][0]})")
        poses.append(fit["hand_pose"].numpy())
        orients.append(fit["global_orient"].numpy())
        kps.append(kp)
        names += [f"{side}:{re.sub(r'[^A-Za-z0-9_-]', '_', n)}" for n, _, _ in items]
    poses = np.concatenate(poses).astype(np.float64)
    np.savez_compressed(args.poses_out, **{"poses/hand_pose": poses.astype(np.float32),
                                           "poses/global_orient": np.concatenate(orients).astype(np.float32),
                                           "poses/keypoints": np.concatenate(kps).astype(np.float32),
                                           "poses/names": np.array(names)})
    rng = np.random.default_rng(args.seed)
    arrays = {}
    total = 0
    for k in range(args.sequences):
        hp, go = synthesize(poses, args.seconds, rng)
        key = f"synthetic-handy-{k:02d}"
        arrays[f"{key}/hand_pose"] = hp.astype(np.float32)
        arrays[f"{key}/global_orient"] = go.astype(np.float32)
        arrays[f"{key}/fps"] = np.array(FPS)
        total += len(hp)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.poses_out}: {len(poses)} static poses; {args.out}: {total} SYNTHETIC frames at "
          f"{FPS:g} fps in {args.sequences} sequences")


if __name__ == "__main__":
    main()
