"""The capture pipeline: video -> keypoints -> per-frame estimate -> stage I -> stage II -> result.

``capture(video, out, CaptureOptions(...), reporter)`` is what ``python -m engine capture`` runs.
Bad input raises ``EngineError`` before anything is written; the result (and the preview) appear
only once complete (atomic writes), so a failure never leaves a partial file.
"""

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine import __version__
from engine.contract import choices as C
from engine.contract import result as R
from engine.contract.progress import Reporter
from engine.util.device import resolve_device
from engine.util.errors import EngineError

if TYPE_CHECKING:
    from engine.prior.model import MotionPrior
    from engine.video import Video

# --quality presets: augmented views for per-joint confidence, Adam iterations per fitting stage.
# "best" is the authors' setting (400 iterations per stage); fewer views/iterations trade accuracy
# for speed (see docs/history.md for what each costs).
QUALITY_PRESETS = {
    "draft": {"views": 0, "iters": (100, 100)},
    "balanced": {"views": 4, "iters": (200, 200)},
    "best": {"views": 8, "iters": (400, 400)},
}


@dataclass
class CaptureOptions:
    hands: str = C.DEFAULT_HANDS  # engine.contract.choices.HANDS
    device: str = C.DEFAULT_DEVICE
    mano_dir: str = None
    stages: int = C.DEFAULT_FIT_STAGES
    quality: str = C.DEFAULT_QUALITY
    fov: float = None
    K: list = None  # fx, fy, cx, cy
    start: int = 0
    end: int = None
    keypoints: str = None
    prior: str = None
    no_cache: bool = False
    views: int = None
    preview: str = None
    prior_term: str = C.DEFAULT_PRIOR_TERM
    keypoint_source: str = C.DEFAULT_KEYPOINT_SOURCE
    root_motion: str = C.DEFAULT_ROOT_MOTION
    literal: bool = False  # the method's table read literally (FitOptions.literal)
    hand_size: float = None  # mm, wrist to middle-finger knuckle (engine.contract.choices.HAND_SIZE_MM); None: the model's

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "CaptureOptions":
        """The options of a parsed ``capture`` command line (engine.commands.cli)."""
        return cls(hands=args.hands, device=args.device, mano_dir=args.mano_dir, stages=args.stages,
                   quality=args.quality, fov=args.fov, K=args.K, start=args.start, end=args.end,
                   keypoints=args.keypoints, prior=args.prior, no_cache=args.no_cache, views=args.views,
                   preview=args.preview, prior_term=args.prior_term,
                   keypoint_source=args.keypoint_source, root_motion=args.root_motion,
                   literal=getattr(args, "literal", False), hand_size=getattr(args, "hand_size", None))

    @property
    def sides(self) -> tuple[str, ...]:
        """The sides captured: ('right',), ('left',) or both."""
        return C.sides_of(self.hands)


