"""Result poses -> global joint rotations and per-bone pose channels (numpy only, shared by the rig
bake and retargeting).

MANO (engine/contract/result.py): joint j's pose rotation R_j (axis-angle) acts in a frame aligned with the
model frame at rest; the posed global rotation is G_j = G_parent(j) R_j and the root rotates about
the wrist then ``transl`` is added. The model frame is the camera frame at zero global_orient.

A Blender pose bone's rotation is relative to its own rest orientation B_j (3x3, armature space,
bone roll included). With the armature at the world origin with identity transform and every rest
bone frame B_j, the pose-bone quaternion that reproduces R_j is

    L_j = B_j^T (C R_j C^T) B_j          (C = coords.CV_TO_BLENDER)

a conjugation, so its axis-angle is R_j's angle about the axis B_j^T C a_j: no matrix-to-
quaternion round trip. The root bone also gets a location: its head must land at
C (J_0 + transl), so loc = B_0^T C transl in the bone's rest frame.
"""

import numpy as np

from .coords import CV_TO_BLENDER
from .engine_link import joints as J
from .rotations import axis_angle_to_matrix, axis_angle_to_quat, inverse, make_continuous, rotate

# the finger each MANO joint belongs to (MANO order), for per-finger influence
FINGER_OF = tuple(name.rstrip("123") for name in J.MANO_JOINT_NAMES)
PARENTS = tuple(int(p) for p in J.MANO_PARENTS)
# the next joint along each MANO joint's finger (None: the finger's last joint); the wrist, parent of
# five, gets its first child (index1)
CHILD = {j: next((k for k in range(J.NUM_MANO_JOINTS) if PARENTS[k] == j), None) for j in range(J.NUM_MANO_JOINTS)}


def local_rotations(global_orient: np.ndarray, hand_pose: np.ndarray) -> np.ndarray:
    """(T, 16, 3) each MANO joint's axis-angle (float64): global_orient (T, 3) for the wrist, then
    hand_pose (T, 45)'s 15 finger joints, as in the result."""
    T = np.asarray(global_orient).shape[0]
    return np.concatenate([np.asarray(global_orient, np.float64)[:, None],
                           np.asarray(hand_pose, np.float64).reshape(T, J.NUM_MANO_JOINTS - 1, 3)], 1)


def source_globals(global_orient: np.ndarray, hand_pose: np.ndarray, influence: dict | None = None) -> np.ndarray:
    """Global joint rotations G (T, 16, 3, 3), camera frame (forward kinematics of the rotations:
    G_j = G_parent(j) R_j). global_orient (T, 3), hand_pose (T, 45) axis-angle as in the result.
    influence {finger: weight}: each finger's joint rotations scaled by its weight (default 1)."""
    local = local_rotations(global_orient, hand_pose)  # (T, 16, 3)
    if influence:
        w = np.array([1.0] + [float(influence.get(finger, 1.0)) for finger in FINGER_OF[1:]])
        local = local * w[None, :, None]
    R = axis_angle_to_matrix(local)
    G = np.empty_like(R)
    for j, parent in enumerate(PARENTS):
        G[:, j] = R[:, j] if parent < 0 else G[:, parent] @ R[:, j]
    return G


def bone_channels(global_orient: np.ndarray, hand_pose: np.ndarray, transl: np.ndarray,
                  rest_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone channels for the 16 MANO joints.

    global_orient (T, 3), hand_pose (T, 45), transl (T, 3): camera frame, as in the result.
    rest_frames (16, 3, 3): each bone's rest orientation in armature space (bone.matrix_local),
    MANO order. Returns quats (T, 16, 4) wxyz (sign-continuous along T) and root_location (T, 3).
    """
    aa = local_rotations(global_orient, hand_pose)  # (T, 16, 3)
    rest_frames = np.asarray(rest_frames, dtype=np.float64)  # (16, 3, 3)
    to_bone = inverse(rest_frames) @ CV_TO_BLENDER  # B_j^T C  (16, 3, 3)
    aa_bone = rotate(to_bone, aa)  # (T, 16, 3)
    quats = axis_angle_to_quat(aa_bone)  # (T, 16, 4)
    for j in range(quats.shape[1]):
        quats[:, j] = make_continuous(quats[:, j])
    root_location = rotate(to_bone[0], transl)  # (T, 3)
    return quats, root_location


def scene_frames(frame_ids, clip_fps: float, scene_fps: float, frame_start: float, frame_times=None) -> np.ndarray:
    """Map result frames onto the scene timeline. frame_ids (T,) -> (T,) float scene frames.

    The first result frame lands on ``frame_start``; time is preserved (clip fps -> scene fps).
    With ``frame_times`` (seconds; variable-frame-rate clips) each frame lands at its own time.
    """
    if frame_times is not None:
        times = np.asarray(frame_times, dtype=np.float64)
        return frame_start + (times - times[0]) * float(scene_fps)
    frame_ids = np.asarray(frame_ids, dtype=np.float64)
    return frame_start + (frame_ids - frame_ids[0]) * (float(scene_fps) / float(clip_fps))


def result_scene_frames(res, scene_fps: float, frame_start: float) -> np.ndarray:
    """scene_frames for an engine.contract.result.Result (uses its frame_times when it has them)."""
    return scene_frames(res["frame_ids"], res.fps, scene_fps, frame_start, res.clip.get("frame_times"))
