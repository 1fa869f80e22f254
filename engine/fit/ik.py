"""Batched inverse kinematics: 3D keypoints (MediaPipe order) -> MANO pose, shape and placement.

    fit = ik_from_keypoints3d(model, keypoints3d (T,21,3), weights (T,21) | None)
    fit["global_orient"] (T,3), fit["hand_pose"] (T,45), fit["betas"] (10,), fit["transl"] (T,3),
    fit["residual"] (T,) mean joint distance in metres

One shape for the whole sequence (a person's hand does not change size), per-frame pose.
Initialisation: the root rotation and translation by Kabsch/Umeyama on the palm points (wrist and
the four MCPs, rigid in a hand), so the optimisation starts with the palm in place and only the
fingers to bend. Then Adam on all frames at once (the field's usual choice for batched fitting)
on the squared keypoint error (in cm^2), with small regularisers that keep an under-determined fit
sensible: a pull of the pose towards zero (the flat hand; 1e-4 per rad^2) and of the shape towards
the mean (1e-3), and optionally the joints' anatomical limits (``engine.fit.anatomy``,
``limit_weight`` per degree^2 outside them; the per-frame estimate uses 1e-2: IK_LIMIT_WEIGHT
there). Without the limits the IK is free in what keypoints do not show: a phalanx's twist about
its own axis moves no keypoint, and a sideways bend of one joint can trade against a flexion of the
next, so on real frames the IK returned DIP twists past 100 degrees and sideways bends of 90
(measured on the ASL clip), poses no hand makes, which then reached the prior and the rig. The scale
of the target skeleton (MediaPipe's world landmarks are metric but not the model's size) is
absorbed by the shape space, whose first direction is overall scale.
Rows with NaN are skipped and get the identity pose at the mean of the others' placement.
"""

from typing import TYPE_CHECKING

import numpy as np
import roma
import torch

from engine.contract import joints as J
from engine.fit.anatomy import joint_axes, limit_penalty
from engine.fit.optim import Adam

if TYPE_CHECKING:
    from engine.hand_model import HandModel

PALM = J.PALM_MEDIAPIPE  # the wrist and the four finger MCPs


def ik_from_keypoints3d(model: "HandModel", keypoints3d: np.ndarray | torch.Tensor,
                        weights: np.ndarray | torch.Tensor | None = None, iters: int = 200, lr: float = 0.05,
                        fit_betas: bool = True, pose_reg: float = 1e-4, betas_reg: float = 1e-3,
                        betas: np.ndarray | torch.Tensor | None = None, fit_scale: bool = False,
                        limit_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """See the module docstring. ``fit_scale``: the targets' overall size is not trusted (MediaPipe's
    world landmarks are metric only roughly, and shrink curled fingers): a free scale factor for
    the whole sequence absorbs it, so the pose does not bend to fit a size (the scale itself is not
    returned: the caller wants the pose)."""
    device = model.device
    target = torch.as_tensor(keypoints3d, dtype=torch.float32, device=device)  # (T,21,3)
    T = target.shape[0]
    ok = torch.isfinite(target).all(-1).all(-1)
    w = torch.ones(T, 21, device=device) if weights is None else torch.as_tensor(weights, dtype=torch.float32,
                                                                                   device=device).clone()
    w = torch.where(ok[:, None], w, torch.zeros_like(w))
    target = torch.where(ok[:, None, None], target, torch.zeros_like(target))
    if not bool(ok.any()):
        raise ValueError("ik_from_keypoints3d: no frame without NaN")

    with torch.no_grad():
        rest = model(torch.zeros(1, 3, device=device), torch.zeros(1, 45, device=device),
                     torch.zeros(10, device=device), torch.zeros(1, 3, device=device), vertices=False).keypoints[0]
        # size: match the palm's spread before Kabsch so the rotation is not biased by scale
        src = rest[PALM][None].expand(T, -1, -1)
        R, t = roma.rigid_points_registration(src, target[:, PALM])  # Kabsch: R src + t ~ target, (T,3,3) (T,3)
        go0 = roma.rotmat_to_rotvec(R)
        # Kabsch put rest[0] (wrist) at R rest0 + t; the model rotates about the rest wrist joint
        j0 = model.rest_joints(torch.zeros(10, device=device))[0, 0]
        transl0 = t + (R @ j0[:, None])[..., 0] - j0
    go = go0.clone().requires_grad_(True)
    pose = torch.zeros(T, 45, device=device, requires_grad=True)
    transl = transl0.clone().requires_grad_(True)
    b = (torch.zeros(10, device=device) if betas is None else torch.as_tensor(betas, dtype=torch.float32,
                                                                                device=device)).clone()
    b.requires_grad_(fit_betas)
    log_s = torch.zeros((), device=device, requires_grad=fit_scale)
    params = [go, pose, transl] + ([b] if fit_betas else []) + ([log_s] if fit_scale else [])
    axes = joint_axes(model) if limit_weight else None
    opt = Adam(params, lr=lr, milestones=[int(iters * 0.6), int(iters * 0.85)], gamma=0.3)
    wsum = w.sum().clamp(min=1)
    for _ in range(iters):
        opt.zero_grad()
        kp = model(go, pose, b, transl, vertices=False).keypoints * torch.exp(log_s)
        err = ((kp - target) ** 2).sum(-1) * 1e4  # cm^2: the regularisers are relative to this
        loss = (w * err).sum() / wsum + pose_reg * (pose ** 2).sum() / T + betas_reg * (b ** 2).sum()
        if axes is not None:
            loss = loss + limit_weight * limit_penalty(pose, axes) / T
        loss.backward()
        opt.step()
    with torch.no_grad():
        kp = model(go, pose, b, transl, vertices=False).keypoints * torch.exp(log_s)
        residual = (kp - target).norm(dim=-1).mean(-1)
        residual[~ok] = float("nan")
        if not bool(ok.all()):  # NaN rows: identity pose, mean placement
            go[~ok] = 0
            pose[~ok] = 0
            transl[~ok] = transl[ok].mean(0)
    return {"global_orient": go.detach(), "hand_pose": pose.detach(), "betas": b.detach(),
            "transl": transl.detach(), "residual": residual}
