"""Stage II of the fit (docs/method.md sections 5 and 4): the motion prior's latents, one per window,
with the global rotation, the translation, the shape and a per-frame finger residual, on one chunk.

    fit = stage2(chunk, prior, phi0 (t,3), tau0 (t,3), pose0 (t,45), beta0 (10,), fps, fit_beta, options)
    fit.global_orient (t,3), fit.transl (t,3) m, fit.betas (10,), fit.hand_pose (t,45), fit.converged

The pieces, as functions of what they need: ``prior_windows`` lays the prior's windows over the
chunk (``PriorWindows``); ``start_variables`` encodes stage I's poses into z0 and makes the variables
(``StageTwoVariables``); ``decode`` turns the latents (and residual) into the chunk's finger poses
and global rotations; ``prior_term`` is L_MP; ``stage2_loss`` the weighted sum of every term;
``filter_root`` the "filtered" global rotation and the translation re-fitted to it. Left hands pass
through the right-hand prior mirrored (``to_prior_space``).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import roma
import torch
from torch import Tensor

from engine.fit import losses as L
from engine.fit.optim import optimise
from engine.fit.options import FitOptions, stage_weights
from engine.fit.temporal import one_euro_rotations_zero_phase
from engine.fit.terms import TAU_SCALE, Chunk, StageFit, to_tensor
from engine.fit.windows import Layout, blend_rotations, layout, resample_windows

if TYPE_CHECKING:
    from engine.contract.progress import Reporter
    from engine.prior.model import MotionPrior


@dataclass
class PriorWindows:
    """The prior's W windows of n frames over a chunk of t frames, and what decoding them needs."""
    prior: "MotionPrior"
    lay: Layout  # the windows (engine.fit.windows): frame_index, weight, times (W,n)
    T: int  # the chunk's frames, t
    mirrored: bool  # a left hand: poses pass through the right-hand prior mirrored
    reference: Tensor  # (t,15,3) stage I's fingers: the hemisphere the blended rotations are taken in
    phi0: Tensor  # (t,3) stage I's global rotation (the reference of the blended "prior" root motion)
    prior_times: Tensor  # (W,window) the prior's frame grid, s
    cover: Tensor | None  # (W,) each window's share of a window's frames (prior_per_window), or None


@dataclass
class StageTwoVariables:
    """Stage II's variables (optimised: z, phi or phi_w, tau_v, beta when fitted, delta with
    ``finger_residual``) and the anchors their terms are measured from."""
    z: Tensor  # (W,D) the prior's latents
    z0: Tensor  # (W,D) the encoder's mean for stage I's poses
    phi: Tensor | None  # (t,3) per-frame global rotation, or None when it comes through the prior
    phi_w: Tensor | None  # (W,3) one base rotation per window (root_motion "prior"), else None
    tau_v: Tensor  # (t,3) the translation in TAU_SCALE units (cm)
    beta: Tensor  # (10,)
    delta: Tensor  # (t,45) the finger residual (zeros without finger_residual)
    delta0: Tensor  # (t,45) what the residual's size is measured from

    def params(self, fit_beta: bool, options: FitOptions) -> list[Tensor]:
        """The tensors optimised, in the optimiser's order."""
        params = [self.phi_w if options.root_from_prior else self.phi, self.tau_v, self.z]
        params += [self.beta] if fit_beta else []
        return params + ([self.delta] if options.finger_residual else [])


def to_prior_space(p: Tensor, mirrored: bool) -> Tensor:
    """Rotations (...,3k) of a hand into the right-hand prior's space (mirrored for a left hand); an
    involution: also back again."""
    from engine.hand_model import mirror_pose

    return mirror_pose(p) if mirrored else p


def prior_windows(chunk: Chunk, prior: "MotionPrior", phi0: Tensor, pose0: Tensor, fps: float,
                  options: FitOptions) -> PriorWindows:
    """The prior's windows over the chunk (on its frame times when uneven); phi0 (t,3), pose0 (t,45)
    stage I's result."""
    lay = layout(chunk.T, fps, prior.window, prior.fps, options.overlap, chunk.device, times=chunk.times)
    W = lay.frame_index.shape[0]
    # each window's share of a window's worth of frames (its blend weights sum to that many frames)
    cover = lay.weight.sum(1) / lay.length if options.prior_per_window else None  # (W,)
    return PriorWindows(prior, lay, chunk.T, chunk.model.side == "left", pose0.reshape(chunk.T, 15, 3), phi0,
                        prior.default_times(W, device=chunk.device), cover)


