"""The two-stage HMP fit (docs/method.md sections 5 and 4): the driver over a clip's chunks.

    out, warnings = fit_sequence(model, prior, init, keypoints_2d (T,21,2), confidence (T,21), K, fps,
                                 stages=2, options=FitOptions(), reporter=None)
    (out1, warnings1), (out2, warnings2) = fit_stages(...same arguments...)  # each stage's result, one run

``init`` is the per-frame estimate (engine.fit.per_frame): its global_orient, transl, hand_pose and betas
are both the starting point and the hatted targets. Stage I optimises the global rotation Phi, the
translation tau and the shape beta (and the fingers); stage II adds one latent z of the motion prior
per window, the finger pose being the prior's decoding of z. The options, the weights and every
departure from the method's table are in engine.fit.options.

The fit's modules: engine.fit.options (FitOptions, the weight tables, the departures from the table),
engine.fit.terms (a chunk's targets and loss terms), engine.fit.optim (the optimiser loop: Adam at lr
0.05 with a step schedule, gradient clipping, an early stop on a flat loss, the best iterate kept),
engine.fit.stage1 and engine.fit.stage2 (each stage on one chunk, as functions of its tensors and
the options), and this module: the chunks, each stage over them, the blended result.

Long clips are cut into chunks of at most ``chunk_frames`` frames that overlap by one prior window
and are cross-faded (rotations as quaternions, ``windows.crossfade_chunks``), so memory is bounded
by the chunk, not the clip; the shape is found on the first chunk that has detections and kept for
the later ones (one shape per hand per clip: a chunk fitted before the shape changed would not match
it, so the shape is not re-fitted on every chunk). Inside a chunk all windows are optimised as one
batch (a GPU stays busy). Left hands go through the right-hand prior mirrored.

Each stage keeps its best iterate (the lowest loss seen, never worse than its start). A stage whose
loss became non-finite, or never came back to its start (divergence), is undone for its chunk: the
previous stage's values are kept and a warning says so. No NaN ever leaves.
"""

from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.fit.stage1 import stage1 as _stage1
from engine.fit.stage2 import stage2 as _stage2
from engine.fit.temporal import uneven_times
from engine.fit.terms import Chunk as _Chunk
from engine.fit.terms import to_tensor
from engine.fit.windows import crossfade_chunks

# the names other code and the tests import from here, from their modules
from engine.fit.optim import optimise as _optimise  # noqa: F401,E402
from engine.fit.options import ROOT_MOTIONS, STAGE1_WEIGHTS, STAGE2_WEIGHTS, FitOptions  # noqa: F401,E402
from engine.fit.options import stage_weights as _weights  # noqa: F401,E402
from engine.fit.terms import TAU_SCALE  # noqa: F401,E402

if TYPE_CHECKING:
    from engine.contract.progress import Reporter
    from engine.hand_model import HandModel
    from engine.prior.model import MotionPrior

FitResult = tuple[dict[str, np.ndarray], list[str]]  # (fitted arrays, warnings)


def _chunks(T, size, overlap):
    if T <= size:
        return [(0, T)]
    out, start = [], 0
    while True:
        end = min(start + size, T)
        out.append((start, end))
        if end == T:
            return out
        start = end - overlap


def _targets(keypoints_2d, confidence):
    """Detections as the fit reads them: keypoints (T,21,2) with NaN set to 0 and confidence (T,21)
    in [0, 1], 0 wherever a keypoint is missing (such a joint has no 2D term)."""
    kp2d = np.nan_to_num(np.asarray(keypoints_2d, dtype=np.float64))
    alpha = np.nan_to_num(np.asarray(confidence, dtype=np.float64)).clip(0, 1)
    alpha[~np.isfinite(np.asarray(keypoints_2d)).all(-1)] = 0.0
    return kp2d, alpha


def _run_stage1(chunks, spans, has_data, beta, results, warnings, options, reporter):
    """Stage I on every chunk with data. Updates ``results`` (per chunk: global_orient, transl) and
    returns the shape found (on the first chunk with data where stage I converged: one shape per
    clip, which the later chunks are fitted with) and, per chunk, (Phi (t,3), tau (t,3)) tensors or
    None (a chunk without data keeps the per-frame estimate)."""
    if reporter is not None:
        reporter.stage("fit1", "Fitting stage I", total=options.iters_stage1 * len(spans))
    stage1 = []
    shape_found = False
    for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
        if not has_data[k]:
            stage1.append(None)
            if reporter is not None:
                reporter.advance(options.iters_stage1)
            continue
        phi, tau, beta1, pose, ok = _stage1(chunk, beta, not shape_found, options, reporter)
        if ok:
            beta, shape_found = beta1, True
        else:
            warnings.append(f"frames {a}-{b - 1}: stage I diverged; kept the per-frame estimate there")
            phi, tau, pose = chunk.phi_hat, chunk.tau_hat, chunk.pose_hat
        stage1.append((phi, tau, pose))
        results[k].update(global_orient=phi.cpu().numpy(), transl=tau.cpu().numpy(), hand_pose=pose.cpu().numpy())
    return beta, stage1


