"""Capture speed on CPU: detection, per-frame fit, stage I, stage II, and the whole capture.

    .venv/bin/python benchmarks/bench_capture.py [--frames 300] [--device cpu] [--quality balanced]

Uses the bundled demo clip (demo/human_hand_video.mp4, 1280x720, 30 fps). Prints frames per second
for each step, and the whole capture's time against the 10-second-clip-in-60-seconds target.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(ROOT / "demo" / "human_hand_video.mp4"))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quality", default="balanced", choices=("draft", "balanced", "best"))
    args = ap.parse_args()

    import torch

    from engine import keypoints as kp
    from engine.capture import QUALITY_PRESETS
    from engine.util.device import resolve_device
    from engine.fit.per_frame import per_frame_estimate
    from engine.hand_model import load_hand_model
    from engine.video import guess_intrinsics, open_video

    device = resolve_device(args.device)
    preset = QUALITY_PRESETS[args.quality]
    video = open_video(args.video)
    end = min(args.frames, video.num_frames)
    K = guess_intrinsics(video.width, video.height)
    model = load_hand_model("right", device=device)
    print(f"clip {Path(args.video).name}: {end} frames {video.width}x{video.height}, device {device}, "
          f"torch threads {torch.get_num_threads()}, quality {args.quality}")

    rows = []
    t0 = time.perf_counter()
    tracks = kp.detect_hands(video, sides=("right",), options=kp.KeypointOptions(views=0, use_cache=False, end=end))
    t_detect = time.perf_counter() - t0
    rows.append(("detect (MediaPipe, tracking)", t_detect))
    if preset["views"]:
        t0 = time.perf_counter()
        kp.detect_hands(video, sides=("right",),
                        options=kp.KeypointOptions(views=preset["views"], use_cache=False, end=end))
        rows.append((f"detect + confidence (N={preset['views']})", time.perf_counter() - t0))
        tracks = None
    if tracks is None:
        tracks = kp.detect_hands(video, sides=("right",), options=kp.KeypointOptions(views=0, use_cache=False, end=end))
    track = tracks["right"]
    fps = video.fps

    t0 = time.perf_counter()
    est = per_frame_estimate(model, track, K, fps)
    rows.append(("per-frame estimate (IK + placement)", time.perf_counter() - t0))

    from engine.fit.stages import FitOptions, fit_sequence
    from engine.prior import load_prior

    prior = load_prior(device=device)
    for stages in (1, 2):
        opts = FitOptions(iters_stage1=preset["iters"][0], iters_stage2=preset["iters"][1])
        t0 = time.perf_counter()
        fit_sequence(model, prior if stages == 2 else None, est, est["keypoints_2d"], est["confidence"], K, fps,
                     stages=stages, options=opts)
        rows.append((f"fit stages 1..{stages}", time.perf_counter() - t0))

    print(f"\n{'step':40s} {'seconds':>9s} {'frames/s':>9s}")
    for name, sec in rows:
        print(f"{name:40s} {sec:9.2f} {end / sec:9.1f}")
    total = (rows[1][1] if preset["views"] else rows[0][1]) + rows[-3][1] + rows[-1][1]
    per10s = total * (10 * fps) / end
    print(f"\nwhole capture (detect{' + confidence' if preset['views'] else ''} + per-frame + stages I-II): "
          f"{total:.1f} s for {end} frames -> {per10s:.1f} s per 10-second clip "
          f"({per10s / 60:.2f}x the 60 s target; below 1 meets it)")
    print(f"per-frame fit vs detection time ratio: {rows[-3][1] / t_detect:.2f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
