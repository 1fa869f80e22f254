"""The two-stage HMP fit (HMP_METHOD.md section 3).

    out, warnings = fit_sequence(model, prior, init, keypoints_2d (T,21,2), confidence (T,21), K, fps,
                                 stages=2, options=FitOptions(), reporter=None)

``init`` is the per-frame estimate (engine.fit.init): its global_orient, transl, hand_pose and betas
are both the starting point and the hatted targets. Stage I optimises the global rotation Phi, the
translation tau and the shape beta with the finger pose held at the estimate; stage II adds one
latent z of the motion prior per window, the finger pose being the prior's decoding of z.

Stage II's global rotation (``root_motion``): "free" keeps Phi_t per frame, as the method's table has
it; its only rotation terms, L_o and L_os (rad^2), barely resist the 2D term (pixels), so it stays
jittery (RA-ACC 12.2 mm/frame^2 on the rendered benchmark). "prior" makes Phi_t one base rotation per
window turned by the prior's decoded root motion, as NeMF decodes root orientation: smooth (6.9) but
it drifts where the hand is hard to see, with z held by L_MP (back-of-hand clips: RA-MPJPE 48 vs 31
per frame). "filtered" (the default) is "free" followed by the One Euro filter on Phi (the standard
smoother of hand trackers, the "+ One Euro" baseline's setting, not tuned on the benchmark), run
forwards and backwards over the clip so that it does not lag: RA-ACC 6.3, RA-MPJPE 28.6 vs 33.9 for
"prior", PA-MPJPE 6.85 vs 7.06; on 300 frames of held-out real motion (benchmarks/bench_fit.py)
2.86 / 4.29 / 1.15 vs "prior"'s 3.55 / 5.25 / 1.51 (docs/benchmarks.md).

| stage | variables           | losses and weights                                          |
| I     | Phi, tau, beta      | L_o 3, L_tr 1, L_os 1, L_ts 5, L_beta 3, L_2D 0.05           |
| II    | Phi, tau, beta, z   | L_o 2, L_tr 1, L_os 1, L_beta 10, L_2D 0.05, L_MP 300        |

L_beta is counted once per frame (``shape_reg_per_frame``, see FitOptions): the table's other terms
are sums over frames, and a once-per-clip shape term would lose its weight on long clips.

Adam at lr 0.05 with a step schedule (x0.5 at 60 % and 85 % of the iterations) and gradient
clipping (norm 1), as the authors' code; iterations and an early stop on a flat loss are options.
L_MP has two forms. ``prior_term="posterior"`` is the poster's -log N(z; mu(theta), sigma(theta)),
(mu, sigma) the encoder's posterior of the current pose sequence theta = D(z), differentiated
through all of it. ``prior_term="unit"`` is the authors' code's mean(z^2). The default is "unit", a
measured choice: with the shipped prior (trained on ~80 s of open Leap Motion data, held-out
reconstruction 5.4 mm) the posterior term at weight 300 ties z to the encoder's mean so tightly
that stage II loses finger accuracy (PA-MPJPE 6.1 mm vs 3.4 mm with "unit" and 3.9 mm per-frame on
a held-out real motion; tests/test_fit.py, docs/benchmarks.md); variants that hold (mu, sigma)
constant or take them from the per-frame poses measured worse still. With a prior trained on AMASS
the poster's term is one option away. z starts at the encoder's mean for the per-frame poses.

Long clips are cut into chunks of at most ``chunk_frames`` frames that overlap by one prior window
and are blended like windows, so memory is bounded by the chunk, not the clip; the shape found on
the first chunk is kept for the others (one shape per hand per clip). Inside a chunk all windows are
optimised as one batch (a GPU stays busy). Left hands go through the right-hand prior mirrored.

A stage that ends with a non-finite or larger loss than it started with (divergence) is undone for
its chunk: the previous stage's values are kept and a warning says so. No NaN ever leaves.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.fit import losses as L
from engine.fit.baselines import one_euro_rotations_zero_phase
from engine.fit.windows import blend_rotations, layout, resample_windows

STAGE1_WEIGHTS = {"o": 3.0, "tr": 1.0, "os": 1.0, "ts": 5.0, "beta": 3.0, "2d": 0.05}
STAGE2_WEIGHTS = {"o": 2.0, "tr": 1.0, "os": 1.0, "beta": 10.0, "2d": 0.05, "mp": 300.0}
ROOT_MOTIONS = ("prior", "free", "filtered")


@dataclass
class FitOptions:
    iters_stage1: int = 200  # the authors use 400 per stage (--quality best)
    iters_stage2: int = 200
    lr: float = 0.05
    tol: float = 1e-6  # early stop: relative loss change below tol over `patience` iterations
    patience: int = 25
    overlap: int = 16  # prior frames shared by consecutive windows
    chunk_frames: int = 2048
    # L_MP: "unit" = mean(z^2), the authors' code's term (default: measured better with our prior,
    # see the module docstring); "posterior" = the poster's -log N(z; mu(theta), sigma(theta))
    prior_term: str = "unit"
    # stage II's global rotation: "prior" through the prior's root channel (one base rotation per
    # window), "free" per frame (the method's table), "filtered" per frame then a One Euro filter
    root_motion: str = "filtered"
    # L_beta counted once per frame (x T) rather than once per clip. The table's terms are sums over
    # frames except L_beta (one shape per clip), so read literally the shape's weight shrinks as a
    # clip grows: on 300 frames of known motion stage I then bends the shape to absorb the per-frame
    # poses' errors (PA-MPJPE 3.75 -> 9.1 mm, RA-MPJPE 4.5 -> 20 mm; stage II 5.9 / 18.4 mm). Scaling
    # L_beta by T is the same balance as taking every per-frame term as a mean over frames, as fitting
    # codes commonly do (Adam is blind to the loss's overall scale); it gives stage I 3.77 / 4.5 mm and
    # stage II 3.55 / 5.3 mm on that clip (benchmarks/bench_fit.py). False = the literal sums.
    shape_reg_per_frame: bool = True
    clip_grad: float = 1.0
    weights1: dict = field(default_factory=lambda: dict(STAGE1_WEIGHTS))
    weights2: dict = field(default_factory=lambda: dict(STAGE2_WEIGHTS))

    def __post_init__(self):
        if self.root_motion not in ROOT_MOTIONS:
            raise ValueError(f"root_motion must be one of {ROOT_MOTIONS}, got {self.root_motion!r}")

    @property
    def root_from_prior(self):
        return self.root_motion == "prior"


def _t(x, device, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


class _Chunk:
    """One chunk of frames: targets and the forward pass shared by both stages."""

    def __init__(self, model, init, kp2d, alpha, K, sl, device):
        self.model, self.device = model, device
        self.phi_hat = _t(init["global_orient"][sl], device)
        self.tau_hat = _t(init["transl"][sl], device)
        self.pose_hat = _t(init["hand_pose"][sl], device)
        self.kp = _t(kp2d[sl], device)
        self.alpha = _t(alpha[sl], device)
        self.K = _t(K, device)
        self.T = self.phi_hat.shape[0]

    def keypoints(self, phi, pose, beta, tau):
        return self.model(phi, pose, beta, tau, vertices=False).keypoints

    def data_terms(self, phi, pose, beta, tau):
        return {"o": L.orient_data(phi, self.phi_hat), "tr": L.transl_data(tau, self.tau_hat),
                "os": L.orient_smooth(phi), "ts": L.transl_smooth(tau), "beta": L.shape_reg(beta),
                "2d": L.keypoints_2d(self.keypoints(phi, pose, beta, tau), self.K, self.kp, self.alpha)}


def _optimise(params, closure, iters, options, reporter=None):
    """Adam with the step schedule. Leaves params at the best iterate and returns (converged, best
    loss): converged is False when the loss became non-finite or ended above where it started
    (the optimisation diverged)."""
    opt = torch.optim.Adam(params, lr=options.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(iters * 0.6), int(iters * 0.85)], gamma=0.5)
    first = last = None
    history = []
    best = (float("inf"), [p.detach().clone() for p in params])
    for it in range(iters):
        opt.zero_grad()
        loss = closure()
        value = float(loss.detach())
        if not np.isfinite(value):
            with torch.no_grad():  # restore the best finite state and stop
                for p, b in zip(params, best[1]):
                    p.copy_(b)
            return False, best[0]
        if first is None:
            first = value
        if value < best[0]:
            best = (value, [p.detach().clone() for p in params])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, options.clip_grad)
        opt.step()
        sched.step()
        last = value
        history.append(value)
        if reporter is not None:
            reporter.advance()
        if len(history) > options.patience:
            old = history[-options.patience - 1]
            if abs(old - value) <= options.tol * max(abs(old), 1e-12):
                if reporter is not None:
                    reporter.advance(iters - it - 1)
                break
    with torch.no_grad():
        for p, b in zip(params, best[1]):
            p.copy_(b)
    return last is not None and last <= first * (1 + 1e-3) + 1e-9, best[0]


# Translation is optimised in centimetres (tau = TAU_UNIT * variable): Adam's step is about lr per
# variable, and 0.05 m (5 cm) per step would throw the hand around; 0.05 cm is the scale of the
# rotations' 0.05 rad (3 degrees). A change of variable only: the losses are as in the table.
TAU_UNIT = 0.01


def _weights(weights, T, options):
    """The table's weights, L_beta scaled by the chunk's frames when ``shape_reg_per_frame``."""
    w = dict(weights)
    if options.shape_reg_per_frame:
        w["beta"] = w["beta"] * T
    return w


def _stage1(chunk, beta0, fit_beta, options, reporter):
    phi = chunk.phi_hat.clone().requires_grad_(True)
    tau_v = (chunk.tau_hat / TAU_UNIT).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    w = _weights(options.weights1, chunk.T, options)

    def closure():
        terms = chunk.data_terms(phi, chunk.pose_hat, beta, tau_v * TAU_UNIT)
        return sum(w[k] * terms[k] for k in w)

    params = [phi, tau_v] + ([beta] if fit_beta else [])
    ok, _ = _optimise(params, closure, options.iters_stage1, options, reporter)
    return phi.detach(), (tau_v * TAU_UNIT).detach(), beta.detach(), ok


def _stage2(chunk, prior, phi0, tau0, beta0, fps, fit_beta, options, reporter):
    import roma

    from engine.hand_model import mirror_pose

    device = chunk.device
    left = chunk.model.side == "left"
    to_prior = (lambda p: mirror_pose(p)) if left else (lambda p: p)  # an involution: also back again
    lay = layout(chunk.T, fps, prior.window, prior.fps, options.overlap, device)
    W, n = lay.frame_index.shape
    prior_times = prior.default_times(W, device=device)
    with torch.no_grad():
        init_windows = resample_windows(to_prior(chunk.pose_hat), lay, fps, prior.window, prior.fps)
        orient_windows = resample_windows(to_prior(phi0), lay, fps, prior.window, prior.fps)
        z0, _ = prior.encode(init_windows.reshape(W, prior.window, 45),
                             orient_windows.reshape(W, prior.window, 3) if options.root_from_prior else None)
    z = z0.clone().requires_grad_(True)
    if options.root_from_prior:
        # Phi_t = Phi_w D_root(z)(t) D_root(z)(0)^T: one base rotation per window, the turning inside
        # the window from the prior (the variable Phi of the table, parameterised through the prior)
        phi_w = phi0[torch.as_tensor(lay.starts, device=device)].clone().requires_grad_(True)
    else:
        phi = phi0.clone().requires_grad_(True)
    tau_v = (tau0 / TAU_UNIT).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    w = _weights(options.weights2, chunk.T, options)
    reference = chunk.pose_hat.reshape(chunk.T, 15, 3)

    def decoded(z_):
        """Blended finger poses (T,45) and, with root_from_prior, global rotations (T,3)."""
        rot = prior.decode_rot(z_, lay.times)  # (W,n,16,3,3) in the prior's (right-hand) space
        fingers = to_prior(roma.rotmat_to_rotvec(rot[:, :, 1:]).reshape(W, n, 45))
        pose = blend_rotations(fingers.reshape(W, n, 15, 3), lay, chunk.T, reference).reshape(chunk.T, 45)
        if not options.root_from_prior:
            return pose, phi
        turn = rot[:, :1, 0].transpose(-1, -2) @ rot[:, :, 0]  # (W,n,3,3) relative to the window start
        turn = to_prior(roma.rotmat_to_rotvec(turn))
        orient = roma.rotvec_to_rotmat(phi_w)[:, None] @ roma.rotvec_to_rotmat(turn)
        phi_t = blend_rotations(roma.rotmat_to_rotvec(orient)[:, :, None], lay, chunk.T, phi0[:, None])[:, 0]
        return pose, phi_t

    def closure():
        pose, phi_t = decoded(z)
        terms = chunk.data_terms(phi_t, pose, beta, tau_v * TAU_UNIT)
        terms.pop("ts")  # stage II has no translation smoothness term in the method's table
        if options.prior_term == "unit":
            terms["mp"] = (z ** 2).mean()
        else:  # the poster's -log N(z; mu(theta), sigma(theta)), theta = D(z) the current poses
            mu, sigma = prior.encode(prior.decode(z, prior_times))
            terms["mp"] = prior.neg_log_likelihood(z, mu, sigma).sum()
        return sum(w[k] * terms[k] for k in w)

    params = [phi_w if options.root_from_prior else phi, tau_v, z] + ([beta] if fit_beta else [])
    ok, _ = _optimise(params, closure, options.iters_stage2, options, reporter)
    with torch.no_grad():
        pose, phi_t = decoded(z)
    ok = ok and bool(torch.isfinite(pose).all()) and bool(torch.isfinite(phi_t).all())
    return phi_t.detach(), (tau_v * TAU_UNIT).detach(), beta.detach(), pose.detach(), ok


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


def fit_sequence(model, prior, init, keypoints_2d, confidence, K, fps, stages=2, options=None, reporter=None):
    """Run stages 1..``stages`` on one hand's clip. See the module docstring."""
    options = options or FitOptions()
    device = model.device
    T = len(init["global_orient"])
    warnings = []
    kp2d = np.nan_to_num(np.asarray(keypoints_2d, dtype=np.float64))
    alpha = np.nan_to_num(np.asarray(confidence, dtype=np.float64)).clip(0, 1)
    alpha[~np.isfinite(np.asarray(keypoints_2d)).all(-1)] = 0.0
    out = {k: np.array(init[k], dtype=np.float64, copy=True) for k in ("global_orient", "transl", "hand_pose")}
    beta = _t(init["betas"], device)
    if stages >= 2 and prior is None:
        raise ValueError("stage II needs a motion prior")
    window_frames = int(np.floor((prior.window - 1) / prior.fps * fps)) + 1 if prior is not None else 64
    spans = _chunks(T, max(options.chunk_frames, 2 * window_frames), window_frames)
    chunks = [_Chunk(model, init, kp2d, alpha, K, slice(a, b), device) for a, b in spans]
    has_data = [bool(alpha[a:b].any()) for a, b in spans]
    for (a, b), ok in zip(spans, has_data):
        if not ok:
            warnings.append(f"frames {a}-{b - 1}: no keypoint with confidence > 0; kept the per-frame estimate")
    results = [{key: out[key][a:b] for key in out} for a, b in spans]
    with torch.enable_grad():
        if reporter is not None:
            reporter.stage("fit1", "Fitting stage I", total=options.iters_stage1 * len(spans))
        stage1 = []
        for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
            if not has_data[k]:
                stage1.append(None)
                if reporter is not None:
                    reporter.advance(options.iters_stage1)
                continue
            phi, tau, beta1, ok = _stage1(chunk, beta, k == 0, options, reporter)
            if ok:
                beta = beta1
            else:
                warnings.append(f"frames {a}-{b - 1}: stage I diverged; kept the per-frame estimate there")
                phi, tau = chunk.phi_hat, chunk.tau_hat
            stage1.append((phi, tau))
            results[k].update(global_orient=phi.cpu().numpy(), transl=tau.cpu().numpy())
        if stages >= 2:
            if reporter is not None:
                reporter.stage("fit2", "Fitting stage II (motion prior)", total=options.iters_stage2 * len(spans))
            for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
                if stage1[k] is None:
                    if reporter is not None:
                        reporter.advance(options.iters_stage2)
                    continue
                phi2, tau2, beta2, pose2, ok2 = _stage2(chunk, prior, *stage1[k], beta, fps, k == 0, options, reporter)
                if ok2:
                    beta = beta2
                    results[k] = {"global_orient": phi2.cpu().numpy(), "transl": tau2.cpu().numpy(),
                                  "hand_pose": pose2.cpu().numpy()}
                else:
                    warnings.append(f"frames {a}-{b - 1}: stage II diverged; kept stage I there")
    # chunk overlaps: linear cross-fade
    blend_w = np.zeros(T)
    acc = {k: np.zeros_like(v) for k, v in out.items()}
    for k, (a, b) in enumerate(spans):
        ramp = np.ones(b - a)
        ov = min(window_frames, b - a)
        if k > 0:
            ramp[:ov] = np.linspace(0, 1, ov + 2)[1:-1]
        if k < len(spans) - 1:
            ramp[-ov:] = np.minimum(ramp[-ov:], np.linspace(1, 0, ov + 2)[1:-1])
        for key in acc:
            acc[key][a:b] += ramp.reshape(-1, *([1] * (acc[key].ndim - 1))) * results[k][key]
        blend_w[a:b] += ramp
    for key in out:  # overlaps are short and close: a weighted mean of axis-angles is adequate there
        out[key] = acc[key] / blend_w.reshape(-1, *([1] * (acc[key].ndim - 1)))
    out["betas"] = beta.cpu().numpy().astype(np.float64)
    if stages >= 2 and options.root_motion == "filtered":  # per-frame Phi, then the One Euro filter
        out["global_orient"] = one_euro_rotations_zero_phase(out["global_orient"], fps)
    with torch.no_grad():
        kp = model(_t(out["global_orient"], device), _t(out["hand_pose"], device), _t(out["betas"], device),
                   _t(out["transl"], device), vertices=False).keypoints
    out["joints"] = kp.cpu().numpy().astype(np.float64)
    for key, value in out.items():
        if not np.all(np.isfinite(value)):  # never let a NaN out: fall back to the per-frame estimate
            warnings.append(f"non-finite {key} after fitting; the per-frame estimate is used")
            return {**{k: np.asarray(init[k], np.float64) for k in ("global_orient", "transl", "hand_pose", "betas")},
                    "joints": np.asarray(init["joints"], np.float64)}, warnings
    return out, warnings
