"""The two-stage fit on synthetic clips made with the real hand model, prior and camera."""

import numpy as np
import pytest
import torch

from engine.contract import result as R
from engine.evaluation.metrics import all_metrics
from engine.fit import baselines, temporal
from engine.fit.per_frame import PerFrameOptions, per_frame_estimate
from engine.fit.stages import STAGE1_WEIGHTS, FitOptions, fit_sequence, fit_stages
from engine.fit.windows import layout
from engine.hand_model import load_hand_model
from engine.keypoints import HandTrack
from engine.prior import load_prior
from engine.util.camera import project

K = np.array([[900.0, 0, 320], [0, 900.0, 240], [0, 0, 1]])
FPS = 30.0


def real_motion(model, T):
    """Real hand motion: the longest held-out Leap Motion take of the prior's data (the prior never
    trained on it), seen from a camera half a metre away."""
    import roma

    from engine.prior.data import load_sequences, split_by_take
    from engine.prior.train import LEAP_BUNDLE

    seqs = load_sequences([LEAP_BUNDLE])
    _, held = split_by_take(seqs, 0.15)
    seq = max((seqs[i] for i in held), key=lambda s: len(s["hand_pose"]))
    assert len(seq["hand_pose"]) >= T
    hp = torch.as_tensor(seq["hand_pose"][:T], dtype=torch.float32)
    leap_to_camera = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # Leap: y up, z towards the user
    go = roma.rotmat_to_rotvec(leap_to_camera @ roma.rotvec_to_rotmat(torch.as_tensor(seq["global_orient"][:T],
                                                                                         dtype=torch.float32)))
    with torch.no_grad():
        kp = model(go, hp, torch.zeros(10), torch.zeros(T, 3), vertices=False).keypoints
        kp = kp - kp[:, :1].mean(0, keepdim=True) + torch.tensor([0.0, 0.0, 0.5])
    return kp.numpy().astype(np.float64)


def noisy_track(kp3d, seed=0, px=2.0, mm=4.0, drop=()):
    """What a detector would give: 2D with pixel noise, 3D world landmarks with mm noise."""
    rng = np.random.default_rng(seed)
    T = len(kp3d)
    kp2d = project(kp3d, K) + rng.normal(0, px, (T, 21, 2))
    world = kp3d - kp3d[:, :1] + rng.normal(0, mm / 1000, (T, 21, 3))
    track = HandTrack(kp2d, np.full((T, 21), 0.9), np.full(T, R.SOURCE_MEDIAPIPE, np.uint8), world,
                      np.arange(T), np.full(T, 0.9))
    for t in drop:
        track.source[t] = R.SOURCE_NONE
        track.keypoints_2d[t] = 0
        track.confidence[t] = 0
        track.world_landmarks[t] = np.nan
    return track


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = load_hand_model("right")
    gt = real_motion(model, 90)
    track = noisy_track(gt, drop=range(40, 46))
    est = per_frame_estimate(model, track, K, FPS)
    return model, load_prior(), gt, track, est


def test_per_frame_estimate_fills_the_gap_and_reprojects(setup):
    model, _, gt, track, est = setup
    assert est["valid"].all() and (est["keypoint_source"][40:46] == R.SOURCE_INTERPOLATED).all()
    assert (est["confidence"][40:46] < 0.2).all()
    err = np.linalg.norm(project(est["joints"], K) - track.keypoints_2d, axis=-1)[est["detected"]]
    assert np.median(err) < 6.0  # px, with 2 px of noise and a different-size skeleton in 3D