def start_variables(win: PriorWindows, phi0: Tensor, tau0: Tensor, pose0: Tensor, beta0: Tensor, fps: float,
                    fit_beta: bool, options: FitOptions) -> StageTwoVariables:
    """Stage II's variables at its start: z = z0, the encoder's mean for stage I's windows of pose0
    (t,45) (and phi0 (t,3) with root_motion "prior"); phi0, tau0 (t,3) m, beta0 (10,) as stage I left
    them; the residual delta = delta0 = 0 (``anchor_residual`` moves both to stage I's fingers)."""
    prior, lay, device = win.prior, win.lay, phi0.device
    W = lay.frame_index.shape[0]
    with torch.no_grad():
        init_windows = resample_windows(to_prior_space(pose0, win.mirrored), lay, fps, prior.window, prior.fps)
        orient_windows = resample_windows(to_prior_space(phi0, win.mirrored), lay, fps, prior.window, prior.fps)
        z0, _ = prior.encode(init_windows.reshape(W, prior.window, 45),
                             orient_windows.reshape(W, prior.window, 3) if options.root_from_prior else None)
    z = z0.clone().requires_grad_(True)
    phi = phi_w = None
    if options.root_from_prior:
        # Phi_t = Phi_w D_root(z)(t) D_root(z)(0)^T: one base rotation per window, the turning inside
        # the window from the prior (the variable Phi of the table, parameterised through the prior)
        phi_w = phi0[torch.as_tensor(lay.starts, device=device)].clone().requires_grad_(True)
    else:
        phi = phi0.clone().requires_grad_(True)
    tau_v = (tau0 * TAU_SCALE).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    delta = torch.zeros(win.T, 45, device=device)
    delta0 = torch.zeros(win.T, 45, device=device)
    return StageTwoVariables(z, z0, phi, phi_w, tau_v, beta, delta, delta0)


def decode(win: PriorWindows, z: Tensor, v: StageTwoVariables, options: FitOptions) -> tuple[Tensor, Tensor]:
    """The latents z (W,D) decoded and blended over the chunk: finger poses (t,45) (composed with the
    residual v.delta (t,45) with ``finger_residual``) and global rotations (t,3): v.phi, or with
    root_motion "prior" v.phi_w (W,3) turned by the prior's decoded root motion."""
    lay, T = win.lay, win.T
    W, n = lay.frame_index.shape
    rot = win.prior.decode_rot(z, lay.times)  # (W,n,16,3,3) in the prior's (right-hand) space
    fingers = to_prior_space(roma.rotmat_to_rotvec(rot[:, :, 1:]).reshape(W, n, 45), win.mirrored)
    pose = blend_rotations(fingers.reshape(W, n, 15, 3), lay, T, win.reference).reshape(T, 45)
    if options.finger_residual:  # R_j = D(z)_j exp(delta_j), per joint in its parent's frame
        pose = roma.rotvec_composition([pose.reshape(-1, 3), v.delta.reshape(-1, 3)]).reshape(T, 45)
    if not options.root_from_prior:
        return pose, v.phi
    turn = rot[:, :1, 0].transpose(-1, -2) @ rot[:, :, 0]  # (W,n,3,3) relative to the window start
    turn = to_prior_space(roma.rotmat_to_rotvec(turn), win.mirrored)
    orient = roma.rotvec_to_rotmat(v.phi_w)[:, None] @ roma.rotvec_to_rotmat(turn)
    phi_t = blend_rotations(roma.rotmat_to_rotvec(orient)[:, :, None], lay, T, win.phi0[:, None])[:, 0]
    return pose, phi_t


def anchor_residual(win: PriorWindows, v: StageTwoVariables, pose0: Tensor, options: FitOptions) -> None:
    """With ``residual_anchor`` "per-frame": the residual starts where stage I's fingers pose0 (t,45)
    are (D(z0) exp(delta0) = pose0) and its size is measured from there: the fingers keep stage I's
    pose unless the prior's motion and the detections say otherwise, instead of being pulled to the
    decoding, which opens a fist. Sets v.delta0 and v.delta (in place)."""
    if options.finger_residual and options.residual_anchor == "per-frame":
        with torch.no_grad():
            dec0, _ = decode(win, v.z0, v, options)
            v.delta0 = roma.rotvec_composition([-dec0.reshape(-1, 3), pose0.reshape(-1, 3)]).reshape(win.T, 45)
            v.delta.copy_(v.delta0)
    v.delta.requires_grad_(options.finger_residual)


