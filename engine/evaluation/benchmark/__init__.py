"""``python -m engine benchmark``: the ground-truth video benchmark (rendered hands, real MediaPipe).

Known motion -> rendered clip -> the whole pipeline, as a user runs it -> errors against the truth:

1. the hand: NOT the fitted model. Each clip renders the open default hand (from the WebXR generic
   hand) with other proportions: another overall size, another palm length and width, and every
   finger segment rescaled (a factor per finger times one per segment, within +-15 %); the rest
   joints are re-derived from those bone lengths and the mesh follows them bone by bone (skinning
   weights), so the truth's 21 keypoints (joints and fingertip vertices) belong to another hand,
   whose proportions the fit has to find from the video (the model's linear shape space can reach
   such a skeleton, see docs/history.md: the mismatch is in the proportions to be estimated and
   in the mesh, not an unreachable skeleton);
2. the motion: Leap Motion recordings of another source than the prior's training data
   (``benchmarks/data/leap_javascript_v2.npz``, leapmotion/javascript v2, when present; otherwise
   the prior's held-out takes, said so in the output), the recorded turning of the hand on top of a
   palm, back, side or end-on view (the fingers pointing at the camera), plus a smooth random path across the image (up to +-0.1 m) and in depth
   (0.35-0.7 m); right, left (the right hand mirrored) and both hands in one clip;
3. the camera: a true field of view that differs per clip; the pipeline runs with the GUESSED
   intrinsics (``engine.video.guess_intrinsics``), as a user's capture does, so camera-space errors
   include what a wrong focal length costs;
4. render: Blender (bpy module, Cycles CPU, ``benchmarks/render_gt.py`` run as a subprocess, so the
   engine never imports bpy), varied skin tone and background; some clips with a grey pole passing
   in front of the hand;
5. the pipeline: MediaPipe keypoints with per-joint confidence for the clip's hands (both hands:
   --hands both), the per-frame estimate, its baselines (+ SLERP over gaps, + One Euro), stage I and
   stage II (the default and every other root-motion variant of ``engine.fit.stages``);
6. metrics (``engine.evaluation.metrics``): PA-MPJPE, RA-MPJPE, RA-ACC, camera-space MPJPE, wrist error, wrist
   acceleration error (mm, mm/frame^2) and 2D error (px; the prediction projected with the guessed
   K, the truth with the true one), per hand track, all tracks, the occlusion subset and per clip,
   and the ratios to the per-frame estimate against issue 11's targets.
"""
# The package: hand.py (1), scene.py (2, 3: clips, motion, placement), render.py (4, and the work
# folder's reuse), report.py (6: means, ratios, the page); this module runs them (5) and writes the page.

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.contract.choices import QUALITIES
from engine.evaluation.methods import BASELINE_METHODS, evaluate_hands, stage_methods
from engine.util.atomic import save_npz, write_text
from engine.util.errors import EngineError

from .hand import SPREAD, rescaled_hand
from .render import RENDER_SCRIPT, load_fits, render, same_scene, save_fits, wait_for_other_render
from .report import REFERENCE, SMOOTH_SIGMA, TARGETS, mean_over_tracks, ratios, report_text

if TYPE_CHECKING:
    from engine.prior.model import MotionPrior

from .scene import (CLIPS, FPS, HELD_OUT_SOURCE, ROOT, Clip, clip_plan, make_clip, motion_source, pick_motions, place,
                    pose_hand)

__all__ = ["CLIPS", "FPS", "HELD_OUT_SOURCE", "REFERENCE", "RENDER_SCRIPT", "ROOT", "SMOOTH_SIGMA", "SPREAD",
           "TARGETS", "Clip", "clip_plan", "main", "make_clip", "mean_over_tracks", "motion_source", "parser", "pick_motions",
           "place", "pose_hand", "ratios", "render", "report_text", "rescaled_hand", "run_clips"]


def parser() -> argparse.ArgumentParser:
    from engine.commands.args import Parser

    p = Parser(prog="python -m engine benchmark", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=90, help="frames per clip (30 fps)")
    p.add_argument("--size", default="480x360", help="render size WxH")
    p.add_argument("--clips", type=int, default=len(CLIPS), help=f"how many of the {len(CLIPS)} clips")
    p.add_argument("--motion", default=None,
                   help=f"motion file for the truth (default: {HELD_OUT_SOURCE.relative_to(ROOT)} when present, "
                        "else the prior's held-out takes)")
    p.add_argument("--out", default="benchmark_gt.md",
                   help="the markdown page to write (default: benchmark_gt.md in the current folder)")
    p.add_argument("--workdir", default=None,
                   help="keep the rendered clips here; a clip already there with the same scene is not rendered again")
    p.add_argument("--render-only", action="store_true", help="render the clips into --workdir and stop")
    p.add_argument("--only", default=None, metavar="NAME[,NAME]",
                   help="run only these clips (same scenes as in the full run): " + ", ".join(c.name for c in CLIPS))
    p.add_argument("--reuse-fits", action="store_true",
                   help="take each clip's fitted joints from --workdir when a run of the same clip left them there")
    p.add_argument("--device", default="auto")
    p.add_argument("--quality", choices=QUALITIES, default="balanced")
    return p


