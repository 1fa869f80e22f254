"""Keypoint front end speed on CPU: plain MediaPipe tracking vs + per-joint confidence (N = 4, 8).

    .venv/bin/python benchmarks/bench_keypoints.py [--frames 300]

One run, on the bundled demo clip (1280x720), detection cache off. Prints frames per second and the
cost of each setting as a ratio to the plain tracked pass (the issue's target: N = 8 at most 10x).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(ROOT / "demo" / "human_hand_video.mp4"))
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    video = open_video(args.video)
    end = min(args.frames, video.num_frames)
    rows = []
    for views in (0, 4, 8):
        t0 = time.perf_counter()
        tracks = detect_hands(video, options=KeypointOptions(views=views, use_cache=False, end=end, retry_gaps=False))
        sec = time.perf_counter() - t0
        rows.append((views, sec, float(tracks["right"].detected.mean())))
    base = rows[0][1]
    print(f"{Path(args.video).name}, {end} frames {video.width}x{video.height}")
    print(f"{'setting':32s} {'seconds':>8s} {'fps':>7s} {'x plain':>8s} {'detected':>9s}")
    for views, sec, det in rows:
        name = "plain (MediaPipe tracking)" if views == 0 else f"+ confidence, N = {views}"
        print(f"{name:32s} {sec:8.2f} {end / sec:7.1f} {sec / base:8.2f} {det:9.0%}")


if __name__ == "__main__":
    main()