def prior_term(win: PriorWindows, z: Tensor, z0: Tensor, options: FitOptions) -> Tensor:
    """L_MP (a scalar) of the latents z (W,D): "anchored" how far z moved from the clip's own encoding
    z0 (W,D), "unit" mean(z^2), "posterior" -log N(z; mu(theta), sigma(theta)), theta = D(z); per
    window's share of frames (``prior_per_window``) or over the windows."""
    if options.prior_term == "anchored":  # how far z moved from the clip's own encoding
        per_window = ((z - z0) ** 2).mean(-1)  # (W,)
    elif options.prior_term == "unit":
        per_window = (z ** 2).mean(-1)  # (W,)
    else:  # the poster's -log N(z; mu(theta), sigma(theta)), theta = D(z) the current poses
        mu, sigma = win.prior.encode(win.prior.decode(z, win.prior_times))
        per_window = win.prior.neg_log_likelihood(z, mu, sigma)
    if win.cover is not None:
        return (per_window * win.cover).sum()
    return per_window.sum() if options.prior_term == "posterior" else per_window.mean()


def stage2_weights(chunk: Chunk, options: FitOptions) -> dict[str, float]:
    """Stage II's terms and weights on this chunk (``options.weights2``, L_beta x t; without
    ``finger_residual`` no residual terms, "res" and "res_s")."""
    return stage_weights(options.weights2, chunk.T, options,
                         without=() if options.finger_residual else ("res", "res_s"))


def stage2_loss(chunk: Chunk, win: PriorWindows, v: StageTwoVariables, w: dict[str, float],
                options: FitOptions) -> Tensor:
    """Stage II's loss (a scalar) at the variables' current values: sum of w[name] x term."""
    pose, phi_t = decode(win, v.z, v, options)
    terms = chunk.data_terms(phi_t, pose, v.beta, v.tau_v / TAU_SCALE, w)
    terms["mp"] = prior_term(win, v.z, v.z0, options)
    if options.finger_residual:
        terms["res"] = L.residual_size(v.delta - v.delta0, chunk.rot_unit)
        terms["res_s"] = chunk.velocity(L.residual_smooth, v.delta, chunk.rot_unit)
    return sum(w[k] * terms[k] for k in w)


def stage2(chunk: Chunk, prior: "MotionPrior", phi0: Tensor, tau0: Tensor, pose0: Tensor, beta0: Tensor,
           fps: float, fit_beta: bool, options: FitOptions, reporter: "Reporter | None" = None) -> StageFit:
    """Stage II from stage I's phi0, tau0 (t,3) m, pose0 (t,45) and beta0 (10,) (fitted too when
    ``fit_beta``): the best iterate of ``options.iters_stage2`` iterations, then with root_motion
    "filtered" the filtered rotation and the translation re-fitted to it (``filter_root``).
    ``converged`` False when it diverged or decoded anything not finite."""
    win = prior_windows(chunk, prior, phi0, pose0, fps, options)
    v = start_variables(win, phi0, tau0, pose0, beta0, fps, fit_beta, options)
    w = stage2_weights(chunk, options)
    anchor_residual(win, v, pose0, options)
    ok, _ = optimise(v.params(fit_beta, options), lambda: stage2_loss(chunk, win, v, w, options),
                     options.iters_stage2, options, reporter, tol=options.tol2)
    with torch.no_grad():
        pose, phi_t = decode(win, v.z, v, options)
    ok = ok and bool(torch.isfinite(pose).all()) and bool(torch.isfinite(phi_t).all())
    tau = (v.tau_v / TAU_SCALE).detach()
    if ok and options.root_motion == "filtered":
        phi_t, tau = filter_root(chunk, phi_t.detach(), pose.detach(), v.beta.detach(), tau, fps, w, options,
                                 reporter)
    return StageFit(phi_t.detach(), tau, v.beta.detach(), pose.detach(), ok)


def filter_root(chunk: Chunk, phi: Tensor, pose: Tensor, beta: Tensor, tau: Tensor, fps: float,
                weights: dict[str, float], options: FitOptions,
                reporter: "Reporter | None" = None) -> tuple[Tensor, Tensor]:
    """Stage II's "filtered" global rotation: the zero-lag One Euro filter on the chunk's per-frame
    rotation phi (t,3), then the translation tau (t,3) re-fitted to it (``options.refit_iters``
    iterations of stage II's translation terms, pose (t,45) and beta held). -> (filtered phi (t,3),
    tau (t,3))."""
    phi_f = to_tensor(one_euro_rotations_zero_phase(phi.cpu().numpy(), fps, times=chunk.times), chunk.device)
    terms = {k: v for k, v in weights.items() if k in ("tr", "ts", "2d", "ja")}  # the terms tau enters
    if options.refit_iters == 0 or not terms:
        return phi_f, tau
    tau_v = (tau * TAU_SCALE).requires_grad_(True)

    def closure():
        values = chunk.data_terms(phi_f, pose, beta, tau_v / TAU_SCALE, terms)
        return sum(terms[k] * values[k] for k in terms)

    optimise([tau_v], closure, options.refit_iters, options, reporter, tol=options.tol2)  # the best iterate, never worse
    return phi_f, (tau_v / TAU_SCALE).detach()