def check_writable(path: str | os.PathLike, what: str = "output") -> str:
    """Fail early (before hours of work) when ``path`` cannot be written; -> the absolute path."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise EngineError(f"{what} path is a directory: {path}")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise EngineError(f"{what} folder does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise EngineError(f"{what} folder is not writable: {directory}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise EngineError(f"{what} file exists and is not writable: {path}")
    return path


def _intrinsics(video, options):
    from engine.video import guess_intrinsics

    if options.K is not None:
        fx, fy, cx, cy = options.K
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return np.asarray(guess_intrinsics(video.width, video.height, fov_deg=options.fov), dtype=np.float64)


def _detect(video, options, quality, reporter):
    """Per side a HandTrack (see engine.keypoints), from MediaPipe or an external keypoints file."""
    from engine import keypoints as kp

    if options.keypoints:
        reporter.stage("detect", "Reading external keypoints")
        return kp.load_external_keypoints(options.keypoints, video, sides=options.sides, start=options.start,
                                          end=options.end)
    views = quality["views"] if options.views is None else options.views
    if not 0 <= views <= kp.MAX_VIEWS:
        raise EngineError(f"--views must be from 0 to {kp.MAX_VIEWS}, got {views}")
    kp_options = kp.KeypointOptions(views=views, use_cache=not options.no_cache, start=options.start, end=options.end)
    return kp.detect_hands(video, sides=options.sides, options=kp_options, reporter=reporter)


def capture(video_path: str | os.PathLike, out_path: str | os.PathLike, options: CaptureOptions | None = None,
            reporter: Reporter | None = None) -> dict:
    """Run the whole capture. Returns {"result": abs path, "preview": abs path or None}.

    The steps, each below: check the options and the output paths (no work yet), open the models, the
    prior and the video (stage ``read``), detect the hands (``detect``), the per-frame estimate
    (``init``), stages I and II (``fit1``, ``fit2``), write the result (``write``), the preview.
    """
    options = options or CaptureOptions()
    reporter = reporter or Reporter("quiet")
    out_path, preview_path = check_capture_options(options, out_path)
    quality = QUALITY_PRESETS[options.quality]
    device = resolve_device(options.device)
    reporter.stage("read", "Opening video")
    models, prior, video, K = open_inputs(video_path, options, device, reporter)
    tracks = _detect(video, options, quality, reporter)
    found, frame_ids, frame_times = hands_found(tracks, video, options, reporter)
    fps = float(video.fps)
    estimates = estimate_per_frame(found, models, K, fps, options, reporter)
    fits = fit_hands(estimates, models, prior, K, fps, options, quality, reporter, frame_times)
    reporter.stage("write", "Writing result")
    arrays = result_arrays(video, video_path, options, K, fps, frame_ids, frame_times, models, found, estimates, fits)
    write_result(out_path, arrays)
    if preview_path:
        from engine.preview import write_preview

        reporter.stage("preview", "Writing preview", total=len(frame_ids))
        write_preview(video, R.read(out_path), preview_path, reporter=reporter)
    return {"result": out_path, "preview": preview_path}


def check_capture_options(options: CaptureOptions, out_path: str | os.PathLike) -> tuple:
    """Everything about ``options`` and the output paths that is known before any work; removes the
    temporary files of killed runs beside the result. -> (result path, preview path or None), absolute."""
    if options.hands not in C.HANDS:
        raise EngineError(f"unknown --hands '{options.hands}': use right, left or both")
    if options.quality not in QUALITY_PRESETS:
        raise EngineError(f"unknown --quality '{options.quality}': use {', '.join(QUALITY_PRESETS)}")
    if options.stages not in C.FIT_STAGES:
        raise EngineError(f"--stages must be 0, 1 or 2, got {options.stages}")
    if options.K is not None and (np.shape(options.K) != (4,) or not np.all(np.isfinite(options.K))
                                  or min(options.K[:2]) <= 0):
        raise EngineError(f"--K expects four finite numbers fx,fy,cx,cy with fx, fy > 0, got {options.K}")
    if options.fov is not None and not 1.0 <= options.fov <= 170.0:  # NaN fails this too
        raise EngineError(f"--fov must be between 1 and 170 degrees, got {options.fov}")
    if options.views is not None and options.views < 0:
        raise EngineError(f"--views must be 0 or more, got {options.views}")
    low, high = C.HAND_SIZE_MM
    if options.hand_size is not None and not low <= options.hand_size <= high:  # NaN fails this too
        raise EngineError(f"--hand-size must be from {low:g} to {high:g} mm (wrist to middle-finger knuckle), "
                          f"got {options.hand_size:g}")
    if not str(out_path).lower().endswith(".npz"):
        raise EngineError(f"the result file must end in .npz: {out_path}")
    out_path = check_writable(out_path, "result")
    from engine.util.atomic import remove_stale

    remove_stale(os.path.dirname(out_path), R.TEMP_PREFIX, ".npz")  # left by a run that was killed
    if options.preview and not str(options.preview).lower().endswith((".mp4", ".avi", ".mov")):
        raise EngineError(f"the preview must be a .mp4 (or .avi / .mov) file: {options.preview}")
    preview_path = check_writable(options.preview, "preview") if options.preview else None
    return out_path, preview_path


# Models kept loaded between captures of one process (the batch worker's, ``keep_models``): hand models by
# (side, mano_dir, device, hand size), priors by (path, device). Empty and unused unless kept.
_KEPT = {}
_KEEP = False


def keep_models(keep: bool = True) -> None:
    """Keep the hand models and priors that ``capture`` loads for the next captures of this process
    (``engine.commands.batch``'s workers: one load per worker, not per clip); False forgets them."""
    global _KEEP
    _KEEP = bool(keep)
    if not _KEEP:
        _KEPT.clear()


def load_kept(key: tuple, make: Callable[[], object]) -> object:
    """``make()``, or, while models are kept (``keep_models``), the one made before under ``key``."""
    if not _KEEP:
        return make()
    if key not in _KEPT:
        _KEPT[key] = make()
    return _KEPT[key]


def open_inputs(video_path: str | os.PathLike, options: CaptureOptions, device: str, reporter: Reporter) -> tuple:
    """-> (models {side: HandModel}, prior (MotionPrior or None), video (engine.video.Video), K (3,3) px).

    The prior is read whenever stage II or ``--prior`` asks for it, before minutes of detection, so a
    bad checkpoint fails now; the frame range and the intrinsics are checked against the video. A
    frame rate the video does not state (a guess) is a warning.
    """
    from engine.hand_model import load_hand_model
    from engine.video import fps_message, open_video

    size = None if options.hand_size is None else options.hand_size / 1000.0  # mm -> m
    models = {side: load_kept(("hand", side, options.mano_dir, device, size),
                          lambda side=side: load_hand_model(side=side, mano_dir=options.mano_dir, device=device,
                                                            hand_size=size))
              for side in options.sides}
    prior = None
    if options.stages >= 2 or options.prior:
        from engine.prior import load_prior

        prior = load_kept(("prior", options.prior, device), lambda: load_prior(options.prior, device=device))
    video = open_video(video_path)
    if fps_message(video):
        reporter.warn(fps_message(video))
    if options.start < 0 or options.start >= video.num_frames:
        raise EngineError(f"--start {options.start} is outside the video (0..{video.num_frames - 1})")
    if options.end is not None and options.end <= options.start:
        raise EngineError(f"--end {options.end} must be after --start {options.start}")
    K = _intrinsics(video, options)
    if not (0 <= K[0, 2] <= video.width and 0 <= K[1, 2] <= video.height):
        raise EngineError(f"--K: the principal point ({K[0, 2]:g}, {K[1, 2]:g}) is outside the {video.width}x"
                          f"{video.height} video frame: give fx,fy,cx,cy in pixels of this video")
    return models, prior, video, K


# A second hand kept in fewer of MediaPipe's frames than this, beside a hand kept in more, is not
# captured: a handful of frames does not make a hand to fit (engine.keypoints.tracks gives a second
# side only to a hand seen at once with the first; a few such frames are most likely a false detection)
MIN_SECOND_HAND_FRAMES = 5


def hands_found(tracks: dict, video: "Video", options: CaptureOptions, reporter: Reporter) -> tuple:
    """The hands with at least one detected frame -> (found {side: HandTrack}, frame_ids (T,) int64,
    frame_times (T,) s or None); of two hands from MediaPipe, one kept in fewer than
    MIN_SECOND_HAND_FRAMES frames while the other is kept in more is left out. No hand at all is an
    EngineError; a missing or left-out hand or a short read of the video is a warning."""
    found = {side: t for side, t in tracks.items() if t is not None and np.any(t.source != R.SOURCE_NONE)}
    kept = {side: int(t.stats["kept_frames"]) for side, t in found.items() if t.stats}  # MediaPipe's (not external)
    if len(kept) == 2 and min(kept.values()) < MIN_SECOND_HAND_FRAMES <= max(kept.values()):
        few = min(kept, key=kept.get)
        other = max(kept, key=kept.get)
        reporter.warn(f"the {few} hand is seen in only {kept[few]} frames (the {other} hand in {kept[other]}): "
                      f"only the {other} hand is captured")
        del found[few]
    if not found:
        other = [s for s in C.SIDES if s not in options.sides]
        raise EngineError(f"no {' or '.join(options.sides)} hand found in any frame of {video.path}"
                          + (f" (try --hands {other[0]} or --hands both)" if other else ""))
    for side in options.sides:
        if side not in found and side not in kept:
            reporter.warn(f"no {side} hand found in the clip: only the {', '.join(found)} hand is captured")
    first = next(iter(found.values()))
    frame_ids = np.asarray(first.frame_ids, dtype=np.int64)
    frame_times = np.asarray(first.frame_times, dtype=np.float64) if first.frame_times is not None else None
    if not options.keypoints:  # a damaged or half-downloaded file: say how much of it was read
        from engine.video import short_read_message

        short = short_read_message(video, options.start, options.end, frame_ids)
        if short:
            reporter.warn(short)
    return found, frame_ids, frame_times


def estimate_per_frame(found: dict, models: dict, K: np.ndarray, fps: float, options: CaptureOptions,
                       reporter: Reporter) -> dict:
    """{side: per-frame estimate} (engine.fit.per_frame.per_frame_estimate's numpy dict: global_orient (T,3),
    hand_pose (T,45), betas (10,), transl (T,3), joints (T,21,3), keypoints_2d (T,21,2), confidence (T,21),
    keypoint_source (T,), valid (T,), detected (T,)); logs each hand's frame counts."""
    from engine.fit.per_frame import PerFrameOptions, per_frame_estimate
    from engine.keypoints import frames_summary

    # progress in frames: the per-frame estimate advances by one per frame with 3D landmarks
    with_3d = {side: int(np.isfinite(np.asarray(t.world_landmarks)).all((1, 2)).sum()) for side, t in found.items()}
    reporter.stage("init", "Per-frame estimate", total=max(1, sum(with_3d.values())))
    estimates = {}
    for side, track in found.items():
        estimates[side] = per_frame_estimate(models[side], track, K, fps,
                                             PerFrameOptions(keypoint_source=options.keypoint_source), reporter=reporter)
        counts = _keypoint_counts(track, estimates[side])
        if counts:  # what plain MediaPipe found for this hand and what the front end kept and filled
            reporter.log(frames_summary(side, track, interpolated=counts["interpolated_frames"]))
    return estimates


def fit_hands(estimates: dict, models: dict, prior: "MotionPrior | None", K: np.ndarray, fps: float,
              options: CaptureOptions, quality: dict, reporter: Reporter,
              frame_times: np.ndarray | None = None) -> dict:
    """Stages I (and II with the prior) per hand -> {side: fitted dict (as the estimate's, plus the fit's
    entries)}; {} with ``--stages 0``. The fit's warnings go to the reporter, prefixed with the hand.
    frame_times (T,) s or None: the frames' times, used by the fit where they are uneven (logged)."""
    if options.stages == 0:
        return {}
    from engine.fit.stages import FitOptions, fit_sequence
    from engine.fit.temporal import uneven_times

    if uneven_times(frame_times, fps) is not None:
        steps = np.diff(frame_times)
        reporter.log(f"variable frame rate ({1 / steps.max():.3g}-{1 / steps.min():.3g} fps): the fit follows "
                     "each frame's own time")

    prior = prior if options.stages >= 2 else None
    make_options = FitOptions.literal if options.literal else FitOptions
    fit_options = make_options(iters_stage1=quality["iters"][0], iters_stage2=quality["iters"][1],
                               prior_term=options.prior_term, root_motion=options.root_motion)
    fits, warnings = {}, []
    for side, est in estimates.items():
        fits[side], warn = fit_sequence(models[side], prior, est, est["keypoints_2d"], est["confidence"], K, fps,
                                        stages=options.stages, options=fit_options, reporter=reporter,
                                        frame_times=frame_times)
        warnings += [f"{side} hand: {w}" for w in warn]
    for w in warnings:
        reporter.warn(w)
    return fits


def result_arrays(video: "Video", video_path: str | os.PathLike, options: CaptureOptions, K: np.ndarray, fps: float,
                  frame_ids: np.ndarray, frame_times: np.ndarray | None, models: dict, found: dict, estimates: dict,
                  fits: dict) -> dict:
    """The result file's entries (schema: engine.contract.result): clip-level ones, then each hand's (the fit's,
    or the estimate's with ``--stages 0``) and its keypoint counts."""
    arrays = {
        "schema_version": np.array(R.SCHEMA_VERSION),
        "engine_version": np.array(__version__),
        "fps": np.array(fps),
        "K": K,
        "image_size": np.array([video.width, video.height], dtype=np.int64),
        "frame_ids": frame_ids,
        "hand_model": np.array(next(iter(models.values())).name),
        "hands": np.array(list(found), dtype=np.str_),
        "video": np.array(os.path.abspath(os.fspath(video_path))),
        "stages": np.array(options.stages),
        # the model's wrist-to-middle-knuckle length at rest, betas 0 (--hand-size, else its own), metres
        "hand_size": np.array(next(iter(models.values())).hand_size),
    }
    if frame_times is not None and np.all(np.isfinite(frame_times)) and np.all(np.diff(frame_times) >= 0):
        arrays["frame_times"] = frame_times  # seconds from the clip's start (variable frame rates)
    for side, est in estimates.items():
        fit = fits.get(side, est)
        arrays.update(_hand_arrays(side, models[side], est, fit))
        arrays.update({f"{side}/{k}": np.array(v, np.int64) for k, v in _keypoint_counts(found[side], est).items()})
    return arrays


def write_result(out_path: str, arrays: dict) -> None:
    """``engine.contract.result.write`` (validated, atomic); an invalid result is a bug (RuntimeError), an OS
    failure the user's (EngineError)."""
    try:
        R.write(out_path, arrays)
    except R.ResultError as exc:  # a bug, not bad input: say what failed
        raise RuntimeError(f"internal error: the engine produced an invalid result ({exc})") from exc
    except OSError as exc:
        raise EngineError(f"cannot write the result file {out_path}: {exc.strerror or exc}") from None


def _keypoint_counts(track, est):
    """The front end's frame counts (R.KEYPOINT_COUNTS) with the frames the estimate interpolated;
    {} for external keypoints."""
    if not getattr(track, "stats", None):
        return {}
    counts = {k: int(v) for k, v in track.stats.items() if k in R.KEYPOINT_COUNTS}
    counts["interpolated_frames"] = int(np.sum(est["keypoint_source"] == R.SOURCE_INTERPOLATED))
    return counts


def _hand_arrays(side, model, est, fit):
    """One hand's result entries (schema v1), with the rest mesh for the add-on's skinned hand."""
    import torch

    betas = np.asarray(fit["betas"], dtype=np.float64)
    with torch.no_grad():
        b = torch.as_tensor(betas, dtype=torch.float32, device=next(model.buffers()).device)[None]
        rest_joints = model.rest_joints(b)[0].cpu().numpy()
        zeros3 = torch.zeros(1, 3, device=b.device)
        rest = model(zeros3, torch.zeros(1, 45, device=b.device), b, zeros3)
        rest_vertices = rest.vertices[0].cpu().numpy()
    p = f"{side}/"
    return {
        p + "global_orient": np.asarray(fit["global_orient"], np.float32),
        p + "hand_pose": np.asarray(fit["hand_pose"], np.float32),
        p + "betas": betas.astype(np.float32),
        p + "transl": np.asarray(fit["transl"], np.float32),
        p + "joints": np.asarray(fit["joints"], np.float32),
        p + "keypoints_2d": np.asarray(est["keypoints_2d"], np.float32),
        p + "confidence": np.asarray(est["confidence"], np.float32),
        p + "valid": np.asarray(est["valid"], bool),
        p + "keypoint_source": np.asarray(est["keypoint_source"], np.uint8),
        p + "rest_joints": rest_joints.astype(np.float32),
        p + "rest_vertices": rest_vertices.astype(np.float32),
        p + "faces": np.asarray(model.faces.cpu().numpy() if hasattr(model.faces, "cpu") else model.faces, np.int64),
        p + "skin_weights": np.asarray(model.skin_weights.cpu().numpy() if hasattr(model.skin_weights, "cpu")
                                       else model.skin_weights, np.float32),
    }
