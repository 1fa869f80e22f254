"""The two-stage fit keeps what it optimised: divergence judged on the returned iterate, the shape
found where there is data, the result's translation optimised for its (filtered) rotation, smoothness
and prior windows on the frames' real times."""

import numpy as np
import pytest
import torch
from fit_support import FPS, K, held_out_motion, keypoints_of, track_of

from engine.fit.stages import FitOptions, _optimise


def _lopsided_loss(x):
    """(x - 1)^2, fifty times steeper past the minimum: Adam at a high rate overshoots into the steep
    side, so the loss climbs above its start after it has reached the minimum."""
    d = x - 1
    return torch.where(d < 0, d ** 2, 50 * d ** 2).sum()


def test_a_loss_that_rises_after_its_best_is_not_a_divergence():
    x = torch.zeros(1, requires_grad=True)
    seen = []

    def closure():
        loss = _lopsided_loss(x)
        seen.append(float(loss.detach()))
        return loss

    converged, best = _optimise([x], closure, 6, FitOptions(lr=0.5), tol=0.0)
    assert seen[-1] > seen[0]  # the last iterate is worse than the start...
    assert best == min(seen) < 1e-3 and float(x.detach()) == pytest.approx(1.0, abs=1e-3)  # ...the returned one is not
    assert converged


def test_a_run_where_every_step_is_worse_than_the_start_diverges():
    x = torch.zeros(1, requires_grad=True)
    seen = []

    def closure():
        loss = ((x - 1) ** 2).sum()
        seen.append(float(loss.detach()))
        return loss

    converged, best = _optimise([x], closure, 10, FitOptions(lr=1e6), tol=0.0)  # absurd steps
    assert min(seen[1:]) > seen[0] and best == seen[0] and float(x.detach()) == 0.0  # the start, kept
    assert not converged


def test_a_non_finite_loss_still_diverges_and_leaves_the_best_finite_iterate():
    x = torch.zeros(1, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        loss = ((x - 1) ** 2).sum()
        return loss * float("nan") if len(calls) == 5 else loss

    converged, best = _optimise([x], closure, 20, FitOptions(lr=0.05), tol=0.0)
    assert not converged and len(calls) == 5
    assert np.isfinite(best) and float(((x.detach() - 1) ** 2).sum()) == pytest.approx(best)


@pytest.fixture(scope="module")
def model():
    from engine.hand_model import load_hand_model

    torch.manual_seed(0)
    return load_hand_model("right")


def test_the_shape_is_fitted_on_the_first_chunk_with_data(model):
    """A clip cut into chunks whose first chunk has no detection: the shape is still fitted (on the
    first chunk that has data), and comes out as it does when the detections start at frame 0."""
    from engine.fit.per_frame import PerFrameOptions, per_frame_estimate
    from engine.fit.stages import _chunks, fit_sequence

    T, truth = 215, np.array([0.0, 2.0, -2.0, 2.0, 0, 0, 0, 0, 0, 0])
    go, pose = held_out_motion(T)
    kp3d = keypoints_of(model, go, pose, truth)
    opts = FitOptions(iters_stage1=60, chunk_frames=128)
    assert _chunks(T, 128, 64)[:2] == [(0, 128), (64, 192)]
    betas, said = {}, {}
    for late in (False, True):
        track = track_of(kp3d, missing=range(128) if late else ())
        est = per_frame_estimate(model, track, K, FPS, PerFrameOptions(ik_iters=60))
        assert not est["valid"][:128].any() if late else est["valid"].all()
        out, said[late] = fit_sequence(model, None, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=1,
                                       options=opts)
        betas[late] = out["betas"]
    assert said[True] == ["frames 0-127: no keypoint with confidence > 0; kept the per-frame estimate"]
    # the shape is seen (the strong per-frame shape term keeps it near the mean: |beta| about 0.4)...
    assert np.linalg.norm(betas[False]) > 0.2, betas
    # ...and found on the first chunk with data when the first chunk has none (it was the mean shape, 0)
    cos = betas[True] @ betas[False] / (np.linalg.norm(betas[True]) * np.linalg.norm(betas[False]) + 1e-12)
    assert cos > 0.8 and 0.5 < np.linalg.norm(betas[True]) / np.linalg.norm(betas[False]) < 2.0, betas


def _translation_loss(model, est, out, options):
    """Stage II's terms that the translation enters (L_tr, L_ts, L_2D, L_ja, with its weights) at the
    result's rotation, pose and shape, and the best value a long re-optimisation of the translation
    alone reaches from the result's: (at the result, best)."""
    from engine.fit.stages import TAU_SCALE, _Chunk, _targets, _weights

    T = len(out["transl"])
    kp2d, alpha = _targets(est["keypoints_2d"], est["confidence"])
    chunk = _Chunk(model, est, kp2d, alpha, K, slice(0, T), model.device, options, FPS)
    weights = {k: v for k, v in _weights(options.weights2, T, options).items() if k in ("tr", "ts", "2d", "ja")}
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)
    phi, pose, beta = f(out["global_orient"]), f(out["hand_pose"]), f(out["betas"])
    tau_v = (f(out["transl"]) * TAU_SCALE).requires_grad_(True)

    def closure():
        terms = chunk.data_terms(phi, pose, beta, tau_v / TAU_SCALE, weights)
        return sum(weights[k] * terms[k] for k in weights)

    with torch.no_grad():
        at_result = float(closure())
    _, best = _optimise([tau_v], closure, 300, FitOptions(), tol=0.0)
    return at_result, best


