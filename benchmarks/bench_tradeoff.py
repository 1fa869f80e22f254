"""Real footage: stage II's closeness to the detections against its smoothness, over stage II's weights.

    .venv/bin/python benchmarks/bench_tradeoff.py [CLIP[:hands] ...] [--quality draft]
        [--variant NAME:KEY=VALUE,KEY=VALUE ...]   # stage II weight changes (weights2), e.g. res_s=0.3

Issue 21 asks of stage II on real clips both a distance to confident detections within 1.2x the
per-frame estimate's and an image acceleration at most 0.6x the raw detections'. The per-frame
estimate fits each frame's keypoints (its distance is the detections' own noise plus the model's
misfit), so the two pull against each other: this prints, per clip and hand, each variant's distance
ratio and acceleration ratio, so the trade-off is a measured curve rather than one point. Each clip is
detected (cache) and estimated per frame once; each variant then runs both stages (stage I does not
depend on stage II's weights, so it comes out the same every time: the engine has no entry point for
stage II alone).

Prints ``**CLIP, SIDE hand**`` (a row per variant: distance, its ratio to the per-frame estimate's,
image acceleration against the raw detections', fingertips' distance), then ``**Stage II variants on
every clip**`` (a row per variant, a column per clip and hand: distance ratio, acceleration ratio; and
how many hand tracks meet both targets).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_real import DEFAULT_CLIPS, estimated_hands, fit_options, real_footage_args  # noqa: E402
from mdtable import print_table, print_title, row  # noqa: E402

# stage II weight changes measured by default, each against the defaults (engine/fit/options.py
# STAGE2_WEIGHTS / STAGE2_ADDED: res_s 0.1, ja 0.01, res 0.02, 2d 0.05): the finger residual's
# smoothness (1 before issue 21) and size, the joint acceleration, the 2D term
DEFAULT_VARIANTS = [
    "default:",
    "res_s 1 (before issue 21):res_s=1",
    "res_s 0.3:res_s=0.3",
    "res_s 0.03:res_s=0.03",
    "L_ja 0.0033:ja=0.00333",
    "res 0.005:res=0.005",
    "L_2D 0.1:2d=0.1",
    "L_2D 0.2:2d=0.2",
]


def parse_variant(spec):
    """"NAME:KEY=VALUE,..." -> (name, {weight: value})."""
    name, _, body = spec.partition(":")
    changes = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        changes[key.strip()] = float(value)
    return name, changes


def main(argv=None):
    import argparse

    from engine.evaluation.report import hand_report
    from engine.fit.stages import fit_sequence

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--variant", action="append", default=[])
    known, rest = extra.parse_known_args(argv)
    args, overrides, clips = real_footage_args(__doc__, DEFAULT_CLIPS, rest)
    variants = [parse_variant(v) for v in (known.variant or DEFAULT_VARIANTS)]
    lines, tracks = [], []
    for path, hands in clips:
        video, K, prior, preset, found = estimated_hands(path, hands, args.quality)
        for side, _, model, est, _ in found:
            pf = hand_report(est["joints"], est["keypoints_2d"], est["confidence"], est["keypoint_source"],
                             est["valid"], K)
            tracks.append(f"{Path(path).name}, {side}")
            print_title(f"{tracks[-1]} hand", ["variant", "distance px", "x per-frame", "image acc x raw", "tips px",
                                               "both targets"],
                        detail=f"per-frame estimate {pf['dist_px']:.2f} px from the detections; raw detections' "
                               f"image acceleration {pf['raw_acc_px']:.2f} px/f^2")
            for name, changes in variants:
                opts = fit_options(preset, overrides)
                opts.weights2 = {**opts.weights2, **changes}
                out, _ = fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, video.fps,
                                      stages=2, options=opts)
                f = hand_report(out["joints"], est["keypoints_2d"], est["confidence"], est["keypoint_source"],
                                est["valid"], K)
                d, a = f["dist_px"] / pf["dist_px"], f["img_acc_px"] / pf["raw_acc_px"]
                ok = "met" if d <= 1.2 and a <= 0.6 else "-"
                print(row([name, f"{f['dist_px']:.2f}", f"{d:.2f}x", f"{a:.2f}x", f"{f['tips_px']:.2f}", ok]),
                      flush=True)
                lines.append((tracks[-1], name, d, a))
    summary = []
    for name, _ in variants:
        cells = {t: (d, a) for t, n, d, a in lines if n == name}
        met = sum(d <= 1.2 and a <= 0.6 for d, a in cells.values())
        summary.append([name, *(f"{cells[t][0]:.2f}x, {cells[t][1]:.2f}x" for t in tracks), f"{met}/{len(tracks)}"])
    print_table("Stage II variants on every clip", ["variant", *tracks, "tracks meeting both"], summary,
                detail="each cell: distance to confident detections vs the per-frame estimate's, image acceleration "
                       "vs the raw detections' (targets: at most 1.2x and 0.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
