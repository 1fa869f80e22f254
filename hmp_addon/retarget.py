"""Retarget a captured hand onto any armature through a bone map: the Blender side (reads the
armature, checks the map, bakes the Action; bpy is imported only inside ``retarget_result``).

The maths (rest-pose-relative rotation transfer, root placement, channels) is in
``hmp_addon.retarget_maths``, the fingertip IK in ``hmp_addon.fingertip_ik``; their public names are
importable from here too.
"""

import numpy as np

from . import bonemaps
from .coords import matrix_array
from .fingertip_ik import FINGER_CHAINS, reach_fingertips
from .poses import PARENTS
from .retarget_maths import (JOINTS, MIN_FINGER_BONES, ROOT_IDS, ROOT_PLACEMENTS, Channels, RetargetProblem,
                             captured_fingertips, channels, plan, solve_against_parents, unchained_bones)

# the Blender side's own names, and the maths' names the panel, the scripts and the tests use from here
__all__ = ["FINGER_CHAINS", "JOINTS", "MIN_FINGER_BONES", "PARENTS", "ROOT_IDS", "ROOT_PLACEMENTS", "Channels",
           "RetargetProblem", "captured_fingertips", "channels", "check_target", "checked_mapping",
           "evaluated_matrices", "plan", "reach_fingertips", "retarget_result", "retarget_warnings",
           "solve_against_parents", "target_rest", "unchained_bones", "warnings_for"]


def check_target(obj) -> str | None:
    """None, or a one-line reason why ``obj`` cannot receive a retarget."""
    if obj is None or getattr(obj, "type", None) != "ARMATURE":
        return "choose an armature to retarget onto"
    if obj.library is not None or obj.data.library is not None:
        return f"'{obj.name}' is linked from a library: make it local (or a library override) first"
    if obj.mode == "EDIT":
        return f"'{obj.name}' is in Edit Mode: switch it to Object or Pose Mode first"
    sx, sy, sz = obj.matrix_world.to_scale()
    if max(abs(sx - sy), abs(sy - sz), abs(sx - sz)) > 1e-4 * max(abs(sx), abs(sy), abs(sz), 1e-9):
        return (f"'{obj.name}' has non-uniform scale ({sx:.3g}, {sy:.3g}, {sz:.3g}): apply the scale "
                "(Object > Apply > Scale) first")
    return None


def target_rest(obj) -> dict:
    """{bone: {"matrix", "head", "tail", "parent", "local_location"}} from the armature's rest bones
    (armature space)."""
    out = {}
    for b in obj.data.bones:
        out[b.name] = {"matrix": matrix_array(b.matrix_local),
                       "head": np.array(b.head_local), "tail": np.array(b.tail_local),
                       "parent": b.parent.name if b.parent else None, "local_location": b.use_local_location}
    return out



def warnings_for(obj, mapping: dict) -> list[str]:
    """Things that will make the baked motion differ from what was captured (not errors)."""
    out = []
    locked = [b for b in mapping.values() if b in obj.pose.bones and any(obj.pose.bones[b].lock_rotation)]
    if locked:
        out.append(f"rotation locks on {', '.join(locked[:4])}{'...' if len(locked) > 4 else ''} "
                   "(keys are written; the locks only stop manual edits)")
    constrained = [b for b in mapping.values() if b in obj.pose.bones and any(
        c.enabled and c.influence > 0 for c in obj.pose.bones[b].constraints)]
    if constrained:
        out.append(f"constraints on {', '.join(constrained[:4])}{'...' if len(constrained) > 4 else ''} "
                   "may override the baked keys")
    return out


def checked_mapping(obj, res, side: str, mapping: dict, root: str) -> tuple[dict, dict]:
    """The usable part of ``mapping`` for ``obj``: ({joint: bone} of bones that exist, {joint: bone}
    of bones that do not). Raises RetargetProblem when the retarget cannot be done."""
    problem = check_target(obj)
    if problem:
        raise RetargetProblem(problem)
    if side not in res.hands:
        raise RetargetProblem(f"the result has no {side} hand (it has: {', '.join(res.hands)})")
    if root not in ROOT_IDS:
        raise RetargetProblem(f"unknown root placement {root!r}")
    names = set(obj.data.bones.keys())
    absent = {j: b for j, b in mapping.items() if b not in names}
    mapping = {j: b for j, b in mapping.items() if b in names and j in JOINTS}
    if not mapping:
        raise RetargetProblem(f"none of the mapped bones exist in '{obj.name}'")
    if len(set(mapping.values())) < len(mapping):
        raise RetargetProblem("the bone map uses a bone for two joints")
    fingers = [j for j in JOINTS[1:] if j in mapping]
    if len(fingers) < MIN_FINGER_BONES:
        # a wrist alone (an unknown naming scheme) would bake a turned hand with straight fingers
        raise RetargetProblem(
            f"only {len(fingers)} of 15 finger bones are mapped onto '{obj.name}' (at least {MIN_FINGER_BONES} "
            "needed): choose the bones in the bone map list, or a preset, then Retarget again")
    return mapping, absent

