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

Prints markdown tables (benchmarks/mdtable.py): **Held-out sets** (each set's file, sequences,
frames, windows, takes), **Reconstruction error on held-out motion** (mean joint error in mm: a row
for the mean-pose baseline and one per prior, a column per held-out set, the shape of docs/prior.md's
table), **Prior size and error against the mean-pose baseline** (parameters, each error / the
baseline's) and **Prior encode + decode speed** (the last prior).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from mdtable import print_table  # noqa: E402


def _frames(seqs, fps):
    return sum(len(s["hand_pose"]) * fps / s["fps"] for s in seqs)


def _takes(seqs):
    return ", ".join(sorted({s["name"].split("@")[0] for s in seqs}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", nargs="+", default=None, help="checkpoints, name=path or path (default: shipped)")
    ap.add_argument("--held-out", default=None, help="held-out motion file (default: the held-out source)")
    args = ap.parse_args()
    import torch

    from engine.prior import DEFAULT_WEIGHTS, load_prior
    from engine.prior.data import load_sequences
    from engine.prior.train import (HELD_OUT_SOURCE, LEAP_BUNDLE, TRAINING_DATA, evaluate, make_windows,
                                    mean_pose_error, training_sequences)

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
    sets = [("held-out source", held_path.name, held, hp_src)]
    columns = [("held-out source", hp_src, go_src)]
    for label, path in (("Leap held-out takes", LEAP_BUNDLE), ("synthetic held-out", TRAINING_DATA[-1])):
        _, _, te = training_sequences([ROOT / path])
        hp_te, go_te = make_windows(te, window, fps, augment=False)
        sets.append((label, f"{Path(path).name} (train-prior's split)", te, hp_te))
        columns.append((label, hp_te, go_te))
    m = priors[0][1]
    base = [mean_pose_error(m, hp_tr, c[1]) for c in columns]
    errors, sizes = [], []
    for name, prior in priors:
        if (prior.window, prior.fps) != (window, fps):
            print(f"{name}: window {prior.window} at {prior.fps:g} fps differs from the first prior's: skipped")
            continue
        errors.append((name, [evaluate(prior, c[1], c[2]) for c in columns]))
        sizes.append((name, sum(p.numel() for p in prior.parameters())))
    print_table("Held-out sets", ["set", "file", "sequences", f"frames at {fps:g} fps", "windows", "takes"],
                [[label, file, len(seqs), f"{_frames(seqs, fps):.0f}", len(hp), _takes(seqs)]
                 for label, file, seqs, hp in sets],
                f"windows of {window} frames at {fps:g} fps, stride {max(1, window // 4)} (engine.prior.data.windows)")
    print_table("Reconstruction error on held-out motion",
                ["mean joint error, mm", f"held-out source ({held_path.stem}, {len(hp_src)} windows)"]
                + [f"{c[0]} ({len(c[1])} windows)" for c in columns[1:]],
                [["mean-pose baseline"] + [f"{b:.2f}" for b in base]]
                + [[name] + [f"{e:.2f}" for e in errs] for name, errs in errors],
                "encode to mu + decode; the true root, the decoded finger joints; mean-pose baseline: "
                "the training windows' mean pose for every frame")
    print_table("Prior size and error against the mean-pose baseline",
                ["prior", "parameters M"] + [f"{c[0]} / baseline" for c in columns],
                [[name, f"{params / 1e6:.2f}"] + [f"{e / b:.2f}" for e, b in zip(errs, base)]
                 for (name, params), (_, errs) in zip(sizes, errors)])
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
    print_table("Prior encode + decode speed", ["prior", "frames", "windows", "encode + decode ms on CPU",
                                                "torch threads"],
                [[priors[-1][0], "1,000", W, f"{sec * 1000:.1f}", torch.get_num_threads()]],
                "batched, mean of 5 runs after a warm-up")


if __name__ == "__main__":
    main()