def _run_stage2(chunks, spans, stage1, prior, beta, fps, results, warnings, options, reporter):
    """Stage II on every chunk that stage I fitted. Replaces ``results[k]`` (global_orient, transl,
    hand_pose) where it converged and returns the shape (refined, as in stage I, on the first of those
    chunks where stage II converged)."""
    iters = options.iters_stage2 + options.refit_iters
    if reporter is not None:
        reporter.stage("fit2", "Fitting stage II (motion prior)", total=iters * len(spans))
    shape_found = False
    for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
        if stage1[k] is None:
            if reporter is not None:
                reporter.advance(iters)
            continue
        phi2, tau2, beta2, pose2, ok2 = _stage2(chunk, prior, *stage1[k], beta, fps, not shape_found, options,
                                                reporter)
        if ok2:
            beta, shape_found = beta2, True
            results[k] = {"global_orient": phi2.cpu().numpy(), "transl": tau2.cpu().numpy(),
                          "hand_pose": pose2.cpu().numpy()}
        else:
            warnings.append(f"frames {a}-{b - 1}: stage II diverged; kept stage I there")
            if reporter is not None:
                reporter.advance(options.refit_iters)  # the re-fit after the filter did not run
    return beta


def _finish(model, out, init, warnings):
    """The clip's joints (T,21,3) from its blended parameters; the per-frame estimate instead if
    anything is not finite."""
    device = model.device
    with torch.no_grad():
        kp = model(to_tensor(out["global_orient"], device), to_tensor(out["hand_pose"], device), to_tensor(out["betas"], device),
                   to_tensor(out["transl"], device), vertices=False).keypoints
    out["joints"] = kp.cpu().numpy().astype(np.float64)
    for key, value in out.items():
        if not np.all(np.isfinite(value)):  # never let a NaN out: fall back to the per-frame estimate
            warnings.append(f"non-finite {key} after fitting; the per-frame estimate is used")
            return {**{k: np.asarray(init[k], np.float64) for k in ("global_orient", "transl", "hand_pose", "betas")},
                    "joints": np.asarray(init["joints"], np.float64)}
    return out


def fit_sequence(model: "HandModel", prior: "MotionPrior | None", init: dict[str, np.ndarray],
                 keypoints_2d: np.ndarray, confidence: np.ndarray, K: np.ndarray, fps: float, stages: int = 2,
                 options: FitOptions | None = None, reporter: "Reporter | None" = None,
                 frame_times: np.ndarray | None = None) -> FitResult:
    """Run stages 1..``stages`` on one hand's clip (see the module docstring).

    init: the per-frame estimate (global_orient (T,3), transl (T,3), hand_pose (T,45), betas (10,),
    joints (T,21,3)); keypoints_2d (T,21,2) px (NaN where missing); confidence (T,21); K (3,3); fps;
    frame_times (T,) s or None: each frame's time; where they are uneven (a variable frame rate,
    ``temporal.uneven_times``) the smoothness terms, the prior's windows and the rotation filter use
    them, else the constant ``fps``.
    Returns ({global_orient, transl, hand_pose (T,...), betas (10,), joints (T,21,3)} float64, warnings).
    """
    return fit_stages(model, prior, init, keypoints_2d, confidence, K, fps, stages, options, reporter,
                      frame_times)[-1]


def fit_stages(model: "HandModel", prior: "MotionPrior | None", init: dict[str, np.ndarray],
               keypoints_2d: np.ndarray, confidence: np.ndarray, K: np.ndarray, fps: float, stages: int = 2,
               options: FitOptions | None = None, reporter: "Reporter | None" = None,
               frame_times: np.ndarray | None = None) -> list[FitResult]:
    """``fit_sequence``'s run, keeping what each stage finished with: [(out, warnings)] for stages
    1..``stages``, item k being what ``fit_sequence(..., stages=k + 1)`` returns (stage II starts from
    stage I's result, so a comparison of the stages needs only this one run)."""
    options = options or FitOptions()
    times = uneven_times(frame_times, fps)  # None on a constant frame rate
    if stages not in (1, 2):
        raise ValueError(f"stages must be 1 or 2, got {stages}")
    if stages == 2 and prior is None:
        raise ValueError("stage II needs a motion prior")
    T = len(init["global_orient"])
    warnings = []
    kp2d, alpha = _targets(keypoints_2d, confidence)
    out = {k: np.array(init[k], dtype=np.float64, copy=True) for k in ("global_orient", "transl", "hand_pose")}
    beta = to_tensor(init["betas"], model.device)
    window_frames = int(np.floor((prior.window - 1) / prior.fps * fps)) + 1 if prior is not None else 64
    spans = _chunks(T, max(options.chunk_frames, 2 * window_frames), window_frames)
    chunks = [_Chunk(model, init, kp2d, alpha, K, slice(a, b), model.device, options, fps, times) for a, b in spans]
    has_data = [bool(alpha[a:b].any()) for a, b in spans]
    for (a, b), ok in zip(spans, has_data):
        if not ok:
            warnings.append(f"frames {a}-{b - 1}: no keypoint with confidence > 0; kept the per-frame estimate")
    results = [{key: out[key][a:b] for key in out} for a, b in spans]

    def finished():  # the clip as the last stage left it: chunks blended, joints, never a NaN
        done, said = dict(out), list(warnings)
        done.update(crossfade_chunks(spans, results, T, window_frames))
        done["betas"] = beta.cpu().numpy().astype(np.float64)
        return _finish(model, done, init, said), said

    with torch.enable_grad():
        beta, stage1 = _run_stage1(chunks, spans, has_data, beta, results, warnings, options, reporter)
        each = [finished()]
        if stages >= 2:
            beta = _run_stage2(chunks, spans, stage1, prior, beta, fps, results, warnings, options, reporter)
            each.append(finished())
    return each
