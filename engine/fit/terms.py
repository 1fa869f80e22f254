"""A chunk's targets and the loss terms of the fit (docs/method.md section 5, "Terms").

    chunk = Chunk(model, init, kp2d (T,21,2), alpha (T,21), K, slice(a, b), device, options, fps, times)
    terms = chunk.data_terms(phi (t,3), pose (t,45), beta (10,), tau (t,3), names)   # {name: scalar}

Both stages evaluate the same terms on the same chunk (``Chunk.data_terms``): the data terms on the
per-frame estimate (L_o, L_tr, pd), the smoothness terms per second (L_os, L_ts, L_ja), the shape
term, L_2D on the detections and the anatomical limits; stage II adds its prior and residual terms
(engine.fit.stage2). The terms themselves are engine.fit.losses.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from engine.fit import losses as L
from engine.fit.anatomy import joint_axes, limit_penalty
from engine.fit.options import NO_WORSE_CONFIDENCE, NO_WORSE_MARGIN, REFERENCE_FPS, FitOptions

if TYPE_CHECKING:
    from engine.hand_model import HandModel


# Translation is optimised in centimetres (tau = variable / TRANSL_UNIT): Adam's step is about lr per
# variable, and 0.05 m (5 cm) per step would throw the hand around; 0.05 cm is the scale of the
# rotations' 0.05 rad (3 degrees). A change of variable only, whatever the units of the loss terms.
TAU_SCALE = L.TRANSL_UNIT


class StageFit(NamedTuple):
    """What a stage fitted on a chunk of t frames (a tuple in this order)."""
    global_orient: Tensor  # (t,3) axis-angle
    transl: Tensor  # (t,3) m
    betas: Tensor  # (10,)
    hand_pose: Tensor  # (t,45) axis-angle
    converged: bool  # False: the stage diverged on this chunk (engine.fit.optim.optimise)


def to_tensor(x: "np.ndarray | Sequence | Tensor", device: str | torch.device,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """x as a tensor of ``dtype`` on ``device`` (any shape)."""
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


class Chunk:
    """One chunk of t frames: its targets (the per-frame estimate's phi_hat, tau_hat (t,3), pose_hat
    (t,45); the keypoints kp (t,21,2) px and their confidence alpha (t,21); K (3,3)), its units, and
    the forward pass and loss terms shared by both stages."""

    def __init__(self, model: "HandModel", init: dict[str, np.ndarray], kp2d: np.ndarray, alpha: np.ndarray,
                 K: np.ndarray, sl: slice, device: str | torch.device, options: FitOptions, fps: float,
                 times: np.ndarray | None = None):
        """init: the per-frame estimate of the clip (global_orient, transl (T,3), hand_pose (T,45),
        betas (10,)); kp2d (T,21,2) px and alpha (T,21) as ``stages._targets`` reads them; K (3,3);
        sl: the chunk's frames; times (T,) s, or None on a constant frame rate."""
        self.model, self.device = model, device
        # smoothness terms per second, not per frame pair: sum_t ||x_{t+1} - x_t||^2 * fps / 30 is the
        # same for the same motion at any frame rate (the table's weights are the authors' at 30 fps)
        self.smooth_scale = fps / REFERENCE_FPS if options.smooth_per_second else 1.0
        # uneven frame times (a variable frame rate; ``times`` (T,) s, None when even): each frame
        # pair's own time step, in 1/30 s, so that the per-second terms measure real velocities
        self.times = None if times is None else np.asarray(times, dtype=np.float64)[sl]
        self.steps = None
        if self.times is not None and options.smooth_per_second and len(self.times) > 1:
            self.steps = to_tensor(np.maximum(np.diff(self.times), 1e-4) * REFERENCE_FPS, device)  # (t-1,)
        self.phi_hat = to_tensor(init["global_orient"][sl], device)
        self.tau_hat = to_tensor(init["transl"][sl], device)
        self.pose_hat = to_tensor(init["hand_pose"][sl], device)
        self.kp = to_tensor(kp2d[sl], device)
        self.alpha = to_tensor(alpha[sl], device)
        self.K = to_tensor(K, device)
        self.T = self.phi_hat.shape[0]
        self.rot_unit, self.transl_unit = options.unit_scales
        # px per hand unit (T,), or None: L_2D and L_ja in pixels
        self.unit = L.hand_units(self.kp, self.alpha.max(1).values > 0).float().to(device) if options.scale_free_2d else None
        # "nw": the per-frame estimate's distance to each keypoint (T,21), in the 2D term's unit
        self.nw_unit = self.unit if self.unit is not None else torch.ones(self.T, device=device)
        with torch.no_grad():
            start = self.keypoints(self.phi_hat, self.pose_hat, to_tensor(init["betas"], device), self.tau_hat)
            self.reference = L.keypoint_distance(start, self.K, self.kp, self.nw_unit)
        self.axes = joint_axes(model)  # "lim": the fingers' flexion, abduction and twist axes

    def keypoints(self, phi: Tensor, pose: Tensor, beta: Tensor, tau: Tensor) -> Tensor:
        """The model's 21 keypoints (t,21,3) m, camera space, at phi (t,3), pose (t,45), beta (10,), tau (t,3) m."""
        return self.model(phi, pose, beta, tau, vertices=False).keypoints

    def velocity(self, term: Callable[..., Tensor], x: Tensor, unit: float) -> Tensor:
        """A frame-pair smoothness term of engine.fit.losses (orient_smooth, transl_smooth,
        residual_smooth) of x (t,...) per second: x fps/30, or on uneven frame times each pair / its
        own step (in 1/30 s)."""
        if self.steps is None:
            return term(x, unit) * self.smooth_scale
        return term(x, unit, weights=1.0 / self.steps)

    def acceleration(self, kp: Tensor) -> Tensor:
        """L_ja of keypoints kp (t,21,3) per second: x (fps/30)^3, or on the frames' uneven steps."""
        if self.steps is None:
            return L.joint_accel(kp, self.K, px_per_unit=self.unit) * self.smooth_scale ** 3
        return L.joint_accel(kp, self.K, steps=self.steps, px_per_unit=self.unit)

    def data_terms(self, phi: Tensor, pose: Tensor, beta: Tensor, tau: Tensor,
                   names: Iterable[str] | None = None) -> dict[str, Tensor]:
        """The terms (engine.fit.losses) at phi (t,3), pose (t,45), beta (10,), tau (t,3) m: {name: scalar
        tensor}, only ``names`` when given.

        The smoothness terms are per second (``smooth_scale``): velocity terms x fps/30, the joint
        acceleration x (fps/30)^3, the same sums for the same motion at any frame rate; on uneven
        frame times, each frame pair and triple by its own time steps (``velocity``, ``acceleration``)."""
        ru, tu = self.rot_unit, self.transl_unit
        kp = self.keypoints(phi, pose, beta, tau)
        terms = {"o": lambda: L.orient_data(phi, self.phi_hat, ru), "tr": lambda: L.transl_data(tau, self.tau_hat, tu),
                 "os": lambda: self.velocity(L.orient_smooth, phi, ru),
                 "ts": lambda: self.velocity(L.transl_smooth, tau, tu),
                 "beta": lambda: L.shape_reg(beta),
                 "2d": lambda: L.keypoints_2d(kp, self.K, self.kp, self.alpha, px_per_unit=self.unit),
                 "ja": lambda: self.acceleration(kp),
                 "pd": lambda: L.pose_data(pose, self.pose_hat, ru),
                 "nw": lambda: L.no_worse(kp, self.K, self.kp, self.alpha, self.reference, self.nw_unit,
                                          NO_WORSE_MARGIN, NO_WORSE_CONFIDENCE),
                 "lim": lambda: limit_penalty(pose, self.axes)}
        return {k: f() for k, f in terms.items() if names is None or k in names}
