"""The methods compared on footage with truth, shared by ``engine.evaluation.benchmark`` (rendered clips) and
``engine.evaluation.evaluate`` (HO3D-v3 / DexYCB): detect a clip's hands as a capture does, fit every method
(the per-frame estimate, its baselines, stage I and stage II's variants) and tabulate the metrics.

    joints, detected = evaluate_clip(video_path, gt, K, model, prior, quality, device, side="right")
    # joints: {method: (T,21,3) m camera frame} or None; detected: fraction of frames detected
"""

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for the hints only: these load torch and MediaPipe
    from engine.hand_model import HandModel
    from engine.keypoints import HandTrack
    from engine.prior.model import MotionPrior

BASELINE_METHODS = ("per-frame", "+ SLERP", "+ One Euro")


def stage_methods() -> list:
    """(name, stages, root_motion) of the fits: stage I, stage II (the default) and stage II's other
    root-motion variants, as ``engine.fit.stages`` has them."""
    from engine.fit.stages import ROOT_MOTIONS, FitOptions

    default = FitOptions().root_motion
    return ([("stage I", 1, default), ("stage II", 2, default)]
            + [(f"stage II, {r} rotation", 2, r) for r in ROOT_MOTIONS if r != default])


# the methods engine.evaluation.evaluate reports (the benchmark itself asks stage_methods() for the fit's variants)
METHODS = BASELINE_METHODS + ("stage I", "stage II", "stage II, prior rotation", "stage II, free rotation")


def fit_methods(model: "HandModel", track: "HandTrack", K: np.ndarray, fps: float, prior: "MotionPrior",
                quality: str) -> dict:
    """{method: joints (T,21,3)} of one detected hand: the per-frame estimate, its baselines and the
    fits of ``stage_methods()``."""
    from engine.capture import QUALITY_PRESETS
    from engine.fit import baselines
    from engine.fit.per_frame import forward_joints, per_frame_estimate
    from engine.fit.stages import FitOptions, fit_stages

    preset = QUALITY_PRESETS[quality]
    est = per_frame_estimate(model, track, K, fps)
    joints = {}
    for name, fn in baselines.BASELINES.items():
        b = fn(est, fps)
        joints[name] = forward_joints(model, b["global_orient"], b["hand_pose"], b["betas"], b["transl"])
    wanted = {(stages, root): name for name, stages, root in stage_methods()}
    for root in dict.fromkeys(root for _, root in wanted):  # one run per root motion gives stage I and II
        opts = FitOptions(iters_stage1=preset["iters"][0], iters_stage2=preset["iters"][1], root_motion=root)
        each = fit_stages(model, prior, est, est["keypoints_2d"], est["confidence"], K, fps,
                          stages=max(s for s, r in wanted if r == root), options=opts)
        for stages, (fitted, _) in enumerate(each, 1):
            if (stages, root) in wanted:
                joints[wanted[stages, root]] = fitted["joints"]
    return {name: joints[name] for name in (*baselines.BASELINES, *wanted.values())}


def _detect(video, sides, quality: str) -> dict:
    from engine.capture import QUALITY_PRESETS
    from engine.keypoints import KeypointOptions, detect_hands

    return detect_hands(video, sides=tuple(sides),
                        options=KeypointOptions(views=QUALITY_PRESETS[quality]["views"], use_cache=False))


def evaluate_hands(video_path: str | os.PathLike, sides: tuple[str, ...], K: np.ndarray, models: dict,
                   prior: "MotionPrior", quality: str) -> dict:
    """{side: ({method: joints (T,21,3)} or None, fraction of frames detected)} for one clip, run
    as a capture with --hands <the clip's hands> and the (guessed) intrinsics K."""
    from engine.video import open_video

    video = open_video(video_path)
    tracks = _detect(video, sides, quality)
    out = {}
    for side in sides:
        track = tracks.get(side)
        if track is None or not track.detected.any():
            out[side] = (None, 0.0)
            continue
        out[side] = (fit_methods(models[side], track, K, video.fps, prior, quality), float(track.detected.mean()))
    return out


def evaluate_clip(video_path: str | os.PathLike, gt: np.ndarray, K: np.ndarray, model: "HandModel",
                  prior: "MotionPrior", quality: str, device: str, side: str = "right") -> tuple:
    """One hand of a clip with known intrinsics K (engine.evaluation.evaluate's datasets): ({method: joints
    (T,21,3)} or None, fraction of frames detected). ``gt`` and ``device`` are not used (the model
    is already on its device)."""
    from engine.video import open_video

    video = open_video(video_path)
    track = _detect(video, (side,), quality)[side]
    if track is None or not track.detected.any():
        return None, 0.0
    return fit_methods(model, track, K, video.fps, prior, quality), float(track.detected.mean())


def table(rows: dict, title: str) -> str:
    """A markdown table: one row per method of ``rows`` ({method: {metric: value}}), the metrics of
    engine.evaluation.metrics.METRICS that the rows have."""
    from engine.evaluation.metrics import METRICS

    cols = [k for k in METRICS if k in next(iter(rows.values()))]  # without a K: the root-aligned three
    lines = [f"**{title}**", "", "| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in cols) + " |")
    return "\n".join(lines)
