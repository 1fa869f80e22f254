"""Real footage, per stage: how the fit sits on the detections it was made from (no ground truth).

    .venv/bin/python benchmarks/bench_real.py [CLIP[:hands] ...] [--quality balanced] [--threads 1]
        [--set KEY=VALUE ...]   # FitOptions overrides, e.g. --set prior_weighting=literal

Default clips: the bundled demo clip, tests/data/asl_hand_50.mp4 and the two-hand test clip when
present. Each clip is detected once (the detection cache), then the per-frame estimate, stage I and
stage II run in process, and ``engine.evaluation.report.hand_report`` measures each against the raw
detections: distance to confident detections (all joints, fingertips, wrist), image-space acceleration
against the raw detections', camera-space wrist and root-relative acceleration. Prints one markdown
table per clip and hand, titled ``**CLIP, SIDE hand**``, then ``**Targets (issue 11)**``: stage II's
distance <= 1.2x the per-frame estimate's, image acceleration <= 0.6x the raw detections', camera-space
wrist acceleration <= 0.5x the per-frame estimate's.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fit import parse_overrides  # noqa: E402  (one parser of FitOptions overrides)
from mdtable import print_table  # noqa: E402

DEFAULT_CLIPS = ["demo/human_hand_video.mp4:right", "tests/data/asl_hand_50.mp4:right",
                 "tests/data/squats_two_hands.mp4:both"]


def detect_clip(path, hands, quality, device="cpu"):
    """A clip as the benchmarks on real footage read it: (video, guessed K (3,3), {side: HandTrack},
    the motion prior, the quality preset); detections through the cache."""
    from engine.capture import QUALITY_PRESETS
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.prior import load_prior
    from engine.video import guess_intrinsics, open_video

    preset = QUALITY_PRESETS[quality]
    video = open_video(path)
    K = np.asarray(guess_intrinsics(video.width, video.height), np.float64)
    sides = ("right", "left") if hands == "both" else (hands,)
    tracks = detect_hands(video, sides=sides, options=KeypointOptions(views=preset["views"]))
    return video, K, tracks, load_prior(device=device), preset


def estimated_hands(path, hands, quality, device="cpu"):
    """``detect_clip``, then the per-frame estimate of each hand the clip shows: (video, K, prior,
    preset, [(side, track, model, estimate, the estimate's seconds)])."""
    from engine.contract import result as R
    from engine.fit.per_frame import per_frame_estimate
    from engine.hand_model import load_hand_model

    video, K, tracks, prior, preset = detect_clip(path, hands, quality, device)
    found = []
    for side, track in tracks.items():
        if track is None or not np.any(track.source != R.SOURCE_NONE):
            continue
        model = load_hand_model(side, device=device)
        t0 = time.time()
        est = per_frame_estimate(model, track, K, video.fps)
        found.append((side, track, model, est, time.time() - t0))
    return video, K, prior, preset, found


def fit_options(preset, overrides):
    """FitOptions at a quality preset's iterations, with ``--set`` overrides."""
    from engine.fit.stages import FitOptions

    return FitOptions(iters_stage1=preset["iters"][0], iters_stage2=preset["iters"][1], **overrides)


def run_clip(path, hands, quality, overrides, device="cpu"):
    """{side: (figures per stage, seconds per step)}: the per-frame estimate, then stages I and II in
    one run (``fit_stages``: stage I's result is the one stage II starts from)."""
    from engine.evaluation.report import hand_report
    from engine.fit.stages import fit_stages

    video, K, prior, preset, found = estimated_hands(path, hands, quality, device)
    rows = {}
    for side, _, model, est, seconds in found:
        times = {"per-frame": seconds}
        fig = {"per-frame": hand_report(est["joints"], est["keypoints_2d"], est["confidence"],
                                        est["keypoint_source"], est["valid"], K)}
        t0 = time.time()
        fits = fit_stages(model, prior, est, est["keypoints_2d"], est["confidence"], K, video.fps, stages=2,
                          options=fit_options(preset, overrides))
        times["stages I + II"] = time.time() - t0
        for name, (out, warnings) in zip(("stage I", "stage II"), fits):
            fig[name] = hand_report(out["joints"], est["keypoints_2d"], est["confidence"],
                                    est["keypoint_source"], est["valid"], K)
            for w in warnings:
                print(f"  {side} {name}: {w}")
        rows[side] = (fig, times)
    return rows


def real_footage_args(doc, default_clips, argv=None):
    """The command line of a benchmark on real clips: (args, FitOptions overrides, clips as (path,
    hands) with a path in the repository made absolute), with torch's threads set and its seed fixed."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", help="VIDEO[:right|left|both] (default: see above)")
    ap.add_argument("--quality", default="balanced", choices=("draft", "balanced", "best"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1, as engine capture: on 2 shared cores a second thread cost 10x the CPU)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="FitOptions override")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clips = []
    for spec in args.clips or [c for c in default_clips if (ROOT / c.split(":")[0]).is_file()]:
        path, _, hands = spec.partition(":")
        if not Path(path).is_absolute() and (ROOT / path).is_file():
            path = str(ROOT / path)
        clips.append((path, hands or "right"))
    return args, parse_overrides(args.set), clips


def main(argv=None):
    from engine.evaluation.report import table

    args, overrides, clips = real_footage_args(__doc__, DEFAULT_CLIPS, argv)
    print(f"quality {args.quality}; overrides {overrides or 'none'}; torch threads {args.threads}")
    checks = []
    for path, hands in clips:
        rows = run_clip(path, hands, args.quality, overrides)
        for side, (fig, times) in rows.items():
            pf, s1, s2 = fig["per-frame"], fig["stage I"], fig["stage II"]
            # the table's title (tools/benchmark_tables.py), then this run's own details
            print(f"\n**{Path(path).name}, {side} hand**")
            print(f"{pf['detected']}/{pf['frames']} frames detected; fit seconds: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in times.items()) + "\n")
            print(table([(name, f) for name, f in fig.items()]))
            checks.append((f"{Path(path).name}, {side}", s2["dist_px"], s2["dist_px"] / pf["dist_px"],
                           s2["img_acc_px"] / pf["raw_acc_px"], s2["wrist_acc_mm"] / pf["wrist_acc_mm"],
                           s1["wrist_acc_mm"] / pf["wrist_acc_mm"]))
    print_table("Targets (issue 11)",
                ["clip, hand", "stage II px", "distance vs per-frame", "image acc vs raw", "wrist acc vs per-frame",
                 "stage I wrist acc vs per-frame", "targets"],
                [(name, f"{px:.2f}", f"{d:.2f}x", f"{a:.2f}x", f"{w:.2f}x", f"{w1:.2f}x",
                  "met" if d <= 1.2 and a <= 0.6 and w <= 0.5 else "**not met**")
                 for name, px, d, a, w, w1 in checks],
                detail="stage II's distance to confident detections at most 1.2x the per-frame estimate's, its image "
                       "acceleration at most 0.6x the raw detections', its camera-space wrist acceleration at most "
                       "0.5x the per-frame estimate's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
