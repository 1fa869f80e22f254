"""Batched IK speed and accuracy on CPU: 300 frames of random plausible poses of the default hand.

    .venv/bin/python benchmarks/bench_ik.py

Recovers the poses from their own keypoints (``engine.fit.ik.ik_from_keypoints3d``) with 100, 200
(the default) and 400 iterations. Prints a markdown table (benchmarks/mdtable.py), **IK speed and
accuracy by iteration count**: frames per second and mean keypoint error (mm) per iteration count.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import print_title, row  # noqa: E402


def main():
    import roma
    import torch

    from engine.fit.ik import ik_from_keypoints3d
    from engine.hand_model import load_hand_model

    torch.manual_seed(0)
    model = load_hand_model("right")
    T = 300
    go = roma.random_rotvec(T)
    hp = (torch.rand(T, 45) - 0.3) * 0.8 * torch.tensor([0.3, 0.3, 1.0]).repeat(15)
    with torch.no_grad():
        kp = model(go, hp, torch.randn(10) * 0.8, torch.randn(T, 3) * 0.1, vertices=False).keypoints
    print_title("IK speed and accuracy by iteration count", ["iterations", "frames/s", "mean keypoint error mm"],
                f"{T} frames, CPU, {torch.get_num_threads()} torch threads")
    for iters in (100, 200, 400):
        t0 = time.perf_counter()
        fit = ik_from_keypoints3d(model, kp, iters=iters)
        sec = time.perf_counter() - t0
        print(row([iters, f"{T / sec:.1f}", f"{float(fit['residual'].mean()) * 1000:.2f}"]), flush=True)


if __name__ == "__main__":
    main()