def evaluated_matrices(context, obj, bones, frames: np.ndarray) -> dict:
    """{bone: (T, 4, 4)} the posed matrices (armature space) of ``bones`` as the rig evaluates them at
    the scene frames (T,) (fractional frames as subframes); the scene's frame is restored."""
    scene = context.scene
    current = scene.frame_current
    out = {b: np.empty((len(frames), 4, 4)) for b in bones}
    for i, f in enumerate(frames):
        whole = int(np.floor(f))
        scene.frame_set(whole, subframe=float(f - whole))
        for b in bones:
            out[b][i] = matrix_array(obj.pose.bones[b].matrix, 4)
    scene.frame_set(current)
    return out

def retarget_warnings(obj, mapping: dict, absent: dict) -> tuple[list, list]:
    """What the report says besides the Action: joints left unmapped, rotation locks and constraints
    on mapped bones, mapped bones missing from ``obj``. Returns (unmapped joints, warning lines)."""
    unmapped = bonemaps.missing(mapping)
    warns = []
    if unmapped:
        warns.append(f"not mapped: {', '.join(unmapped)}: those joints stay as they are on '{obj.name}'")
    warns += warnings_for(obj, mapping)
    if absent:
        warns.append(f"bones not found in '{obj.name}': {', '.join(sorted(absent.values()))}")
    return unmapped, warns


def retarget_result(context, obj, res, side: str, mapping: dict, root: str = "ROTATION", influence=None,
                    action_name=None, tolerance: float = 0.0, smoothing: float = 0.0, into_current: bool = False,
                    fingertips: bool = False) -> dict:
    """Bake one captured hand of ``res`` (engine.contract.result.Result) onto ``obj`` through ``mapping``.

    fingertips: after the rotation copy, bring each whole finger's tip to the captured fingertip scaled
    to the target (``reach_fingertips``; off when an influence is below 1).
    into_current: write into the Action ``obj`` already plays (its slot), replacing the mapped bones'
    keys over the captured frames only; otherwise a new Action named after the clip, hand and target
    (replacing one of that name). Returns {"action", "mapped", "unmapped", "warnings", "scale"}.
    Raises RetargetProblem before touching the scene when anything is wrong.
    """
    import bpy

    from . import bake, importer, poses

    mapping, absent = checked_mapping(obj, res, side, mapping, root)
    hand = res.hands[side]
    valid = np.asarray(hand["valid"], bool)
    rot = matrix_array(obj.matrix_world.to_3x3().normalized())
    rest = target_rest(obj)
    tips = captured_fingertips(hand, valid, influence) if fingertips else None
    ch = channels(hand["global_orient"][valid], hand["hand_pose"][valid], hand["transl"][valid], hand["rest_joints"],
                  rest, mapping, rot, root, influence, tips)
    frames = poses.result_scene_frames(res, importer.scene_fps(context.scene), context.scene.frame_start)[valid]
    video = importer.source_video(res)
    # a re-run of the same take replaces its Action; another take of a same-named video, or an Action
    # of the user's, is never replaced: the name gets a number
    name = action_name or importer.unique_name(f"{importer.clip_name(res)}_{side}_{obj.name}", video,
                                               [(bpy.data.actions.get, lambda c: c)])
    warns = []
    if into_current and (obj.animation_data is None or obj.animation_data.action is None):
        warns.append(f"'{obj.name}' played no Action: baked into a new one, {name}")
        into_current = False

    runs = bake.runs_of(valid)  # smoothing stays inside each run of valid frames

    def write(quats, locs, tolerance=0.0, smoothing=0.0):
        if into_current:
            return bake.bake_into_current_action(obj, frames, quats, locs, tolerance=tolerance, smoothing=smoothing,
                                                 runs=runs)
        return bake.bake_pose_action(obj, name, frames, quats, locs, tolerance=tolerance, smoothing=smoothing,
                                     runs=runs)

    unchained = unchained_bones(ch)
    resolve = bool(unchained) and root != "KEEP"
    quats = dict(ch.quats)
    locs = {b: v for b, v in ch.locs.items() if b not in {s["bone"] for s in unchained}}
    action = write(quats, locs)  # the rig's own motion for the bones below is read from these keys
    if resolve:
        P = evaluated_matrices(context, obj, {s["rig_parent"] for s in unchained}, frames)
        solved_quats, solved_locs = solve_against_parents(unchained, ch, rest, P)
        quats.update(solved_quats)
        locs.update(solved_locs)
    if smoothing > 0 or tolerance > 0 or resolve:
        action = write(quats, locs, tolerance, smoothing)
    if not into_current:
        action[importer.VIDEO_TAG] = video
    unmapped, more = retarget_warnings(obj, mapping, absent)
    return {"action": action, "mapped": mapping, "unmapped": unmapped, "warnings": warns + more, "scale": ch.scale}
