"""Stage I of the fit (docs/method.md section 5): the global rotation, the translation, the shape
and (``stage1_fingers``) the finger pose, per frame, on one chunk.

    fit = stage1(chunk, beta0 (10,), fit_beta, options, reporter)
    fit.global_orient (t,3), fit.transl (t,3) m, fit.betas (10,), fit.hand_pose (t,45), fit.converged
"""

from typing import TYPE_CHECKING

from torch import Tensor

from engine.fit.optim import optimise
from engine.fit.options import FitOptions, stage_weights
from engine.fit.terms import TAU_SCALE, Chunk, StageFit

if TYPE_CHECKING:
    from engine.contract.progress import Reporter


def stage1_weights(chunk: Chunk, options: FitOptions) -> dict[str, float]:
    """Stage I's terms and weights on this chunk (``options.weights1``, L_beta x t; without
    ``stage1_fingers`` no finger terms, "pd" and "lim")."""
    return stage_weights(options.weights1, chunk.T, options, without=() if options.stage1_fingers else ("pd", "lim"))


def stage1(chunk: Chunk, beta0: Tensor, fit_beta: bool, options: FitOptions,
           reporter: "Reporter | None" = None) -> StageFit:
    """Stage I from the chunk's per-frame estimate (chunk.phi_hat, tau_hat (t,3), pose_hat (t,45))
    and the shape beta0 (10,), fitted too when ``fit_beta``. The best iterate of
    ``options.iters_stage1`` iterations; ``converged`` False when it diverged (engine.fit.optim)."""
    phi = chunk.phi_hat.clone().requires_grad_(True)
    tau_v = (chunk.tau_hat * TAU_SCALE).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    pose = chunk.pose_hat.clone().requires_grad_(options.stage1_fingers)
    w = stage1_weights(chunk, options)

    def closure():
        terms = chunk.data_terms(phi, pose, beta, tau_v / TAU_SCALE, w)
        return sum(w[k] * terms[k] for k in w)

    params = [phi, tau_v] + ([beta] if fit_beta else []) + ([pose] if options.stage1_fingers else [])
    ok, _ = optimise(params, closure, options.iters_stage1, options, reporter, tol=options.tol1)
    return StageFit(phi.detach(), (tau_v / TAU_SCALE).detach(), beta.detach(), pose.detach(), ok)
