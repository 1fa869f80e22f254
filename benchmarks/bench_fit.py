"""Fit speed per stage: stage I and stage II on a 300-frame clip (CPU by default).

    .venv/bin/python benchmarks/bench_fit.py [--frames 300] [--device cpu] [--threads 1]
                                             [--quality draft|balanced|best] [--no-early-stop]

Isolates the fit from detection: the clip is real hand motion the prior never trained on (the
longest take of the held-out recording source, ``HELD_OUT``: Leap Motion recordings of another
repository than the training data's; without that file, the longest take of the prior's held-out
split), seen from 0.5 m, projected with a 900 px camera, with 2 px of 2D noise, 4 mm of noise on the
3D landmarks and a 6-frame gap, then through the per-frame estimate. Times the per-frame estimate,
stage I alone (``stages=1``), and stages I + II (``stages=2``); stage II's own time is the difference.
Prints a line describing the run, then two markdown tables (benchmarks/mdtable.py): **Fit speed per
stage** (seconds, frames per second and milliseconds per iteration of each step) and **Fit accuracy
per stage** (each step's errors against the known motion, engine.evaluation.metrics: root-aligned and
camera-space errors, wrist, 2D; a column per metric, as ``engine benchmark``'s tables).
``--threads 1`` by default (a shared machine); pass 0 for torch's default.
"""

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from mdtable import print_table  # noqa: E402

K = np.array([[900.0, 0, 320], [0, 900.0, 240], [0, 0, 1]])
FPS = 30.0
HELD_OUT = ROOT / "benchmarks" / "data" / "leap_javascript_v2.npz"


def parse_overrides(items):
    """["key=value", ...] -> {key: value} for FitOptions (values read as Python literals when they are)."""
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def held_out_sequences():
    """Motion the shipped prior never trained on: the held-out recording source when present, else
    the held-out takes of the prior's own split."""
    from engine.prior.data import load_sequences, split_by_take
    from engine.prior.train import LEAP_BUNDLE, dedupe_takes

    if HELD_OUT.is_file():
        return load_sequences([HELD_OUT])
    seqs = dedupe_takes(load_sequences([ROOT / LEAP_BUNDLE]))
    return [seqs[i] for i in split_by_take(seqs, 0.15)[1]]


def clip(model, frames, seed=0):
    """Known motion (T,21,3) m and a detector-like HandTrack of it."""
    import roma
    import torch

    from engine.contract import result as R
    from engine.keypoints import HandTrack
    from engine.util.camera import project
    seq = max(held_out_sequences(), key=lambda s: len(s["hand_pose"]))
    idx = np.arange(frames) % len(seq["hand_pose"])  # loops only if the take is shorter than asked
    hp = torch.as_tensor(seq["hand_pose"][idx], dtype=torch.float32)
    leap_to_camera = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # Leap: y up, z towards the user
    go = roma.rotmat_to_rotvec(leap_to_camera @ roma.rotvec_to_rotmat(
        torch.as_tensor(seq["global_orient"][idx], dtype=torch.float32)))
    with torch.no_grad():
        kp = model(go, hp, torch.zeros(10), torch.zeros(frames, 3), vertices=False).keypoints
        kp = kp - kp[:, :1].mean(0, keepdim=True) + torch.tensor([0.0, 0.0, 0.5])
    gt = kp.cpu().numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    kp2d = project(gt, K) + rng.normal(0, 2.0, (frames, 21, 2))
    world = gt - gt[:, :1] + rng.normal(0, 0.004, (frames, 21, 3))
    track = HandTrack(kp2d, np.full((frames, 21), 0.9), np.full(frames, R.SOURCE_MEDIAPIPE, np.uint8), world,
                      np.arange(frames), np.full(frames, 0.9))
    gap = slice(frames // 2, frames // 2 + 6)
    track.source[gap] = R.SOURCE_NONE
    track.keypoints_2d[gap] = 0
    track.confidence[gap] = 0
    track.world_landmarks[gap] = np.nan
    return gt, track, seq["name"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quality", default="balanced", choices=("draft", "balanced", "best"))
    ap.add_argument("--no-early-stop", action="store_true", help="run every iteration (tol 0)")
    ap.add_argument("--root-motion", default=None, choices=("prior", "free", "filtered"),
                    help="stage II's global rotation (default: the fit's default)")
    ap.add_argument("--literal", action="store_true", help="the method's table read literally (FitOptions.literal)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="FitOptions override, e.g. --set finger_residual=False")
    args = ap.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from engine.capture import QUALITY_PRESETS
    from engine.evaluation.metrics import METRICS, all_metrics
    from engine.fit.per_frame import per_frame_estimate
    from engine.fit.stages import FitOptions, fit_sequence
    from engine.hand_model import load_hand_model
    from engine.prior import load_prior
    from engine.util.device import resolve_device

    device = resolve_device(args.device)
    iters = QUALITY_PRESETS[args.quality]["iters"]
    model = load_hand_model("right", device=device)
    prior = load_prior(device=device)
    gt, track, name = clip(model, args.frames)
    print(f"{args.frames} frames of '{name}' at {FPS:g} fps, device {device}, torch threads "
          f"{torch.get_num_threads()}, quality {args.quality} ({iters[0]} + {iters[1]} iterations"
          f"{', no early stop' if args.no_early_stop else ''}), prior window {prior.window} at {prior.fps:g} fps, "
          f"stage II root motion {FitOptions().root_motion if args.root_motion is None else args.root_motion}"
          + (", the method's table read literally" if args.literal else "")
          + (f", options {', '.join(args.set)}" if args.set else ""))

    rows = []
    t0 = time.perf_counter()
    est = per_frame_estimate(model, track, K, FPS)
    rows.append(("per-frame estimate", time.perf_counter() - t0, None, all_metrics(est["joints"], gt, K=K)))
    overrides = parse_overrides(args.set)
    if args.root_motion:
        overrides["root_motion"] = args.root_motion
    opts = (FitOptions.literal if args.literal else FitOptions)(iters_stage1=iters[0], iters_stage2=iters[1],
                                                                **overrides)
    if args.no_early_stop:
        opts.tol1 = opts.tol2 = 0.0
    times = {}
    for stages in (1, 2):
        t0 = time.perf_counter()
        out, warnings = fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS,
                                     stages=stages, options=opts)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times[stages] = time.perf_counter() - t0
        for w in warnings:
            print("warning:", w)
        rows.append(("stage I" if stages == 1 else "stages I + II", times[stages],
                     iters[0] if stages == 1 else iters[0] + iters[1], all_metrics(out["joints"], gt, K=K)))
    rows.insert(2, ("stage II alone (difference)", times[2] - times[1], iters[1], None))

    print_table("Fit speed per stage", ["step", "seconds", "frames/s", "ms/iter"],
                [[label, f"{sec:.2f}", f"{args.frames / sec:.1f}", f"{1000 * sec / n_iter:.1f}" if n_iter else None]
                 for label, sec, n_iter, _ in rows],
                "every iteration run (no early stop)" if args.no_early_stop else
                "ms/iter is an upper bound when the early stop ends a stage before its iteration count")
    print_table("Fit accuracy per stage", ["step", *METRICS],
                [[label] + [f"{m[name]:.2f}" for name in METRICS] for label, _, _, m in rows if m],
                "against the known motion: mm; RA-ACC and wrist acc. mm/frame^2; 2D px")


if __name__ == "__main__":
    main()
