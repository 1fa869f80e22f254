"""Result file -> scene: rigs (or the user's armatures), camera, one baked Action per hand.

Everything that can fail is checked before the scene is touched, so a bad result or target
leaves the scene as it was.
"""

import os

import numpy as np

from . import bake, poses, rig
from .engine_link import result as R


class ImportProblem(Exception):
    """A one-line reason why a result cannot be applied; nothing was changed."""


def clip_name(res, fallback_path=None):
    """Clip name used for rigs and Actions: the source video's file stem."""
    video = str(res["video"]) if "video" in res.clip else ""
    name = os.path.splitext(os.path.basename(video or fallback_path or "clip"))[0]
    return name or "clip"


def action_name(clip, side):
    return f"{clip}_{side}_hand"


def load(path):
    """Read + validate a result file, as ImportProblem on failure."""
    try:
        return R.read(path)
    except R.ResultError as exc:
        raise ImportProblem(str(exc)) from None


def scene_fps(scene):
    return scene.render.fps / scene.render.fps_base


def apply_result(context, res, clip=None, sides=None, targets=None, make_camera=True):
    """Bake ``res`` (an engine.result.Result) into the scene.

    sides: hands to import (default: all in the result). targets: {side: armature object} to bake
    onto an existing armature with MANO bone names; sides without a target get a new rig.
    Returns a list of {"side", "rig", "action", "keys"} (keys = keyframes per channel).
    """
    clip = clip or clip_name(res)
    sides = list(sides or res.hands.keys())
    targets = dict(targets or {})
    # --- checks first: nothing in the scene changes if any fails
    for side in sides:
        if side not in res.hands:
            raise ImportProblem(f"the result has no {side} hand (it has: {', '.join(res.hands)})")
        if targets.get(side) is not None:
            problem = rig.check_rig(targets[side])
            if problem:
                raise ImportProblem(problem)
    if context.mode != "OBJECT" and context.active_object is not None:
        import bpy

        bpy.ops.object.mode_set(mode="OBJECT")
    scene = context.scene
    fps = scene_fps(scene)
    out = []
    for side in sides:
        hand = res.hands[side]
        target = targets.get(side)
        obj = target if target is not None else rig.ensure_hand_rig(context, clip, side, hand)
        valid = np.asarray(hand["valid"], dtype=bool)  # (T,) frames without a fit get no keys
        frames = poses.result_scene_frames(res, fps, scene.frame_start)[valid]
        quats, root_loc = poses.bone_channels(hand["global_orient"][valid], hand["hand_pose"][valid],
                                              hand["transl"][valid], rig.rest_frames(obj))
        if target is not None:
            # a user's armature may sit anywhere: express the camera-frame motion in its space
            root_loc = _root_location_for(obj, hand, root_loc)
        rotations = {name: quats[:, j] for j, name in enumerate(rig.BONE_NAMES)}
        action = bake.bake_pose_action(obj, action_name(clip, side), frames, rotations,
                                       {rig.BONE_NAMES[0]: root_loc})
        out.append({"side": side, "rig": obj, "action": action, "keys": int(valid.sum())})
    if make_camera:
        rig.ensure_camera(context, clip, res["K"], res["image_size"])
    last = max(int(np.ceil(poses.result_scene_frames(res, fps, scene.frame_start)[-1])), scene.frame_start)
    if scene.frame_end < last:  # make the whole capture playable
        scene.frame_end = last
    return out


def _root_location_for(obj, hand, root_loc):
    """Root location for an existing armature, whose wrist rest head need not be the result's.

    The wrist head must reach C (J0 + transl) in world space; the armature's own rest wrist head
    (armature space, object transform identity assumed for rigs made here) gives the offset.
    """
    from .coords import points_to_blender

    wrist = obj.data.bones[rig.BONE_NAMES[0]]
    B0 = np.array([[wrist.matrix_local[r][c] for c in range(3)] for r in range(3)])
    rest_head = np.array(wrist.head_local)
    world_target = points_to_blender(hand["rest_joints"][0])  # where the result's rest wrist is
    return root_loc + (world_target - rest_head) @ B0
