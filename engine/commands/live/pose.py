"""The live view's hand pose.

``fast_pose``: MediaPipe's world landmarks to MANO rotations analytically, in about a millisecond
(engine.fit.ik's optimisation takes about 4 ms per iteration for one frame on a CPU core, 0.8 s for
its 200): the root by Kabsch on the palm (wrist and the four knuckles, as the IK starts), then each
finger joint, from the knuckle outwards, the shortest rotation turning its rest bone onto the
landmarks' bone in its parent's posed frame (no twist about the bone, which no keypoint shows); then
the placement in the camera of the per-frame estimate (``place_in_camera``: least-squares translation
on the 2D keypoints, one PnP refinement). Raw, per frame: the two-stage fit after Stop is the result.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import roma
import torch

from engine.contract import joints as J

if TYPE_CHECKING:
    from engine.keypoints.detector import Detection

PALM = J.PALM_MEDIAPIPE  # the wrist and the four knuckles (the root's Kabsch, as the IK's start)
_X, _Y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


def arc_rotvecs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) of the smallest rotations turning directions ``a`` (..., 3) onto directions
    ``b`` (..., 3): about a x b by the angle between them (no twist about either); for opposite
    directions, half a turn about an axis perpendicular to ``a``. (roma has no shortest arc; this is the
    engine's only one, hmp_addon.rotations.shortest_arc is the add-on's numpy twin.)"""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = torch.linalg.cross(a, b)
    sin = axis.norm(dim=-1, keepdim=True)
    angle = torch.atan2(sin, (a * b).sum(-1, keepdim=True))
    perpendicular = torch.linalg.cross(a, torch.where(a[..., :1].abs() < 0.9, _X, _Y))
    perpendicular = perpendicular / perpendicular.norm(dim=-1, keepdim=True)
    return torch.where(sin < 1e-9, perpendicular, axis / sin.clamp_min(1e-12)) * angle


class FastPose:
    """MediaPipe's world landmarks (21,3) + 2D keypoints (21,2) -> MANO global_orient (3,), hand_pose
    (45,), transl (3,) in the camera (see the module docstring)."""

    PALM = PALM

    def __init__(self, model: torch.nn.Module) -> None:
        from engine.fit.per_frame import forward_joints

        self.model = model
        z = np.zeros((1, 3))
        self.rest = forward_joints(model, z, np.zeros((1, 45)), np.zeros(10), z)[0]  # (21,3) MediaPipe order
        self.rest_joints = self.rest[J.MANO_TO_MEDIAPIPE]  # (16,3) the rig's skeleton
        # the finger chains, level by level over the five fingers: MANO joints 1 + 3 f + level (index,
        # middle, pinky, ring, thumb), each the parent of the next, the first ones children of the wrist
        mano = 1 + 3 * np.arange(5)[:, None] + np.arange(3)  # (5,3)
        assert (J.MANO_PARENTS[mano[:, 0]] == 0).all() and (J.MANO_PARENTS[mano[:, 1:]] == mano[:, :-1]).all()
        self._k = torch.as_tensor(J.MANO_TO_MEDIAPIPE[mano])  # (5,3) MediaPipe index of each joint
        rest = torch.as_tensor(self.rest, dtype=torch.float64)
        self._rest_palm = rest[PALM]  # (5,3)
        self._rest_bones = rest[self._k + 1] - rest[self._k]  # (5,3,3) finger, level, xyz

    def rotations(self, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> global_orient (3,), hand_pose (45,) from world landmarks (21,3) (camera axes)."""
        w = torch.as_tensor(np.asarray(world, np.float64))
        root, _ = roma.rigid_points_registration(self._rest_palm, w[PALM])  # Kabsch (3,3)
        bones = w[self._k + 1] - w[self._k]  # (5,3,3)
        parent = root.expand(5, 3, 3)  # each finger's parent joint's posed frame
        pose = torch.empty(5, 3, 3, dtype=torch.float64)  # finger, level, axis-angle
        for level in range(3):
            seen = (bones[:, level, None, :] @ parent)[:, 0]  # the landmarks' bone in the parent's frame (5,3)
            pose[:, level] = arc_rotvecs(self._rest_bones[:, level], seen)
            parent = parent @ roma.rotvec_to_rotmat(pose[:, level])
        return roma.rotmat_to_rotvec(root).numpy(), pose.reshape(45).numpy()

    def __call__(self, world: np.ndarray, keypoints_2d: np.ndarray,
                 K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> global_orient (3,), hand_pose (45,), transl (3,) in the camera K (3,3) from world landmarks
        (21,3) and 2D keypoints (21,2) in pixels."""
        from engine.fit.per_frame import place_in_camera

        go, pose = self.rotations(world)
        go, transl = place_in_camera(self.model, go[None], pose[None], np.zeros(10),
                                     np.asarray(keypoints_2d, np.float64)[None], np.ones((1, 21)), K)
        return go[0], pose, transl[0]


def pick_hands(detections: Sequence["Detection"], sides: Sequence[str]) -> dict[str, "Detection"]:
    """{side: Detection} for the live view: by MediaPipe's label, the better-scored first; with one
    side asked for, the best detection whatever its label (labels flip frame to frame; the capture after
    Stop decides identities over the whole take)."""
    if not detections:
        return {}
    ranked = sorted(detections, key=lambda d: -d.score)
    if len(sides) == 1:
        same = [d for d in ranked if d.side == sides[0]]
        return {sides[0]: (same or ranked)[0]}
    out = {}
    for det in ranked:
        side = det.side if det.side not in out else next((s for s in sides if s not in out), None)
        if side is not None and side not in out:
            out[side] = det
    return out

