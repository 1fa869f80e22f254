"""Motion prior: reconstruction error on a held-out SOURCE, and encode + decode speed on CPU.

    .venv/bin/python benchmarks/bench_prior.py [--prior PATH ...] [--held-out FILE]

Reconstruction: every window (64 frames, stride 16) of ``--held-out`` (default
benchmarks/data/leap_javascript_v2.npz: Leap Motion recordings of another repository, which
training never sees), encoded to mu and decoded; mean joint position error through the hand
model's kinematics (mm, the true root, decoded finger joints). Next to it, in the same run: the
mean-pose baseline (the training windows' mean pose for every frame) and each prior's error on the
held-out takes of the Leap bundle and of the synthetic bundle (``train-prior``'s split: never
trained on by the shipped prior). ``--prior`` takes several
checkpoints (``name=path`` or a path; default: the shipped weights), so an old and a new prior are
measured on the same windows. Speed: encode + decode of 1,000 frames (in windows), batched, CPU.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", nargs="+", default=None, help="checkpoints, name=path or path (default: shipped)")
    ap.add_argument("--held-out", default=None, help="held-out motion file (default: the held-out source)")
    args = ap.parse_args()
    import torch

    from engine.prior import DEFAULT_WEIGHTS, load_prior
    from engine.prior.data import load_sequences
    from engine.prior.train import (HELD_OUT_SOURCE, LEAP_BUNDLE, TRAINING_DATA, evaluate, make_windows, mean_pose_error,
                                    training_sequences)

    priors = []
    for spec in args.prior or [f"shipped={DEFAULT_WEIGHTS}"]:
        name, _, path = spec.rpartition("=")
        priors.append((name or Path(path).stem, load_prior(path)))
    window, fps = priors[0][1].window, priors[0][1].fps
    held_path = Path(args.held_out) if args.held_out else ROOT / HELD_OUT_SOURCE
    held = load_sequences([held_path])
    hp_src, go_src = make_windows(held, window, fps, augment=False)
    _, tr, _ = training_sequences([ROOT / d for d in TRAINING_DATA])
    hp_tr, _ = make_windows(tr, window, fps, augment=False)
    frames = sum(len(s["hand_pose"]) * fps / s["fps"] for s in held)
    print(f"held-out source: {held_path.name}: {len(held)} sequences, {frames:.0f} frames at {fps:g} fps, "
          f"{len(hp_src)} windows of {window} frames")
    columns = [("held-out source", hp_src, go_src)]
    for label, path in (("Leap held-out takes", LEAP_BUNDLE), ("synthetic held-out", TRAINING_DATA[-1])):
        _, _, te = training_sequences([ROOT / path])
        hp_te, go_te = make_windows(te, window, fps, augment=False)
        print(f"{label} (train-prior's split of {Path(path).name}): {len(hp_te)} windows "
              f"({sorted({s['name'].split('@')[0] for s in te})})")
        columns.append((label, hp_te, go_te))
    m = priors[0][1]
    print(f"{'':24s}" + "".join(f"{c[0]:>22s}" for c in columns))
    base = [mean_pose_error(m, hp_tr, c[1]) for c in columns]
    print(f"{'mean-pose baseline':24s}" + "".join(f"{b:19.2f} mm" for b in base))
    for name, prior in priors:
        if (prior.window, prior.fps) != (window, fps):
            print(f"{name}: window {prior.window} at {prior.fps:g} fps differs from the first prior's: skipped")
            continue
        params = sum(p.numel() for p in prior.parameters())
        errs = [evaluate(prior, c[1], c[2]) for c in columns]
        print(f"{name + f' ({params / 1e6:.2f} M)':24s}" + "".join(f"{e:19.2f} mm" for e in errs)
              + f"   (held-out source: {errs[0] / base[0]:.2f} of the baseline)")
    prior = priors[-1][1]
    W = -(-1000 // prior.window)
    hp = torch.zeros(W, prior.window, 45)
    with torch.no_grad():
        prior.decode(prior.encode(hp)[0], prior.default_times(W))  # warm-up
        t0 = time.perf_counter()
        for _ in range(5):
            mu, _ = prior.encode(hp)
            prior.decode(mu, prior.default_times(W))
        sec = (time.perf_counter() - t0) / 5
    print(f"encode + decode of 1,000 frames ({W} windows, {priors[-1][0]}): {sec * 1000:.1f} ms on CPU "
          f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
