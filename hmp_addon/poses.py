"""Result poses -> per-bone pose channels (numpy only, shared by the rig bake and retargeting).

MANO (engine/result.py): joint j's pose rotation R_j (axis-angle) acts in a frame aligned with the
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


def axis_angle_to_quat(aa):
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z), Blender's order."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)  # (..., 1)
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0 (series), avoids 0/0
    scale = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-12), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def make_continuous(quats):
    """Flip signs along time so consecutive quaternions stay in one hemisphere. (T, 4) -> (T, 4)."""
    quats = np.array(quats, dtype=np.float64)
    if len(quats) < 2:
        return quats
    dots = np.einsum("ti,ti->t", quats[1:], quats[:-1])  # (T-1,)
    signs = np.cumprod(np.where(dots < 0.0, -1.0, 1.0))
    quats[1:] *= signs[:, None]
    return quats


def bone_channels(global_orient, hand_pose, transl, rest_frames):
    """Pose-bone channels for the 16 MANO joints.

    global_orient (T, 3), hand_pose (T, 45), transl (T, 3): camera frame, as in the result.
    rest_frames (16, 3, 3): each bone's rest orientation in armature space (bone.matrix_local),
    MANO order. Returns quats (T, 16, 4) wxyz (sign-continuous along T) and root_location (T, 3).
    """
    T = np.asarray(global_orient).shape[0]
    aa = np.concatenate([np.asarray(global_orient, dtype=np.float64)[:, None, :],
                         np.asarray(hand_pose, dtype=np.float64).reshape(T, 15, 3)], axis=1)  # (T, 16, 3)
    rest_frames = np.asarray(rest_frames, dtype=np.float64)  # (16, 3, 3)
    to_bone = np.einsum("jab,ac->jbc", rest_frames, CV_TO_BLENDER)  # B_j^T C  (16, 3, 3)
    aa_bone = np.einsum("jbc,tjc->tjb", to_bone, aa)  # (T, 16, 3)
    quats = axis_angle_to_quat(aa_bone)  # (T, 16, 4)
    for j in range(quats.shape[1]):
        quats[:, j] = make_continuous(quats[:, j])
    root_location = np.asarray(transl, dtype=np.float64) @ to_bone[0].T  # (T, 3)
    return quats, root_location


def scene_frames(frame_ids, clip_fps, scene_fps, frame_start, frame_times=None):
    """Map result frames onto the scene timeline. frame_ids (T,) -> (T,) float scene frames.

    The first result frame lands on ``frame_start``; time is preserved (clip fps -> scene fps).
    With ``frame_times`` (seconds; variable-frame-rate clips) each frame lands at its own time.
    """
    if frame_times is not None:
        times = np.asarray(frame_times, dtype=np.float64)
        return frame_start + (times - times[0]) * float(scene_fps)
    frame_ids = np.asarray(frame_ids, dtype=np.float64)
    return frame_start + (frame_ids - frame_ids[0]) * (float(scene_fps) / float(clip_fps))


def result_scene_frames(res, scene_fps, frame_start):
    """scene_frames for an engine.result.Result (uses its frame_times when it has them)."""
    return scene_frames(res["frame_ids"], res.fps, scene_fps, frame_start, res.clip.get("frame_times"))
