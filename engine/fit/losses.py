"""The terms of the two-stage fit (docs/method.md section 5), each summed over frames.

Units. The method gives weights but no units, and a weight only means something in a unit. The 2D
term is in pixels (its Geman-McClure ceiling is 40^2 px^2 per joint); read in radians and metres, the
rotation and translation terms are 10^3 to 10^4 times smaller than any pixel residual and the table's
weights have no effect (measured: stage I left the wrist's jitter where the per-frame estimate had
it). The fit therefore takes rotations in **degrees** and translations in **centimetres**
(``ROT_UNIT``, ``TRANSL_UNIT``): a 1 degree or 1 cm step of the hand costs about what a pixel-scale
residual costs, so L_o / L_os / L_tr / L_ts act at the table's weights. The literal radian / metre
reading stays available (``FitOptions(units="rad-m")``); docs/history.md has both measured.

Every function takes plain tensors and returns a scalar (the sum over frames and joints).
"""

import math

import numpy as np
import roma
import torch
from torch import Tensor

GM_SCALE = 40.0  # Geman-McClure scale in pixels (the authors' code)
UNITS = {"deg-cm": (180.0 / math.pi, 100.0), "rad-m": (1.0, 1.0)}  # rotation, translation scale factors
ROT_UNIT, TRANSL_UNIT = UNITS["deg-cm"]


def geodesic_sq(rotvec_a: Tensor, rotvec_b: Tensor) -> Tensor:
    """Squared geodesic distance (rad^2) between rotations given as axis-angle (...,3) -> (...)."""
    Ra, Rb = roma.rotvec_to_rotmat(rotvec_a), roma.rotvec_to_rotmat(rotvec_b)
    return roma.rotmat_geodesic_distance(Ra, Rb, clamping=1.0 - 1e-6) ** 2


def orient_data(phi: Tensor, phi_hat: Tensor, rot_unit: float = 1.0) -> Tensor:
    """L_o = sum_t g(Phi_t, Phi^_t)^2, in rot_unit^2 (phi, phi_hat (T,3) axis-angle, radians)."""
    return geodesic_sq(phi, phi_hat).sum() * rot_unit ** 2


def pose_data(pose: Tensor, pose_hat: Tensor, rot_unit: float = 1.0) -> Tensor:
    """sum_t sum_j g(theta_tj, theta^_tj)^2 of finger poses pose, pose_hat (T,45) axis-angle, in rot_unit^2."""
    return geodesic_sq(pose.reshape(-1, 3), pose_hat.reshape(-1, 3)).sum() * rot_unit ** 2


def transl_data(tau: Tensor, tau_hat: Tensor, transl_unit: float = 1.0) -> Tensor:
    """L_tr = sum_t ||tau_t - tau^_t||^2, in transl_unit^2 (tau, tau_hat (T,3) metres)."""
    return ((tau - tau_hat) ** 2).sum() * transl_unit ** 2


def _pairs(values: Tensor, weights: Tensor | None) -> Tensor:
    """Sum of values (N,...) over everything, each of the N rows (frame pairs or triples) times its
    weight ((N,); None: the plain sum, summed as it always was)."""
    if weights is None:
        return values.sum()
    return (values * weights.reshape(-1, *([1] * (values.ndim - 1)))).sum()


def orient_smooth(phi: Tensor, rot_unit: float = 1.0, weights: Tensor | None = None) -> Tensor:
    """L_os = sum_t w_t g(Phi_{t+1}, Phi_t)^2 of phi (T,3) axis-angle, in rot_unit^2; weights (T-1,) per
    frame pair (None: 1)."""
    return _pairs(geodesic_sq(phi[1:], phi[:-1]), weights) * rot_unit ** 2