def run_clips(args: argparse.Namespace, clips: tuple[Clip, ...], seqs: list[dict], size: tuple[int, int],
              K_guess: np.ndarray, models: dict, prior: "MotionPrior", work: Path) -> tuple[tuple[str, ...], list, list]:
    """Render (or reuse) each clip (``seqs``: ``motion_source``'s sequences), run the pipeline on it and
    score every method against the truth. Returns the methods scored, the hand tracks [(label,
    occluded, {method: metrics})] and the notes (one per clip)."""
    from scipy.ndimage import gaussian_filter1d

    from engine.evaluation.metrics import all_metrics

    T = args.frames
    methods = BASELINE_METHODS + tuple(m for m, _, _ in stage_methods())
    tracks, notes = [], []  # tracks: (label, occluded, {method: metrics})
    only = None if args.only is None else set(args.only.split(","))
    if only is not None and not only <= {c.name for c in clips}:
        raise EngineError(f"--only: unknown clip(s) {', '.join(sorted(only - {c.name for c in clips}))}")
    for clip, clip_motions, seed in clip_plan(clips, seqs, T):
        t0 = time.time()
        if only is not None and clip.name not in only:
            continue
        scene, truth, K_true, note = make_clip(clip, clip_motions, T, size, seed=seed)
        scene_path, video_path = work / f"{clip.name}.npz", work / f"{clip.name}.mp4"
        wait_for_other_render(video_path)
        if not (video_path.is_file() and same_scene(scene_path, scene)):
            video_path.unlink(missing_ok=True)
            save_npz(scene_path, scene, ".hmp-scene-")
            render(scene_path, video_path)
        t_render = time.time() - t0
        if args.render_only:
            print(f"{clip.name}: {video_path} ({t_render:.0f} s)", flush=True)
            continue
        fits_path = work / f"{clip.name}.fits.npz"
        if args.reuse_fits and fits_path.is_file() and same_scene(scene_path, scene):
            results = load_fits(fits_path, clip.hands)
        else:
            results = evaluate_hands(video_path, clip.hands, K_guess, models, prior, args.quality)
            save_fits(fits_path, results)
        t_fit = time.time() - t0 - t_render
        found = ", ".join(f"{s} {results[s][1]:.0%}" for s in clip.hands)
        print(f"{clip.name}: rendered in {t_render:.0f} s, fitted in {t_fit:.0f} s, frames detected: {found}", flush=True)
        notes.append(f"- {clip.name} ({clip.view} view, {' + '.join(clip.hands)}{', occluder' if clip.occluder else ''}):"
                     f" {note}; motion {'; '.join(m[0] for m in clip_motions)}; frames detected {found}")
        for side, m in zip(clip.hands, clip_motions):
            joints, _ = results[side]
            gt = truth[side]
            label = clip.name if len(clip.hands) == 1 else f"{clip.name}, {side} hand"
            if joints is None:
                notes.append(f"  - {label}: MediaPipe found no {side} hand; left out of the means")
                continue
            rows = {meth: all_metrics(joints[meth], gt, K=K_guess, K_gt=K_true) for meth in methods}
            rows[REFERENCE] = all_metrics(gaussian_filter1d(gt, SMOOTH_SIGMA, axis=0, mode="nearest"), gt, K=K_true)
            tracks.append((label, clip.occluder, rows))
    return methods, tracks, notes


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    from engine.hand_model import load_hand_model
    from engine.prior import load_prior
    from engine.util.device import resolve_device
    from engine.video import guess_intrinsics

    t_start = time.time()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise EngineError(f"--size must be WxH, got {args.size!r}") from None
    device = resolve_device(args.device)
    models = {side: load_hand_model(side, device=device) for side in ("right", "left")}
    prior = load_prior(device=device)
    K_guess = guess_intrinsics(width, height)  # what the pipeline is told, as a user's capture
    T = args.frames
    clips = CLIPS[: max(1, min(args.clips, len(CLIPS)))]
    what, seqs = motion_source(args.motion)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hmp-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    methods, tracks, notes = run_clips(args, clips, seqs, (width, height), K_guess, models, prior, work)
    if args.render_only:
        print(f"rendered into {work} in {(time.time() - t_start) / 60:.1f} min")
        return 0
    if not tracks:
        raise EngineError("MediaPipe found no hand in any rendered clip")
    runtime = time.time() - t_start
    import resource

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    command = " ".join(["python -m engine benchmark", *(sys.argv[1:] if argv is None else argv)])
    header = [f"Rendered ground-truth benchmark (`{command}`): {len(clips)} clips of {T} frames at "
              f"{width}x{height}, {len(tracks)} hand tracks, quality {args.quality}, device {device}, torch "
              f"{torch.__version__}; {runtime / 60:.1f} min wall-clock in all (render + MediaPipe + fits; "
              f"{cpu / 60:.1f} min of CPU time, {os.cpu_count()} cores shared with other work).",
              "",
              "The truth is not the fitted model: each clip's hand is the default hand with other proportions "
              f"(overall size, palm, every finger segment within +-{SPREAD:.0%}), moving across the image and in "
              "depth; rendered with a true field of view that varies per clip, fitted with the guessed one "
              f"({guess_intrinsics.__module__}.guess_intrinsics: {np.degrees(2 * np.arctan(width / 2 / K_guess[0, 0])):.0f}"
              " deg). Errors in mm (RA-ACC and wrist acc. in mm/frame^2, 2D in px), mean over hand tracks. "
              f"Motion: {what}. The last row is not a method: the truth smoothed over {SMOOTH_SIGMA:g} frames "
              "(Gaussian), scored against the truth (with the true K): what temporal smoothing alone costs."]
    text = report_text(header, tracks, notes, methods)
    print("\n" + text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, text, ".hmp-benchmark-")
    print(f"written to {args.out}")
    return 0