def test_the_translation_is_fitted_to_the_filtered_rotation(model):
    """root_motion "filtered": the result's translation is what stage II's terms choose for the
    result's (filtered) rotation; re-optimising it alone gains little. (Filtered after the fit, the
    rotation turned the hand about its wrist under a translation fitted to the unfiltered one: the
    same re-optimisation then halved those terms.) The progress of stage II counts the re-fit."""
    import io
    import json

    from engine.contract.progress import Reporter
    from engine.fit.per_frame import PerFrameOptions, per_frame_estimate
    from engine.fit.stages import fit_sequence
    from engine.prior import load_prior

    go, pose = held_out_motion(60)
    est = per_frame_estimate(model, track_of(keypoints_of(model, go, pose, np.zeros(10)), px=2.0), K, FPS,
                             PerFrameOptions(ik_iters=60))
    opts = FitOptions(iters_stage1=40, iters_stage2=60)
    stream = io.StringIO()
    out, warnings = fit_sequence(model, load_prior(), est, est["keypoints_2d"], est["confidence"], K, FPS,
                                 stages=2, options=opts, reporter=Reporter("jsonl", stream=stream))
    assert not warnings
    at_result, best = _translation_loss(model, est, out, opts)
    assert best > 0.9 * at_result, (at_result, best)
    fit2 = [e for e in map(json.loads, stream.getvalue().splitlines())
            if e["event"] == "progress" and e["stage"] == "fit2"]
    assert fit2[0]["total"] == 60 + 15 and fit2[-1]["done"] == fit2[-1]["total"], fit2[-1]


# ------------------------------------------------------------------------------------------------ uneven frame times

def uneven(duration_30, switch_30):
    """Frame times (s) at 30 fps up to frame ``switch_30`` (in 1/30 s), then at 15 fps up to
    ``duration_30``: a clip whose rate halves part way (a variable-frame-rate file)."""
    return np.concatenate([np.arange(0, switch_30 + 1), np.arange(switch_30 + 2, duration_30 + 1, 2)]) / 30.0


@pytest.mark.parametrize("literal", [False, True])
def test_smoothness_on_uneven_frame_times_is_per_second(model, literal):
    """The same steady motion over 1 s (10 cm/s, 30 deg/s) sampled at 30 fps and at 30-then-15 fps:
    per second, L_ts and L_os are equal, and L_ja is zero for a steady motion and the integral of
    the squared acceleration for a steadily accelerating one. (A constant rate assumed, the frames
    after the switch look twice as fast: L_ja sees an acceleration that is not there.) The literal
    form stays per frame pair."""
    from engine.fit import losses as L
    from engine.fit.stages import _Chunk

    options = FitOptions.literal() if literal else FitOptions()
    terms = {}
    for name, t in (("even", np.arange(31) / 30.0), ("uneven", uneven(30, 16))):
        T = len(t)
        tt = torch.as_tensor(t, dtype=torch.float32)
        tau = torch.stack([0.1 * tt, torch.zeros_like(tt), 0.5 + 0 * tt], -1)
        phi = torch.stack([torch.zeros_like(tt), torch.zeros_like(tt), np.radians(30) * tt], -1)
        init = {"global_orient": phi.numpy(), "transl": tau.numpy(), "hand_pose": np.zeros((T, 45)), "betas": np.zeros(10)}
        fps = (T - 1) / t[-1]  # the container's average rate
        chunk = _Chunk(model, init, np.zeros((T, 21, 2)), np.zeros((T, 21)), K, slice(0, T), "cpu", options, fps,
                       times=t if name == "uneven" else None)
        got = chunk.data_terms(phi, torch.zeros(T, 45), torch.zeros(10), tau, ("ts", "os"))
        joints = torch.zeros(T, 21, 3)
        joints[..., 2] = 0.5
        joints[..., 0] = 0.1 * tt[:, None]  # steady
        steady = float(chunk.acceleration(joints))
        joints[..., 0] = 0.5 * tt[:, None] ** 2  # 1 m/s^2
        accelerating = float(chunk.acceleration(joints))
        terms[name] = (float(got["ts"]), float(got["os"]), steady, accelerating)
        if name == "uneven" and not literal:  # the same frames read at a constant rate
            assumed = _Chunk(model, init, np.zeros((T, 21, 2)), np.zeros((T, 21)), K, slice(0, T), "cpu", options, fps)
            joints[..., 0] = 0.1 * tt[:, None]
            assert float(assumed.acceleration(joints)) > 0.1 * accelerating  # steady, yet "accelerating"
    even, odd = terms["even"], terms["uneven"]
    if literal:  # per frame pair: 23 uneven pairs (16 of 1/30 s, 7 of 2/30 s) against 30 even ones
        assert odd[0] / even[0] == pytest.approx((16 + 7 * 4) / 30, rel=1e-4)
        return
    assert odd[0] == pytest.approx(even[0], rel=1e-4) and odd[1] == pytest.approx(even[1], rel=1e-4)
    assert abs(odd[2]) < 1e-6 * odd[3] and abs(even[2]) < 1e-6 * even[3]
    # the triples cover the clip but for half a step at each end: 1 - (1/30 + 2/30) / 2 s against 1 - 1/30 s
    assert odd[3] / even[3] == pytest.approx((1 - 1.5 / 30) / (1 - 1 / 30), rel=1e-3)


