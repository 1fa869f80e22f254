"""The terms of the two-stage fit (HMP_METHOD.md section 3), each summed over frames.

Units: radians for rotations, metres for translation, pixels for the 2D term, as the quantities
come; the method gives weights but no units, and these are the natural ones of our variables
(the authors' code instead uses a 5000 px focal length, which rescales its translations).
"""

import roma
import torch

GM_SCALE = 40.0  # Geman-McClure scale in pixels (the authors' code)


def geodesic_sq(rotvec_a, rotvec_b):
    """Squared geodesic distance (rad^2) between rotations given as axis-angle (...,3)."""
    Ra, Rb = roma.rotvec_to_rotmat(rotvec_a), roma.rotvec_to_rotmat(rotvec_b)
    return roma.rotmat_geodesic_distance(Ra, Rb, clamping=1.0 - 1e-6) ** 2


def orient_data(phi, phi_hat):
    """L_o = sum_t g(Phi_t, Phi^_t)^2."""
    return geodesic_sq(phi, phi_hat).sum()


def transl_data(tau, tau_hat):
    """L_tr = sum_t ||tau_t - tau^_t||^2."""
    return ((tau - tau_hat) ** 2).sum()


def orient_smooth(phi, frame_mask=None):
    """L_os = sum_t g(Phi_{t+1}, Phi_t)^2 (pairs inside one sequence: frame_mask (T-1,) bool)."""
    d = geodesic_sq(phi[1:], phi[:-1])
    return (d if frame_mask is None else d * frame_mask).sum()


def transl_smooth(tau, frame_mask=None):
    """L_ts = sum_t ||tau_{t+1} - tau_t||^2."""
    d = ((tau[1:] - tau[:-1]) ** 2).sum(-1)
    return (d if frame_mask is None else d * frame_mask).sum()


def shape_reg(betas):
    """L_beta = ||beta||^2."""
    return (betas ** 2).sum()


def geman_mcclure(residual_sq, scale=GM_SCALE):
    """rho(r) = s^2 r^2 / (s^2 + r^2) on squared residuals (px^2)."""
    s2 = scale ** 2
    return s2 * residual_sq / (s2 + residual_sq)


def project(points, K):
    """points (...,3) camera frame -> pixels (...,2); depth clamped to stay in front of the camera."""
    z = points[..., 2:3].clamp(min=1e-3)
    return points[..., :2] / z * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])


def keypoints_2d(points, K, target, alpha, scale=GM_SCALE):
    """L_2D = sum_joints sum_t alpha_i^2 rho(Pi(J_i) - x_i).

    alpha squared, as the authors' code weighs by confidence squared (the poster writes alpha):
    squaring trusts confident joints relatively more; frames without keypoints have alpha 0.
    """
    r2 = ((project(points, K) - target) ** 2).sum(-1)
    return (alpha ** 2 * geman_mcclure(r2, scale)).sum()