@pytest.mark.parametrize("root_motion", ["filtered", "prior"])
def test_two_stages_smooth_without_losing_accuracy(setup, root_motion):
    model, prior, gt, track, est = setup
    opts = FitOptions(iters_stage1=80, iters_stage2=80, root_motion=root_motion)
    scores = {"per-frame": all_metrics(est["joints"], gt)}
    each = fit_stages(model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=2, options=opts)
    for stages, (out, warnings) in enumerate(each, 1):
        assert not warnings and all(np.isfinite(v).all() for v in out.values())
        assert out["joints"].shape == (90, 21, 3) and out["hand_pose"].shape == (90, 45)
        scores[f"stage {stages}"] = all_metrics(out["joints"], gt)
    base = scores["per-frame"]
    assert scores["stage 2"]["RA-ACC"] < 0.5 * base["RA-ACC"], scores
    if root_motion == "prior":
        # the root-from-prior variant (not the default) smooths but loses accuracy on this clip since
        # issue 21's per-frame estimate (PA-MPJPE 1.3x the per-frame estimate's; docs/history.md)
        return
    assert scores["stage 2"]["PA-MPJPE"] < base["PA-MPJPE"] * 1.1, scores
    # stage I moves the fingers only where the detections insist: it must not bend the shape or turn
    # the hand to absorb their errors
    assert scores["stage 1"]["PA-MPJPE"] < base["PA-MPJPE"] * 1.1, scores
    assert scores["stage 1"]["RA-MPJPE"] < base["RA-MPJPE"] * 1.3, scores


def test_fit_stages_gives_each_stage_as_fit_sequence_does(setup):
    """One run of both stages returns stage I's result exactly as a stage-I-only fit does."""
    model, prior, _, _, est = setup
    opts = FitOptions(iters_stage1=10, iters_stage2=10)
    args = (model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS)
    each = fit_stages(*args, stages=2, options=opts)
    assert len(each) == 2
    for stages in (1, 2):
        alone, warnings = fit_sequence(*args, stages=stages, options=opts)
        assert warnings == each[stages - 1][1]
        for key, value in alone.items():
            assert np.array_equal(value, each[stages - 1][0][key]), (stages, key)
    assert not np.array_equal(each[0][0]["hand_pose"], each[1][0]["hand_pose"])  # stage II moved the fingers
    with pytest.raises(ValueError, match="stages must be 1 or 2"):
        fit_stages(*args, stages=0, options=opts)


def test_shape_term_per_frame_keeps_the_shape(setup):
    """L_beta once per clip (the literal table) lets the 2D term bend the shape on a 90-frame clip to
    absorb the per-frame poses' errors; once per frame (default) keeps it near the truth (zero). Read
    with the table's stage I (fingers held, L_2D in pixels) from the IK's poses alone, whose errors
    are what a shape could absorb (the refined per-frame estimate leaves it little to absorb)."""
    model, prior, gt, track, _ = setup
    est = per_frame_estimate(model, track, K, FPS, PerFrameOptions(refine_iters=0))
    betas = {}
    for per_frame in (True, False):
        opts = FitOptions(iters_stage1=80, shape_reg_per_frame=per_frame, stage1_fingers=False, scale_free_2d=False,
                          weights1=dict(STAGE1_WEIGHTS))
        out, _ = fit_sequence(model, None, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=1, options=opts)
        betas[per_frame] = np.linalg.norm(out["betas"])
    assert betas[True] < 0.5 and betas[False] > 2 * betas[True], betas


def test_baselines_run_in_the_same_path(setup):
    model, _, gt, _, est = setup
    for name, fn in baselines.BASELINES.items():
        b = fn(est, FPS)
        assert b["hand_pose"].shape == (90, 45) and np.isfinite(b["hand_pose"]).all(), name
        # on frames with keypoints each baseline stays with the estimate (One Euro: smoothed, ~0.13 rad)
        off = np.abs(b["hand_pose"] - est["hand_pose"])[est["detected"]].mean()
        assert off < (0.3 if name == "+ One Euro" else 1e-9), (name, off)
    held = baselines.per_frame(est)
    # held from the nearest frame with keypoints, not interpolated
    assert np.allclose(held["hand_pose"][40:43], est["hand_pose"][39])
    assert np.allclose(held["hand_pose"][43:46], est["hand_pose"][46])
    smooth = baselines.one_euro(est, FPS)
    acc = lambda x: np.abs(np.diff(x, 2, axis=0)).mean()
    assert acc(smooth["transl"]) < acc(est["transl"])


