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


def video_stem(path) -> str:
    """A clip's name from its video's path: the file stem ("clip" without one)."""
    return os.path.splitext(os.path.basename(path or ""))[0] or "clip"


def clip_name(res, fallback_path=None):
    """Clip name used for rigs and Actions: the source video's file stem."""
    return video_stem(source_video(res) or fallback_path)


def action_name(clip, side):
    return f"{clip}_{side}_hand"


VIDEO_TAG = "hmp_video"  # custom property on the rigs, cameras and Actions a take makes: its source video


def source_video(res):
    """The result's source video path ("" when the result does not say)."""
    return str(res["video"]) if "video" in res.clip else ""


def _free_for(idblock, video):
    """A name is free for a take when nothing has it, or when it belongs to a take of the same video
    (a re-capture replaces its own rig and Action, never another take's or the user's data)."""
    return idblock is None or (bool(video) and idblock.get(VIDEO_TAG) == video)


def unique_name(base, video, names):
    """``base``, or ``base_2``, ``base_3``... : the first candidate c for which every
    ``lookup(name_of(c))`` in ``names`` [(lookup, name_of)] finds nothing or something made from
    ``video``."""
    k = 1
    while True:
        candidate = base if k == 1 else f"{base}_{k}"
        if all(_free_for(lookup(name_of(candidate)), video) for lookup, name_of in names):
            return candidate
        k += 1


def take_name(clip, video, sides):
    """The name a take's rigs, Actions and camera are built from: the clip's stem, made unique when
    another take (another video with the same file name) or the user already uses those names."""
    import bpy

    names = [(bpy.data.objects.get, lambda c: f"{c}_camera")]
    for side in sides:
        names += [(bpy.data.objects.get, lambda c, s=side: rig.rig_name(c, s)),
                  (bpy.data.actions.get, lambda c, s=side: action_name(c, s))]
    return unique_name(clip, video, names)


def load(path):
    """Read + validate a result file, as ImportProblem on failure."""
    try:
        return R.read(path)
    except R.ResultError as exc:
        raise ImportProblem(str(exc)) from None


def scene_fps(scene):
    return scene.render.fps / scene.render.fps_base


def set_scene_fps(scene, fps):
    """Set the scene's frame rate to ``fps`` (29.97 -> 30 / 1.001). Returns True when it changed."""
    if abs(scene_fps(scene) - fps) < 1e-3 * fps:
        return False
    whole = max(1, int(round(fps)))
    scene.render.fps = whole
    scene.render.fps_base = 1.0 if abs(whole - fps) < 1e-6 * fps else whole / fps
    return True


def apply_result(context, res, clip=None, sides=None, targets=None, make_camera=True):
    """Bake ``res`` (an engine.contract.result.Result) into the scene.

    sides: hands to import (default: all in the result). targets: {side: armature object} to bake
    onto an existing armature with MANO bone names; sides without a target get a new rig.
    Names: ``clip`` (default: the video's stem) made unique per source video (``take_name``).
    Returns a list of {"side", "rig", "action", "keys", "take"} (keys = keyframes per channel).
    """
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
    video = source_video(res)
    clip = take_name(clip or clip_name(res), video, sides)
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
        action[VIDEO_TAG] = video
        if len(frames):  # the take's own range: what exporters and NLA strips use for this Action
            action.use_frame_range = True
            action.frame_start, action.frame_end = float(frames[0]), max(float(frames[-1]), float(frames[0]) + 1)
        if target is None:
            obj[VIDEO_TAG] = video
        out.append({"side": side, "rig": obj, "action": action, "keys": int(valid.sum()), "take": clip})
    if make_camera:
        rig.ensure_camera(context, clip, res["K"], res["image_size"])[VIDEO_TAG] = video
    last = max(int(np.ceil(poses.result_scene_frames(res, fps, scene.frame_start)[-1])), scene.frame_start)
    if (scene.frame_start, scene.frame_end) == BLENDER_DEFAULT_RANGE or scene.frame_end < last:
        # the scene's range becomes the take (Blender's untouched 1-250 would play, and an FBX export of
        # the scene would bake, 250 frames), or grows to hold it; a range the user set is only extended
        scene.frame_end = last
    return out


BLENDER_DEFAULT_RANGE = (1, 250)  # a new scene's frame range


def _root_location_for(obj, hand, root_loc):
    """Root location for an existing armature, whose wrist rest head need not be the result's.

    The wrist head must reach C (J0 + transl) in world space; the armature's own rest wrist head
    (armature space, object transform identity assumed for rigs made here) gives the offset.
    """
    from .coords import matrix_array, points_to_blender

    wrist = obj.data.bones[rig.BONE_NAMES[0]]
    B0 = matrix_array(wrist.matrix_local)
    rest_head = np.array(wrist.head_local)
    world_target = points_to_blender(hand["rest_joints"][0])  # where the result's rest wrist is
    return root_loc + (world_target - rest_head) @ B0