def transl_smooth(tau: Tensor, transl_unit: float = 1.0, weights: Tensor | None = None) -> Tensor:
    """L_ts = sum_t w_t ||tau_{t+1} - tau_t||^2 of tau (T,3) metres, in transl_unit^2; weights (T-1,) per
    frame pair (None: 1)."""
    return _pairs((tau[1:] - tau[:-1]) ** 2, weights) * transl_unit ** 2


def residual_size(delta: Tensor, rot_unit: float = 1.0) -> Tensor:
    """sum_t sum_j ||delta_tj||^2 of per-frame joint rotation residuals delta (T,45), in rot_unit^2."""
    return (delta ** 2).sum() * rot_unit ** 2


def residual_smooth(delta: Tensor, rot_unit: float = 1.0, weights: Tensor | None = None) -> Tensor:
    """sum_t w_t ||delta_{t+1} - delta_t||^2 of residuals delta (T,45), in rot_unit^2; weights (T-1,)
    per frame pair (None: 1)."""
    return _pairs((delta[1:] - delta[:-1]) ** 2, weights) * rot_unit ** 2


def joint_accel(points: Tensor, K: Tensor, steps: Tensor | None = None, px_per_unit: Tensor | None = None) -> Tensor:
    """L_ja = sum_t sum_j (f / z_tj)^2 ||J_{t+1} - 2 J_t + J_{t-1}||^2 of joints (T,J,3) metres, K (3,3).

    The 3D acceleration of every joint (depth included), measured in pixels at the joint's depth: the
    same unit as L_2D's residuals, so its weight sets how much smoother than the detections the fit
    is, whatever the hand's size in the image. The depth is a weight here (no gradient), so the term
    cannot be lowered by moving the hand away from the camera. ``px_per_unit`` (T,): in the 2D term's
    hand units instead of pixels (``keypoints_2d``).

    steps (T-1,): the time between consecutive frames in units of a reference step h (uneven frame
    times). The second difference is then the acceleration a_t h^2 over the uneven steps,
    2 / (s_{t-1} + s_t) (dJ_t / s_t - dJ_{t-1} / s_{t-1}), each triple weighted by its share of time
    (s_{t-1} + s_t) / 2: the integral of the squared acceleration, the per-second form (for even
    steps s it is the sum above times s^-3)."""
    if steps is None:
        acc = points[2:] - 2 * points[1:-1] + points[:-2]  # (T-2,J,3)
        weight = None
    else:
        s = steps.reshape(-1, 1, 1)
        vel = (points[1:] - points[:-1]) / s  # (T-1,J,3) per reference step
        span = s[1:] + s[:-1]
        acc = 2 * (vel[1:] - vel[:-1]) / span  # (T-2,J,3)
        weight = span[:, 0, 0] / 2
    scale = K[0, 0] / points[1:-1, :, 2:3].detach().clamp(min=1e-3)  # (T-2,J,1) px per metre
    if px_per_unit is not None:
        scale = scale / px_per_unit[1:-1, None, None]
    return _pairs((acc * scale) ** 2, weight)


def keypoint_distance(points: Tensor, K: Tensor, target: Tensor, px_per_unit: Tensor) -> Tensor:
    """points (T,21,3) m, K (3,3), target (T,21,2) px, px_per_unit (T,) -> (T,21) distance of each
    projected joint to its keypoint, in hand units."""
    return (project(points, K) - target).norm(dim=-1) / px_per_unit[:, None]


def no_worse(points: Tensor, K: Tensor, target: Tensor, alpha: Tensor, reference: Tensor, px_per_unit: Tensor,
             margin: float, min_confidence: float) -> Tensor:
    """sum over confident joints (alpha >= min_confidence) of relu(d - d_ref - margin)^2: d the
    joint's distance to its keypoint and d_ref the reference fit's (T,21), both in hand units. Zero
    while the fit stays within ``margin`` of the reference's distance: smoothing may move a joint
    that far, the prior may not pull a confidently seen joint further away."""
    d = keypoint_distance(points, K, target, px_per_unit)
    over = torch.relu(d - reference - margin) * (alpha >= min_confidence)
    return (over ** 2).sum()