def test_zero_phase_rotation_filter_smooths_without_lag():
    """A hand turning steadily (3 degrees per frame about a tilted axis) with 1.5 degrees of jitter:
    the causal One Euro filter lags behind the turn, the forward-backward one does not, and both
    remove most of the jitter."""
    import roma

    rng = np.random.default_rng(0)
    T = 90
    axis = np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93])
    truth = roma.rotvec_to_rotmat(torch.as_tensor(np.radians(3.0) * np.arange(T)[:, None] * axis))
    noise = roma.rotvec_to_rotmat(torch.as_tensor(rng.normal(0, np.radians(1.5), (T, 3))))
    noisy = roma.rotmat_to_rotvec(noise @ truth).numpy()

    def err_deg(rv):  # mean angle to the truth away from the clip's ends
        R = roma.rotvec_to_rotmat(torch.as_tensor(rv))
        return np.degrees(roma.rotmat_geodesic_distance(R, truth).numpy()[10:-10]).mean()

    def jitter(rv):  # mean angular acceleration (degrees per frame^2)
        R = roma.rotvec_to_rotmat(torch.as_tensor(rv))
        step = roma.rotmat_to_rotvec(R[:-1].transpose(-1, -2) @ R[1:])
        return np.degrees(np.linalg.norm(np.diff(step.numpy(), axis=0), axis=-1)).mean()

    causal = temporal.one_euro_rotations(noisy, FPS)
    zero_phase = temporal.one_euro_rotations_zero_phase(noisy, FPS)
    assert err_deg(zero_phase) < 0.6 * err_deg(causal), (err_deg(zero_phase), err_deg(causal))
    assert err_deg(zero_phase) < err_deg(noisy)
    assert jitter(zero_phase) < 0.5 * jitter(noisy) and jitter(causal) < 0.5 * jitter(noisy)


def test_windows_blend_to_one_and_cover_the_clip():
    lay = layout(200, 30.0, 64, 30.0, overlap=16)
    w = np.zeros(200)
    np.add.at(w, lay.frame_index[lay.mask].numpy(), lay.weight[lay.mask].numpy())
    assert np.allclose(w, 1.0) and lay.starts[0] == 0 and lay.starts[-1] + lay.length == 200
    short = layout(10, 25.0, 64, 30.0)
    assert len(short.starts) == 1 and short.mask.sum() == 10
    fast = layout(300, 60.0, 64, 30.0)  # 60 fps clip: a window spans twice the frames
    assert fast.length == 127


@pytest.mark.parametrize("case", ["zero-confidence window", "single frame", "shorter than window", "nan keypoints",
                                  "diverging"])
def test_bad_input_never_crashes_or_leaks_nan(setup, case):
    model, prior, gt, track, est = setup
    est = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in est.items()}
    kp, conf = est["keypoints_2d"].copy(), est["confidence"].copy()
    opts = FitOptions(iters_stage1=20, iters_stage2=20)
    if case == "zero-confidence window":
        conf[:] = 0
    elif case == "single frame":
        est = {k: (v[:1] if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == 90 else v) for k, v in est.items()}
        kp, conf = kp[:1], conf[:1]
    elif case == "shorter than window":
        est = {k: (v[:20] if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == 90 else v) for k, v in est.items()}
        kp, conf = kp[:20], conf[:20]
    elif case == "nan keypoints":
        kp[10:20] = np.nan
    elif case == "diverging":
        opts.lr = 1e6  # absurd steps: the loss blows up
    out, warnings = fit_sequence(model, prior, est, kp, conf, K, FPS, stages=2, options=opts)
    assert all(np.isfinite(v).all() for v in out.values())
    # and the values are a hand where the estimate put it (measured: 6-11 mm from it, 0.45-0.5 m away)
    assert out["joints"].shape == est["joints"].shape
    assert np.linalg.norm(out["joints"] - est["joints"], axis=-1).mean() < 0.03, case
    assert (out["joints"][..., 2] > 0.3).all(), case
    if case in ("zero-confidence window", "diverging"):
        assert warnings, case


def test_keypoint_source_ablation_mediapipe_only(setup):
    model, prior, gt, track, _ = setup
    est = per_frame_estimate(model, track, K, FPS, PerFrameOptions(keypoint_source="mediapipe"))
    assert est["valid"][40:46].all()  # the pose is still interpolated over the gap...
    assert (est["confidence"][40:46] == 0).all() and (est["keypoint_source"][40:46] == R.SOURCE_NONE).all()
    out, _ = fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=2,
                          options=FitOptions(iters_stage1=20, iters_stage2=20))
    assert np.isfinite(out["joints"]).all()  # ...and the fit fills it from the prior alone, near the truth
    rel = lambda j: j[40:46] - j[40:46, :1]
    assert np.linalg.norm(rel(out["joints"]) - rel(gt), axis=-1).mean() < 0.015  # m (measured ~5 mm)


