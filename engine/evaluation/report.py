"""``python -m engine report RESULT.npz [RESULT.npz ...]``: how a fit sits on footage without truth.

Real footage has no ground truth, but it has the detections the fit was made from. Per result file
and hand this measures (numpy only, from the result alone):

- ``dist_px`` / ``tips_px`` / ``wrist_px``: mean distance (pixels) between the fit's joints projected
  with the result's K and the confident detections (MediaPipe or tracked-crop frames, joints with
  confidence >= ``CONFIDENT``): all 21 joints, the five fingertips, the wrist;
- ``img_acc_px`` and ``raw_acc_px``: image-space acceleration (px/frame^2, mean over joints of
  ||x_{t+1} - 2 x_t + x_{t-1}||) of the projected fit and of the raw detections, on the same triples
  of consecutive detected frames: a fit smoother than the detector has a ratio below 1;
- ``wrist_acc_mm``: camera-space acceleration of the fitted wrist (mm/frame^2) over valid frames, and
  ``rr_acc_mm`` the root-relative acceleration of the other joints (the fingers' jitter);
- ``detected`` / ``kept``: frames where the hand has its own keypoints (MediaPipe or tracked crop),
  and, when the result records them, the frames plain MediaPipe found.

Compare stages by capturing the same clip with ``--stages 0``, ``1`` and ``2`` (detection is cached)
and passing the three results: the table prints each beside the first as a ratio.
"""

import argparse
import os
import sys

import numpy as np

from engine.contract import joints as J
from engine.contract import result as R
from engine.util.camera import project
from engine.util.errors import EngineError

CONFIDENT = 0.5  # a detected joint counts as confident from this per-joint confidence on
DETECTED_SOURCES = (R.SOURCE_MEDIAPIPE, R.SOURCE_TRACKED_CROP, R.SOURCE_EXTERNAL)


def _acc_norm(x):
    """x (T, J, D) -> (T-2, J) norms of the second difference."""
    return np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)


def hand_report(joints: np.ndarray, keypoints_2d: np.ndarray, confidence: np.ndarray, source: np.ndarray,
                valid: np.ndarray, K: np.ndarray) -> dict:
    """Figures for one hand of one result.

    joints (T,21,3) m camera frame; keypoints_2d (T,21,2) px; confidence (T,21); source (T,) uint8;
    valid (T,) bool; K (3,3). Returns a dict of floats (NaN where a figure has no frames).
    """
    joints = np.asarray(joints, np.float64)
    kp = np.asarray(keypoints_2d, np.float64)
    conf = np.asarray(confidence, np.float64)
    detected = np.isin(np.asarray(source), DETECTED_SOURCES) & np.asarray(valid, bool)
    proj = project(joints, np.asarray(K, np.float64))  # (T,21,2)
    dist = np.linalg.norm(proj - kp, axis=-1)  # (T,21)
    use = detected[:, None] & (conf >= CONFIDENT)

    def mean_over(mask):
        return float(dist[mask].mean()) if mask.any() else float("nan")

    joint_mask = np.zeros(21, bool)
    tips = joint_mask.copy()
    tips[J.FINGERTIPS_MEDIAPIPE] = True
    wrist = joint_mask.copy()
    wrist[0] = True
    triple = detected[2:] & detected[1:-1] & detected[:-2]
    img_acc = _acc_norm(proj)[triple]
    raw_acc = _acc_norm(kp)[triple]
    v = np.asarray(valid, bool)
    vtriple = v[2:] & v[1:-1] & v[:-2]
    wrist_acc = _acc_norm(joints[:, :1])[vtriple] * 1000
    rr = joints - joints[:, :1]
    rr_acc = _acc_norm(rr[:, 1:])[vtriple] * 1000
    nan = float("nan")
    return {
        "dist_px": mean_over(use),
        "tips_px": mean_over(use & tips[None]),
        "wrist_px": mean_over(use & wrist[None]),
        "img_acc_px": float(img_acc.mean()) if img_acc.size else nan,
        "raw_acc_px": float(raw_acc.mean()) if raw_acc.size else nan,
        "wrist_acc_mm": float(wrist_acc.mean()) if wrist_acc.size else nan,
        "rr_acc_mm": float(rr_acc.mean()) if rr_acc.size else nan,
        "detected": int(detected.sum()),
        "frames": int(len(detected)),
    }


def result_report(path: str | os.PathLike) -> tuple[int, dict[str, dict]]:
    """{side: figures} for every hand of a result file (see ``hand_report``), plus the stages run."""
    res = R.read(path)
    out = {}
    for side in res["hands"]:
        h = res[side]
        fig = hand_report(h["joints"], h["keypoints_2d"], h["confidence"], h["keypoint_source"], h["valid"],
                          res["K"])
        for key in ("mediapipe_frames", "kept_frames"):  # recorded by the keypoint front end
            if key in h:
                fig[key] = int(h[key])
        out[str(side)] = fig
    return int(res["stages"]), out


COLUMNS = (("dist_px", "to detections px"), ("tips_px", "tips px"), ("wrist_px", "wrist px"),
           ("img_acc_px", "image acc px/f^2"), ("raw_acc_px", "raw acc px/f^2"),
           ("wrist_acc_mm", "wrist acc mm/f^2"), ("rr_acc_mm", "root-rel. acc mm/f^2"))


def table(rows: list[tuple[str, dict]]) -> str:
    """rows: list of (label, figures) -> a markdown table; ratios to the first row in brackets."""
    head = "| | " + " | ".join(name for _, name in COLUMNS) + " | frames detected |"
    lines = [head, "|---" * (len(COLUMNS) + 2) + "|"]
    base = rows[0][1] if rows else {}
    for label, fig in rows:
        cells = []
        for key, _ in COLUMNS:
            value = fig.get(key, float("nan"))
            ratio = value / base[key] if base.get(key) and fig is not base and np.isfinite(value) else None
            cells.append(f"{value:.2f}" + (f" ({ratio:.2f}x)" if ratio is not None else ""))
        kept = f"{fig['detected']}/{fig['frames']}"
        if "mediapipe_frames" in fig:
            kept += f" (MediaPipe alone: {fig['mediapipe_frames']})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {kept} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from engine.commands.args import Parser

    p = Parser(prog="python -m engine report", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="result files (.npz), e.g. one clip captured with --stages 0, 1, 2")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    per_side = {}
    for path in args.results:
        try:
            stages, figures = result_report(path)
        except (R.ResultError, OSError) as exc:
            raise EngineError(f"cannot read {path}: {exc}") from None
        for side, fig in figures.items():
            per_side.setdefault(side, []).append((f"{path} (stages {stages})", fig))
    for side, rows in per_side.items():
        print(f"\n{side} hand\n")
        print(table(rows))
    return 0