def shape_reg(betas: Tensor) -> Tensor:
    """L_beta = ||beta||^2 of betas (10,)."""
    return (betas ** 2).sum()


def geman_mcclure(residual_sq: Tensor, scale: float = GM_SCALE) -> Tensor:
    """rho(r) = s^2 r^2 / (s^2 + r^2) on squared residuals (...) (px^2, or hand units^2) -> (...)."""
    s2 = scale ** 2
    return s2 * residual_sq / (s2 + residual_sq)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """points (...,3) camera frame, metres; K (3,3) px -> pixels (...,2); depth clamped to 1e-3 m.

    The differentiable twin of ``engine.util.camera.project`` (numpy, the one projection of everything
    that is not optimised: preview, report, metrics, benchmark): the same pinhole, in torch so that
    gradients reach the fit's variables. Its depth floor is 1e-3 m, not 1e-6: a hand pushed through
    the camera by a bad step keeps a bounded gradient."""
    z = points[..., 2:3].clamp(min=1e-3)
    return points[..., :2] / z * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])


def keypoints_2d(points: Tensor, K: Tensor, target: Tensor, alpha: Tensor, scale: float = GM_SCALE,
                 px_per_unit: Tensor | None = None) -> Tensor:
    """L_2D = sum_joints sum_t alpha_i^2 rho(Pi(J_i) - x_i): points (T,J,3) m, K (3,3), target (T,J,2) px,
    alpha (T,J) confidence.

    alpha squared, as the authors' code weighs by confidence squared (the poster writes alpha):
    squaring trusts confident joints relatively more; frames without keypoints have alpha 0.

    ``px_per_unit`` (T,) or None: the residuals in that frame's unit instead of pixels (see
    ``hand_units``): the same pose error then costs the same whatever the hand's size in the image,
    and ``scale`` is in those units.
    """
    r = project(points, K) - target
    if px_per_unit is not None:
        r = r / px_per_unit[:, None, None]
    return (alpha ** 2 * geman_mcclure((r ** 2).sum(-1), scale)).sum()


# The 2D term's scale-free unit: a hundredth of the hand's palm length in the image (``hand_units``),
# so that a hand whose palm is 100 px long (a hand about 200 px tall: a hand at arm's length in 720p
# footage) is measured in pixels, as the table's weights were set; GM_SCALE = 40 units = 0.4 palms.
HAND_UNIT_PALMS = 0.01


def palm_length_px(keypoints_2d: Tensor | np.ndarray) -> Tensor:
    """(T,21,2) px -> (T,) the palm's length in the image: the longer of wrist -> middle knuckle and
    index -> little knuckle (so it holds when the hand points at the camera or turns edge-on)."""
    kp = torch.as_tensor(keypoints_2d)
    return torch.maximum((kp[:, 9] - kp[:, 0]).norm(dim=-1), (kp[:, 17] - kp[:, 5]).norm(dim=-1))


def hand_units(keypoints_2d: Tensor | np.ndarray, known: Tensor | np.ndarray) -> Tensor:
    """(T,21,2) px, known (T,) bool -> (T,) pixels per hand unit (HAND_UNIT_PALMS of the palm
    length), each frame's from its own keypoints where known, else the nearest known frame's (a
    median over the known frames when none is near); never below 0.1 px."""
    length = palm_length_px(keypoints_2d).double()
    known = torch.as_tensor(known, dtype=torch.bool) & torch.isfinite(length) & (length > 0)
    if not bool(known.any()):
        return torch.full_like(length, 1.0)
    idx = torch.nonzero(known)[:, 0]
    t = torch.arange(len(length))
    nearest = idx[(t[:, None] - idx[None]).abs().argmin(1)]
    return (length[nearest] * HAND_UNIT_PALMS).clamp(min=0.1)
