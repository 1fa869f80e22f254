"""Motion prior: held-out reconstruction error and encode + decode speed on CPU.

    .venv/bin/python benchmarks/bench_prior.py [--prior PATH]

Reconstruction: windows of the held-out takes of the shipped Leap data, encoded to mu and decoded,
joint position error through the hand model's kinematics (mm), next to the mean-pose baseline
(the training windows' mean pose for every frame), measured in the same run. Speed: encode +
decode of 1,000 frames (in windows of the prior's length), batched, CPU.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", default=None)
    args = ap.parse_args()
    import torch

    from engine.prior import load_prior
    from engine.prior.data import load_sequences, split_by_take
    from engine.prior.train import LEAP_BUNDLE, dedupe_takes, evaluate, make_windows, mean_pose_error

    prior = load_prior(args.prior)
    seqs = dedupe_takes(load_sequences([ROOT / LEAP_BUNDLE]))
    tr, te = split_by_take(seqs, 0.15)
    hp_te, go_te = make_windows([seqs[i] for i in te], prior.window, prior.fps, augment=False)
    hp_tr, _ = make_windows([seqs[i] for i in tr], prior.window, prior.fps, augment=False)
    err = evaluate(prior, hp_te, go_te)
    base = mean_pose_error(prior, hp_tr, hp_te)
    params = sum(p.numel() for p in prior.parameters())
    print(f"prior: window {prior.window} frames at {prior.fps:g} fps, latent {prior.latent}, {params / 1e6:.2f} M parameters")
    print(f"held-out windows: {len(hp_te)} (takes: {sorted({seqs[i]['name'].split('@')[0] for i in te})})")
    print(f"held-out reconstruction: {err:.2f} mm; mean-pose baseline {base:.2f} mm; ratio {err / base:.2f}")
    W = -(-1000 // prior.window)
    hp = torch.zeros(W, prior.window, 45)
    with torch.no_grad():
        prior.decode(prior.encode(hp)[0], prior.default_times(W))  # warm-up
        t0 = time.perf_counter()
        for _ in range(5):
            mu, _ = prior.encode(hp)
            prior.decode(mu, prior.default_times(W))
        sec = (time.perf_counter() - t0) / 5
    print(f"encode + decode of 1,000 frames ({W} windows): {sec * 1000:.1f} ms on CPU "
          f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
