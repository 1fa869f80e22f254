"""Peak memory of the per-frame estimate and the fit against the clip's length (issue 12, item 15).

    .venv/bin/python benchmarks/bench_memory.py [--frames 300 9000] [--fit-frames 300 4200]

Each measurement runs in a fresh Python (so peaks do not mix) on a synthetic one-hand track of the
given length (real Leap Motion motion looped, projected with a 900 px camera, MediaPipe-like noise;
no video, so detection is not part of it: the keypoint front end streams frames and holds only a
window of them). It prints the process's peak resident memory (ru_maxrss) after start-up (torch,
the hand model, the prior: the baseline, measured in the same process before the work) and after
the per-frame estimate, then after the two-stage fit (quality draft, for time). Memory that does not
grow with the clip means the work is bounded by a batch (the estimate's IK_CHUNK, the fit's
chunk_frames), and the 1-hour figure follows by extrapolating the per-frame slope, if any.

Prints two markdown tables (benchmarks/mdtable.py): **Peak memory by clip length** (a row per
measurement: the ``--frames`` runs, then the ``--fit-frames`` runs) and, with two or more
``--frames``, **Per-frame estimate memory growth** (the slope in kB per frame above start-up between
the first and the last of them, and the peak extrapolated to 1 hour at 30 fps).
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from mdtable import print_table  # noqa: E402


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(frames, fit):
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch

    torch.set_num_threads(2)
    from bench_fit import FPS, K, clip

    from engine.capture import QUALITY_PRESETS
    from engine.fit.per_frame import per_frame_estimate
    from engine.fit.stages import FitOptions, fit_sequence
    from engine.hand_model import load_hand_model
    from engine.prior import load_prior

    model = load_hand_model("right")
    prior = load_prior() if fit else None
    _, track, _ = clip(model, frames)
    base = _peak_mb()
    est = per_frame_estimate(model, track, K, FPS)
    after_estimate = _peak_mb()
    after_fit = None
    if fit:
        iters = QUALITY_PRESETS["draft"]["iters"]
        fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=2,
                     options=FitOptions(iters_stage1=iters[0], iters_stage2=iters[1]))
        after_fit = _peak_mb()
    print(json.dumps({"frames": frames, "baseline_mb": base, "estimate_mb": after_estimate, "fit_mb": after_fit}))


def measure(frames, fit):
    out = subprocess.run([sys.executable, __file__, "--child", str(frames)] + (["--fit"] if fit else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[300, 9000], help="per-frame estimate lengths")
    ap.add_argument("--fit-frames", type=int, nargs="+", default=[300, 4200], help="fit lengths (draft)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        child(args.child, args.fit)
        return 0
    rows = [measure(n, False) for n in args.frames] + [measure(n, True) for n in args.fit_frames]
    print_table("Peak memory by clip length",
                ["frames", "seconds at 30 fps", "start-up peak MB", "after per-frame estimate MB",
                 "after stages I+II (draft) MB"],
                [[r["frames"], f"{r['frames'] / 30:.0f}", f"{r['baseline_mb']:.0f}", f"{r['estimate_mb']:.0f}",
                  f"{r['fit_mb']:.0f}" if r["fit_mb"] is not None else None] for r in rows],
                "peak resident memory (ru_maxrss), each row a fresh Python; the first rows the per-frame "
                "estimate alone, the rows with a stages I+II figure the estimate then the fit")
    est = [r for r in rows if r["fit_mb"] is None]
    if len(est) >= 2:
        a, b = est[0], est[-1]
        grown = (b["estimate_mb"] - b["baseline_mb"]) - (a["estimate_mb"] - a["baseline_mb"])
        slope = grown / (b["frames"] - a["frames"])
        hour = b["estimate_mb"] + slope * (108000 - b["frames"])
        print_table("Per-frame estimate memory growth",
                    ["work", "between frames", "above start-up kB per frame",
                     "1 h at 30 fps (108,000 frames) extrapolated peak MB"],
                    [["per-frame estimate", f"{a['frames']} and {b['frames']}", f"{1000 * slope:.1f}", f"{hour:.0f}"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
