"""The live view's hand pose.

``fast_pose``: MediaPipe's world landmarks to MANO rotations analytically, in well under a millisecond
(engine.fit.ik's optimisation takes about 4 ms per iteration for one frame on a CPU core, 0.8 s for
its 200): the root by Kabsch on the palm (wrist and the four knuckles, as the IK starts), then each
finger joint, from the knuckle outwards, the shortest rotation turning its rest bone onto the
landmarks' bone in its parent's posed frame (no twist about the bone, which no keypoint shows); then
the placement in the camera of the per-frame estimate (``place_in_camera``: least-squares translation
on the 2D keypoints, one PnP refinement). Raw, per frame: the two-stage fit after Stop is the result.
"""

import numpy as np


def shortest_arc(a, b):
    """The smallest rotation (3,3) turning direction ``a`` onto direction ``b`` (3,)."""
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        # opposite: half a turn about any axis perpendicular to a
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        perp /= np.linalg.norm(perp)
        return 2.0 * np.outer(perp, perp) - np.eye(3)
    k = axis / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * Kx + (1 - c) * (Kx @ Kx)


def rotvec(R):
    """Axis-angle (3,) of a rotation matrix (3,3)."""
    import cv2

    return cv2.Rodrigues(np.asarray(R, np.float64))[0][:, 0]


def kabsch(src, dst):
    """Rotation R (3,3) minimising |R (src - mean) - (dst - mean)|^2."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ np.diag([1.0, 1.0, d]) @ Vt


class FastPose:
    """MediaPipe's world landmarks (21,3) + 2D keypoints (21,2) -> MANO global_orient (3,), hand_pose
    (45,), transl (3,) in the camera (see the module docstring)."""

    PALM = [0, 5, 9, 13, 17]

    def __init__(self, model):
        from engine import joints as J
        from engine.fit.per_frame import forward_joints

        self.model = model
        z = np.zeros((1, 3))
        self.rest = forward_joints(model, z, np.zeros((1, 45)), np.zeros(10), z)[0]  # (21,3) MediaPipe order
        self.parents = J.MANO_PARENTS
        self.mp_of = J.MANO_TO_MEDIAPIPE
        self.rest_joints = self.rest[J.MANO_TO_MEDIAPIPE]  # (16,3) the rig's skeleton

    def rotations(self, world):
        """-> global_orient (3,), hand_pose (45,) from world landmarks (21,3) (camera axes)."""
        world = np.asarray(world, np.float64)
        G = np.empty((16, 3, 3))
        G[0] = kabsch(self.rest[self.PALM], world[self.PALM])
        pose = np.zeros((15, 3))
        for j in range(1, 16):
            k = int(self.mp_of[j])
            parent = G[int(self.parents[j])]
            local = shortest_arc(self.rest[k + 1] - self.rest[k], parent.T @ (world[k + 1] - world[k]))
            G[j] = parent @ local
            pose[j - 1] = rotvec(local)
        return rotvec(G[0]), pose.reshape(45)

    def __call__(self, world, keypoints_2d, K):
        from engine.fit.per_frame import place_in_camera

        go, pose = self.rotations(world)
        go, transl = place_in_camera(self.model, go[None], pose[None], np.zeros(10),
                                     np.asarray(keypoints_2d, np.float64)[None], np.ones((1, 21)), K)
        return go[0], pose, transl[0]


def pick_hands(detections, sides):
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

