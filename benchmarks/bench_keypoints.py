"""Keypoint front end: frames kept against plain MediaPipe, and speed on CPU.

    .venv/bin/python benchmarks/bench_keypoints.py [--frames 300] [--views 4] [--skip-speed] [--clips A.mp4 ...]

1. Frames kept, per clip (default: the bundled demo clip and the real clips in tests/data): plain
   MediaPipe, its Tasks ``HandLandmarker`` called directly on the shipped model bundle (VIDEO mode at
   the frames' own times, ``num_hands=2``, default thresholds) on every frame (frames with any hand;
   with a hand it labels right / left) against the front end
   (``detect_hands``, both hands, ``--views`` augmented views, gap retries on): frames kept as
   MediaPipe per side, frames filled on the tracked crop, and what was set aside and why.
2. Speed, on the demo clip (its first ``--frames`` frames, detection cache off): plain MediaPipe
   tracking vs + per-joint confidence (N = 4, 8), frames per second and the ratio to the plain pass.

Each is a markdown table (benchmarks/mdtable.py): **Frames kept: plain MediaPipe and the front end**
(a row per clip, printed as each is done) and **Detection speed with per-joint confidence**.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from mdtable import print_table, print_title, row  # noqa: E402

CLIPS = [ROOT / "demo" / "human_hand_video.mp4", ROOT / "tests" / "data" / "hand_short.mp4",
         ROOT / "tests" / "data" / "asl_hand_50.mp4", ROOT / "tests" / "data" / "squats_two_hands.mp4"]


def plain_mediapipe(video):
    """Frames where plain MediaPipe finds any hand, and a hand it labels right / left: the Tasks
    ``HandLandmarker`` on the shipped bundle, called directly (VIDEO mode, each frame at its own time
    in ms, kept strictly increasing; two hands; default thresholds)."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from engine.keypoints.detector import LABEL_TO_SIDE, MODEL_BUNDLE, quiet_native_stderr

    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(MODEL_BUNDLE)),
                                           running_mode=vision.RunningMode.VIDEO, num_hands=2)
    found = {"any": 0, "right": 0, "left": 0}
    last = -1
    with quiet_native_stderr(), vision.HandLandmarker.create_from_options(options) as hands:  # no TFLite chatter
        for _, rgb, t in video.frames(with_time=True):
            last = max(last + 1, int(round(t * 1000)) if t is not None and np.isfinite(t) else 0)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            res = hands.detect_for_video(image, last)
            labels = {LABEL_TO_SIDE[h[0].category_name] for h in res.handedness}
            found["any"] += bool(labels)
            for side in labels:
                found[side] += 1
    return found


def frames_kept(clips, views):
    from engine.contract import result as R
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    print_title("Frames kept: plain MediaPipe and the front end",
                ["clip", "frames", "plain: any", "plain: R", "plain: L", "kept: any", "kept: R", "kept: L",
                 "crop R", "crop L", "set aside / notes"],
                f"front end: both hands, views = {views}, gap retries on")
    for clip in clips:
        video = open_video(clip)
        plain = plain_mediapipe(video)
        tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(views=views, use_cache=False))
        right, left = tracks["right"], tracks["left"]
        kept_any = int(((right.source == R.SOURCE_MEDIAPIPE) | (left.source == R.SOURCE_MEDIAPIPE)).sum())
        notes = []
        for side, t in tracks.items():
            st = t.stats
            for key, what in (("duplicate_frames", "duplicate"), ("nested_frames", "nested"),
                              ("extra_hand_frames", "third hand"), ("low_confidence_frames", "views in doubt, kept")):
                if st[key]:
                    notes.append(f"{side[0].upper()} {st[key]} {what}")
        print(row([Path(clip).name, len(right.source), plain["any"], plain["right"], plain["left"], kept_any,
                   right.stats["kept_frames"], left.stats["kept_frames"], right.stats["filled_frames"],
                   left.stats["filled_frames"], ", ".join(notes) or None]), flush=True)


def speed(video_path, frames):
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    video = open_video(video_path)
    end = min(frames, video.num_frames)
    rows = []
    for views in (0, 4, 8):
        t0 = time.perf_counter()
        tracks = detect_hands(video, options=KeypointOptions(views=views, use_cache=False, end=end, retry_gaps=False))
        sec = time.perf_counter() - t0
        rows.append((views, sec, float(tracks["right"].detected.mean())))
    base = rows[0][1]
    print_table("Detection speed with per-joint confidence", ["setting", "seconds", "frames/s", "x plain", "detected"],
                [["plain (MediaPipe tracking)" if views == 0 else f"+ confidence, N = {views}", f"{sec:.2f}",
                  f"{end / sec:.1f}", f"{sec / base:.2f}", f"{det:.0%}"] for views, sec, det in rows],
                f"{Path(video_path).name}, {end} frames {video.width}x{video.height}, detection cache off")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(CLIPS[0]), help="clip for the speed figures")
    ap.add_argument("--frames", type=int, default=300, help="frames of --video for the speed figures")
    ap.add_argument("--views", type=int, default=4, help="augmented views for the frames-kept table")
    ap.add_argument("--clips", nargs="*", default=[str(c) for c in CLIPS], help="clips for the frames-kept table")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    frames_kept(args.clips, args.views)
    if not args.skip_speed:
        speed(args.video, args.frames)


if __name__ == "__main__":
    main()
