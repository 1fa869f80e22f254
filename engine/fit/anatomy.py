"""Anatomical limits of the finger joints, for any hand model (MANO or the open default hand).

    axes = joint_axes(model)                      # (15,3,3) per pose joint: flexion, abduction, twist
    angles = joint_angles(hand_pose (T,45), axes) # (T,15,3) degrees about those axes
    cost = limit_penalty(hand_pose, axes)         # scalar: squared degrees outside the limits, summed

A pose joint's rotation (axis-angle, in the rest pose's axes, as MANO's linear blend skinning applies
it) is read as three angles about axes taken from the model's own rest skeleton, so the limits hold
for any model whatever its joint frames:

- twist: the bone's direction d (the joint to its child joint, or to the fingertip);
- abduction: the palm's normal v, pointing out of the palm (the volar side), made orthogonal to d;
- flexion: a = d x v, so that a positive flexion turns the bone towards the palm (a curl).

The volar normal is the right-hand rule on the palm: with u the wrist -> middle knuckle direction
and t the little -> index knuckle direction (towards the thumb), v = t x u for a right hand (look at
your right palm, fingers up: the thumb is on your right) and -(t x u) for a left one.

The angles are the axis-angle vector's components on those axes: exact for a rotation about one of
them, a first-order reading of a combined one (what a penalty needs). Limits (degrees, from
goniometry tables of adult hands, widened a little so that a real pose is never pushed): the four
fingers' MCP flexion -30..100 (a little hyperextension is normal), abduction +-30, twist +-15; PIP
flexion -5..115, DIP -15..95, abduction and twist +-10. The thumb's joints bend in planes of their
own that the palm's normal does not give; only their twist is limited (+-25).
"""

from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.contract import joints as J

if TYPE_CHECKING:
    from engine.hand_model import HandModel

# (min, max) degrees per angle (flexion, abduction, twist) for the three joints of a finger
FINGER_LIMITS = (((-30.0, 100.0), (-30.0, 30.0), (-15.0, 15.0)),  # MCP (MANO's 1)
                 ((-5.0, 115.0), (-10.0, 10.0), (-10.0, 10.0)),  # PIP (2)
                 ((-15.0, 95.0), (-10.0, 10.0), (-10.0, 10.0)))  # DIP (3)
THUMB_TWIST = 25.0
NO_LIMIT = (-360.0, 360.0)


def limits_table() -> np.ndarray:
    """(15,3,2) degrees: [joint, (flexion, abduction, twist), (min, max)] in MANO's pose order."""
    table = np.empty((15, 3, 2))
    for j, name in enumerate(J.MANO_JOINT_NAMES[1:]):
        if name.startswith("thumb"):
            table[j] = (NO_LIMIT, NO_LIMIT, (-THUMB_TWIST, THUMB_TWIST))
        else:
            table[j] = FINGER_LIMITS[int(name[-1]) - 1]
    return table


LIMITS = limits_table()


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-9)


def joint_axes(model: "HandModel") -> torch.Tensor:
    """(15,3,3) float32 tensor on the model's device: per pose joint the rows (flexion, abduction,
    twist) axes in the rest pose's frame (see the module docstring)."""
    with torch.no_grad():
        dev = model.device
        rest = model(torch.zeros(1, 3, device=dev), torch.zeros(1, 45, device=dev), torch.zeros(10, device=dev),
                     torch.zeros(1, 3, device=dev), vertices=False).keypoints[0].cpu().numpy().astype(np.float64)
    # rest (21,3) in MediaPipe order; the child of each MANO joint: the next joint of its finger or its tip
    u = _unit(rest[9] - rest[0])
    t = _unit(rest[5] - rest[17])
    v = _unit(np.cross(t, u)) * (1.0 if model.side == "right" else -1.0)
    axes = np.empty((15, 3, 3))
    for j in range(1, 16):
        here = J.MANO_TO_MEDIAPIPE[j]
        d = _unit(rest[here + 1] - rest[here])  # MediaPipe numbers each finger's points in order
        volar = _unit(v - (v @ d) * d)
        axes[j - 1] = (np.cross(d, volar), volar, d)
    return torch.as_tensor(axes, dtype=torch.float32, device=model.device)


def joint_angles(hand_pose: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """hand_pose (...,45) axis-angle -> (...,15,3) degrees about (flexion, abduction, twist)."""
    r = hand_pose.reshape(*hand_pose.shape[:-1], 15, 1, 3)
    return (r * axes).sum(-1) * (180.0 / np.pi)


def limit_penalty(hand_pose: torch.Tensor, axes: torch.Tensor, limits: np.ndarray | None = None) -> torch.Tensor:
    """Sum (a scalar) over frames and joints of the squared degrees by which each angle of hand_pose
    (...,45) leaves its limits (15,3,2) (default LIMITS); axes (15,3,3) from ``joint_axes``."""
    lim = torch.as_tensor(LIMITS if limits is None else limits, dtype=hand_pose.dtype, device=hand_pose.device)
    ang = joint_angles(hand_pose, axes)
    over = torch.relu(ang - lim[..., 1]) + torch.relu(lim[..., 0] - ang)
    return (over ** 2).sum()