def test_prior_windows_lie_on_the_frames_real_times():
    """On frame times that slow from 30 to 15 fps the windows span the prior's duration in seconds,
    blend to one on every frame, and resampling reads a steady turn at the prior's frame times."""
    import roma

    from engine.fit.windows import layout, resample_windows

    t = uneven(300, 100)  # 10 s: 100 frames at 30 fps, then 100 at 15 fps
    T, fps = len(t), (len(t) - 1) / t[-1]
    lay = layout(T, fps, 64, 30.0, overlap=16, times=t)
    duration = 63 / 30.0
    rel = lay.times.numpy()
    assert (rel <= duration + 1e-5).all() and (rel[lay.mask.numpy()][:, None] >= 0).all()
    frames = lay.frame_index.numpy()
    assert np.allclose(rel[lay.mask.numpy()], (t[frames] - t[lay.starts][:, None])[lay.mask.numpy()], atol=1e-5)
    total = np.zeros(T)
    np.add.at(total, frames[lay.mask.numpy()], lay.weight.numpy()[lay.mask.numpy()])
    assert np.allclose(total, 1.0, atol=1e-5)
    counts = lay.mask.numpy().sum(1)
    assert counts.max() == 64 and counts.min() == 32  # a 30 fps window and a 15 fps one
    # a steady turn about z, 0.5 rad/s, read at each window's prior frames (every 1/30 s from its start)
    turn = torch.zeros(T, 3, dtype=torch.float32)
    turn[:, 2] = torch.as_tensor(0.5 * t, dtype=torch.float32)
    windows = resample_windows(turn, lay, fps, 64, 30.0)  # (W,64,3)
    at = np.minimum(t[lay.starts][:, None] + np.arange(64)[None] / 30.0, t[-1])
    angle = roma.rotvec_to_rotmat(windows.reshape(-1, 3))
    expected = roma.rotvec_to_rotmat(torch.as_tensor(np.stack([0 * at, 0 * at, 0.5 * at], -1).reshape(-1, 3),
                                                     dtype=torch.float32))
    err = roma.rotmat_geodesic_distance(angle, expected)
    assert float(err.max()) < 1e-3, float(err.max())
    # laid on a constant rate, the windows read the slow part at the wrong times (half a window off)
    constant = layout(T, fps, 64, 30.0, overlap=16)
    got = roma.rotvec_to_rotmat(resample_windows(turn, constant, fps, 64, 30.0).reshape(-1, 3))
    at = np.interp(constant.starts[:, None] + np.arange(64)[None] / 30.0 * fps, np.arange(T), t)
    expected = roma.rotvec_to_rotmat(torch.as_tensor(np.stack([0 * at, 0 * at, 0.5 * at], -1).reshape(-1, 3),
                                                     dtype=torch.float32))
    assert float(roma.rotmat_geodesic_distance(got, expected).max()) < 1e-3  # where it reads, it reads right...
    assert (np.diff(at, axis=1) > 1.25 / 30).any() and (np.diff(at, axis=1) < 0.75 / 30).any()  # ...not every 1/30 s