@pytest.mark.parametrize("root_motion", ["filtered", "prior"])  # prior: the root's windows blend too
def test_window_seams_have_no_jump(setup, root_motion):
    """90 frames at 30 fps = two prior windows (starts 0 and 26): inside their overlap the blended
    motion's acceleration error stays within what the rest of the clip has (a hard cut spikes)."""
    model, prior, gt, track, est = setup
    lay = layout(90, FPS, prior.window, prior.fps, overlap=16)
    assert len(lay.starts) == 2
    out, _ = fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=2,
                          options=FitOptions(iters_stage1=40, iters_stage2=80, root_motion=root_motion))
    rel = lambda j: j - j[:, :1]
    acc_err = np.linalg.norm(np.diff(rel(out["joints"]), 2, axis=0) - np.diff(rel(gt), 2, axis=0), axis=-1).mean(-1)
    overlap = np.arange(lay.starts[1] - 1, lay.length - 1)  # second differences touching the overlap
    inside, outside = acc_err[overlap].max(), np.delete(acc_err, overlap).max()
    # measured: 11 vs 14 mm/frame^2 blended; a hard cut between the windows gives 33 (fails)
    assert inside < 1.5 * outside, (inside, outside)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree(setup):
    model, prior, gt, track, est = setup
    opts = FitOptions(iters_stage1=30, iters_stage2=30)
    outs = {}
    for device in ("cpu", "cuda"):
        m, p = load_hand_model("right", device=device), load_prior(device=device)
        outs[device], _ = fit_sequence(m, p, est, est["keypoints_2d"], est["confidence"], K, FPS, stages=2,
                                       options=opts)
    err = np.linalg.norm(outs["cpu"]["joints"] - outs["cuda"]["joints"], axis=-1)
    assert err.mean() < 1e-3, err.mean()  # below a millimetre after 60 float32 Adam steps


def test_per_frame_estimate_reports_progress_in_batches_and_matches_one_batch(setup, monkeypatch):
    import io

    from engine.contract.progress import Reporter, parse_line
    from engine.fit import per_frame as per_frame_module

    model, _, _, track, est = setup
    stream = io.StringIO()
    reporter = Reporter("jsonl", stream=stream, min_interval=0)
    monkeypatch.setattr(per_frame_module, "IK_CHUNK", 32)  # 84 frames with landmarks: batches of 32, 32, 20
    reporter.stage("init", "Per-frame estimate", total=84)
    batched = per_frame_estimate(model, track, K, FPS, reporter=reporter)
    done = [e["done"] for e in map(parse_line, stream.getvalue().splitlines()) if e["event"] == "progress"]
    assert done == [0, 32, 64, 84]
    # the same estimate as one batch, up to each batch's own overall scale (pose within a degree)
    assert np.degrees(np.abs(batched["hand_pose"] - est["hand_pose"])).mean() < 1.0
    np.testing.assert_allclose(batched["joints"], est["joints"], atol=0.01)


def test_literal_form_is_one_flag_away():
    from engine.capture import CaptureOptions
    from engine.commands.cli import capture_parser
    from engine.fit.stages import STAGE2_WEIGHTS

    args = capture_parser().parse_args(["clip.mp4", "--out", "r.npz", "--literal", "--root-motion", "free"])
    options = CaptureOptions.from_args(args)
    assert options.literal and options.root_motion == "free"
    assert not CaptureOptions.from_args(capture_parser().parse_args(["clip.mp4", "--out", "r.npz"])).literal
    literal = FitOptions.literal(root_motion="free")
    assert not literal.finger_residual and not literal.prior_per_window
    assert literal.weights2 == STAGE2_WEIGHTS  # the table's stage II: no translation smoothness, no residual


@pytest.mark.parametrize("literal", [False, True])
def test_units_make_the_tables_weights_act(literal):
    """docs/method.md section 6 a: in the default units a 1 degree turn of the hand or a 1 cm shift
    costs about what a 1 px residual of one confident keypoint costs in L_2D, so the table's weights
    balance them; in the literal radians and metres the same error costs thousands of times less."""
    from engine.fit import losses as L

    options = FitOptions.literal() if literal else FitOptions()
    rot_unit, transl_unit = options.unit_scales
    phi = torch.zeros(1, 3)
    turned = torch.tensor([[np.radians(1.0), 0.0, 0.0]])
    tau = torch.zeros(1, 3)
    shifted = torch.tensor([[0.01, 0.0, 0.0]])
    points = torch.tensor([[[0.0, 0.0, 0.5]]])
    Kt = torch.as_tensor(K, dtype=torch.float32)
    one_px = L.keypoints_2d(points, Kt, L.project(points, Kt) + torch.tensor([1.0, 0.0]), torch.ones(1, 1))
    for cost in (L.orient_data(turned, phi, rot_unit), L.transl_data(shifted, tau, transl_unit)):
        ratio = float(cost / one_px)
        assert (ratio < 1e-3) if literal else (0.5 < ratio < 2.0), (literal, ratio)


def test_adam_without_torch_optim_gives_torch_optims_numbers():
    """engine.fit.optim (issue 22: torch.optim imports torch._dynamo) is torch's Adam with MultiStepLR
    and clip_grad_norm_, step for step."""
    from engine.fit.optim import Adam, clip_grad_norm

    gen = torch.Generator().manual_seed(0)
    A, y = torch.randn(40, 6, generator=gen), torch.randn(40, generator=gen)

    def run(ours):
        w, b = torch.zeros(6, requires_grad=True), torch.zeros(1, requires_grad=True)
        if ours:
            opt = Adam([w, b], lr=0.05, milestones=[30, 42], gamma=0.5)
        else:
            opt = torch.optim.Adam([w, b], lr=0.05)
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, [30, 42], gamma=0.5)
        for _ in range(50):
            opt.zero_grad()
            (((A @ w + b - y) ** 2).mean() * 10).backward()
            if ours:
                clip_grad_norm([w, b], 1.0)
                opt.step()
            else:
                torch.nn.utils.clip_grad_norm_([w, b], 1.0)
                opt.step()
                sched.step()
        return torch.cat([w.detach(), b.detach()])

    assert torch.equal(run(True), run(False))


def test_a_stage_stops_when_converged_with_the_fixed_schedules_result(setup):
    """Issue 22: with a tolerance a stage moves down its step schedule as each phase converges and stops
    when the last one has: on this easy clip it runs fewer iterations than asked for and ends where the
    fixed schedule (tol 0, every iteration) does, within the tolerance's worth of loss and a fraction of
    a millimetre."""
    from engine.fit import stage1 as S  # stage I's optimiser loop, counted

    model, prior, gt, _, est = setup
    args = (model, prior, est, est["keypoints_2d"], est["confidence"], K, FPS)
    runs = {}
    for tol in (0.0, 1e-3):
        counted = []
        optimise = S.optimise

        def counting(params, closure, iters, options, reporter=None, tol=None):
            calls = [0]

            def counted_closure():
                calls[0] += 1
                return closure()

            result = optimise(params, counted_closure, iters, options, reporter, tol)
            counted.append((calls[0], iters, result[1]))
            return result

        S.optimise = counting
        try:
            out, _ = fit_sequence(*args, stages=1, options=FitOptions(iters_stage1=300, tol1=tol))
        finally:
            S.optimise = optimise
        runs[tol] = (out, counted[0])
    (fixed, (n_fixed, _, loss_fixed)), (stopped, (n_stopped, iters, loss_stopped)) = runs[0.0], runs[1e-3]
    assert n_fixed == iters == 300 and n_stopped < iters
    assert loss_stopped <= loss_fixed * (1 + 1e-2)
    assert np.linalg.norm(stopped["joints"] - fixed["joints"], axis=-1).mean() < 1e-3  # metres
    assert all_metrics(stopped["joints"], gt)["PA-MPJPE"] < all_metrics(fixed["joints"], gt)["PA-MPJPE"] * 1.05
