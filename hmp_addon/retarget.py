"""Retarget a captured hand onto any armature through a bone map (numpy maths + one bpy entry).

Rest-pose-relative rotation transfer. Let A_j(t) be the captured joint j's rotation change from its
rest (its global rotation G_j, expressed in the armature's space: S G_j S^T with S the camera ->
armature rotation). Target bone b mapped to joint j gets the world rotation change

    Y_b(t) = A_j(t) Q_b

where Q_b is a fixed alignment of the target's rest bone onto the captured hand's rest bone (the
wrist: the rotation that best lays the target's rest hand onto the captured rest hand (Kabsch on
the mapped joints); a finger bone: the wrist's alignment then the shortest arc that turns the bone
along the captured bone). A pose bone's rotation is relative to its rest frame B_b and to its
parent's motion, so its channel is

    L_b = B_b^T Y_p^T Y_b B_b

with Y_p the world change of the nearest mapped ancestor (intermediate unmapped bones, e.g. palm
bones, ride along unposed). Bones whose rig does not chain them to a mapped ancestor (a flat rig
such as the WebXR hand, or Rigify's fingers hanging off ORG bones) take the wrist as their parent
for rotation; parentless bones also get location keys so their heads follow the chain, and bones
under unmapped helpers are solved against their parent's evaluated motion (rotation and head).

Root placement (``root``): ``KEEP`` leaves the character's wrist as it is (fingers only);
``ROTATION`` keys the wrist's rotation (its orientation as in the camera's view); ``REST`` keys the
wrist's rotation relative to the first frame: the first frame's wrist is the character's rest wrist
and the hand turns from there as it turned in the video, in the hand's own axes (a T-posed character
keeps its wrist in line with its forearm); ``FOLLOW`` keys rotation and location (the wrist moves as
captured, scaled to the target hand's size). ``influence`` {finger: 0..1} scales each finger's
captured joint rotations (0 keeps the finger at rest).
"""

import numpy as np

from . import bonemaps
from .coords import CV_TO_BLENDER
from .engine_link import joints as J
from .poses import source_globals
from .rotations import axis_angle_to_matrix, kabsch, make_continuous, matrix_to_axis_angle, matrix_to_quat, shortest_arc

JOINTS = bonemaps.JOINTS
PARENTS = tuple(int(p) for p in J.MANO_PARENTS)
CHILD = {j: next((k for k in range(16) if PARENTS[k] == j), None) for j in range(16)}


# fewest finger joints (of MANO's 15) a bone map must give before a retarget bakes: two fingers' worth
MIN_FINGER_BONES = 6


class RetargetProblem(Exception):
    """A one-line reason why a retarget cannot be done; nothing was changed."""


def location_frame(target, bone):
    """(3,3) F mapping a pose bone's location channel to its head's armature-space displacement, for
    an unposed parent: the bone's rest orientation, or, for a bone with "Local Location" off (Rigify's
    IK controls), its parent's (the armature's when it has none)."""
    if target[bone].get("local_location", True):
        return np.asarray(target[bone]["matrix"], np.float64)
    parent = target[bone]["parent"]
    return np.eye(3) if parent is None else np.asarray(target[parent]["matrix"], np.float64)


def plan(target, mapping):
    """Static part of a retarget. target: {bone: {"matrix": (3,3) rest B, "head": (3,), "tail": (3,),
    "parent": name or None}} in armature space. Returns per mapped joint the bone, its rotation
    parent joint, and whether it needs location keys (no mapped ancestor in its own chain)."""
    bone_of = {j: mapping[JOINTS[j]] for j in range(16) if JOINTS[j] in mapping}
    joint_of = {b: j for j, b in bone_of.items()}
    out = {}
    for j, bone in bone_of.items():
        p, chained = target[bone]["parent"], None
        while p is not None:
            if p in joint_of:
                chained = joint_of[p]
                break
            p = target[p]["parent"]
        # unchained: no mapped ancestor in the rig's own hierarchy (a flat rig, or fingers that hang off
        # helper bones): their parent's motion is read from the evaluated rig (see retarget_result);
        # for rotation maths and head positions they follow the wrist joint
        wrist = 0 if 0 in bone_of and j != 0 else None
        out[j] = {"bone": bone, "parent": chained if chained is not None else wrist, "flat": chained is None and j != 0,
                  "rig_parent": target[bone]["parent"]}
    return out


FINGER_CHAINS = {"thumb": (13, 14, 15, 4), "index": (1, 2, 3, 8), "middle": (4, 5, 6, 12), "ring": (10, 11, 12, 16),
                 "pinky": (7, 8, 9, 20)}  # MANO joints of each finger, then its MediaPipe fingertip


def reach_fingertips(Y, steps, target, heads, tips, scale, iterations=30):
    """Fingertip IK beside the rotation copy (``Y`` {joint: (T,3,3)} world changes, updated in place).

    A target whose fingers are longer or shorter, relative to its palm, than the captured hand's puts
    its fingertips elsewhere even when every bone turns as captured. For each finger mapped whole
    (three chained bones under the wrist), its fingertip (the last bone's tail) is brought to the
    captured fingertip scaled to the target's size (``tips`` (T,5,3): captured fingertip minus wrist,
    armature space, thumb..pinky as FINGER_CHAINS): first the finger's two bends are scaled by one
    factor until the base-to-tip distance matches (bisection; a finger too short stays straight),
    then the whole finger swings about its base onto the fingertip. Returns {finger: (T,) distance
    left, armature units}."""
    left = {}
    for k, (finger, (j1, j2, j3, _)) in enumerate(FINGER_CHAINS.items()):
        if 0 not in Y or any(j not in steps or steps[j]["flat"] for j in (j1, j2, j3)):
            continue
        if (steps[j1]["parent"], steps[j2]["parent"], steps[j3]["parent"]) != (0, j1, j2):
            continue
        hw = heads[0]
        b = hw + np.einsum("tab,b->ta", Y[0], heads[j1] - hw)  # (T,3) the finger's base moves with the wrist
        v1, v2 = heads[j2] - heads[j1], heads[j3] - heads[j2]
        v3 = np.asarray(target[steps[j3]["bone"]]["tail"], np.float64) - heads[j3]
        P = hw + scale * tips[:, k]  # (T,3) where the fingertip should be
        Y1, Y2, Y3 = Y[j1], Y[j2], Y[j3]
        rel2 = matrix_to_axis_angle(np.swapaxes(Y1, -1, -2) @ Y2)  # (T,3) the finger's two bends
        rel3 = matrix_to_axis_angle(np.swapaxes(Y2, -1, -2) @ Y3)

        def chain(f):
            Y2f = Y1 @ axis_angle_to_matrix(rel2 * f[:, None])
            Y3f = Y2f @ axis_angle_to_matrix(rel3 * f[:, None])
            end = b + np.einsum("tab,b->ta", Y1, v1) + np.einsum("tab,b->ta", Y2f, v2) + np.einsum("tab,b->ta", Y3f, v3)
            return Y2f, Y3f, end

        want = np.linalg.norm(P - b, axis=-1)
        lo, hi = np.zeros(len(b)), np.full(len(b), 2.5)  # bend factor: 0 straight .. 2.5 curled further
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            too_long = np.linalg.norm(chain(mid)[2] - b, axis=-1) > want
            lo, hi = np.where(too_long, mid, lo), np.where(too_long, hi, mid)
        Y2f, Y3f, end = chain(0.5 * (lo + hi))
        R = shortest_arc(end - b, P - b)  # (T,3,3) swing about the base
        Y[j1], Y[j2], Y[j3] = R @ Y1, R @ Y2f, R @ Y3f
        left[finger] = np.linalg.norm(b + np.einsum("tab,ta->tb", np.swapaxes(R, -1, -2), end - b) - P, axis=-1)
    return left


def channels(global_orient, hand_pose, transl, rest_joints, target, mapping, armature_rotation=np.eye(3),
             root="ROTATION", influence=None, tips=None):
    """Per-bone quaternions {bone: (T,4)} and locations {bone: (T,3)} (see the module docstring).
    tips: (T,5,3) captured fingertips minus wrist, camera frame (thumb..pinky as FINGER_CHAINS): reach
    them with each whole finger (``reach_fingertips``); None: rotations only."""
    steps = plan(target, mapping)
    if not steps:
        raise RetargetProblem("the bone map is empty")
    S = np.asarray(armature_rotation).T @ CV_TO_BLENDER  # camera -> armature space
    G = source_globals(global_orient, hand_pose, influence)
    A = np.einsum("ab,tjbc,dc->tjad", S, G, S)  # (T,16,3,3) world changes in armature space
    src_rest = np.asarray(rest_joints, dtype=np.float64) @ S.T  # (16,3) armature space
    heads = {j: np.asarray(target[s["bone"]]["head"], np.float64) for j, s in steps.items()}
    # wrist alignment: Kabsch of the target's mapped heads onto the captured rest joints
    common = [j for j in steps if j != 0]
    if 0 in steps and len(common) >= 3:
        Qw = kabsch(np.array([heads[j] - heads[0] for j in common]), np.array([src_rest[j] - src_rest[0] for j in common]))
    else:
        Qw = np.eye(3)
    Q = {}
    for j, s in steps.items():
        if j == 0:
            Q[j] = Qw
            continue
        t_dir = np.asarray(target[s["bone"]]["tail"], np.float64) - heads[j]
        child = CHILD[j]
        s_dir = src_rest[child] - src_rest[j] if child is not None else src_rest[j] - src_rest[PARENTS[j]]
        Q[j] = shortest_arc(Qw @ t_dir, s_dir) @ Qw
    Y = {j: A[:, j] @ Q[j] for j in steps}  # (T,3,3) world change of each mapped bone
    T = len(global_orient)
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    if root == "KEEP" and 0 in Y:  # the character's wrist stays put: everything relative to it
        Y_keep = Y[0]
        Y0t = np.swapaxes(Y[0], -1, -2)
        Y = {j: Y0t @ y for j, y in Y.items()}
    if root == "REST" and 0 in Y:
        # the first frame's wrist is the character's rest wrist; later frames turn from it as the hand
        # turned from its first frame, in the hand's own axes: Y'(t) = Y_w(0)^T Y(t), i.e. the wrist's
        # change Q_w^T (A_w(0)^T A_w(t)) Q_w (its rotation since frame 0, seen from the aligned rest)
        C = Y[0][0].T
        Y = {j: C @ y for j, y in Y.items()}
    quats, locs = {}, {}
    scale = 1.0
    if 0 in steps and common:
        scale = np.mean([np.linalg.norm(heads[j] - heads[0]) for j in common]) / max(
            np.mean([np.linalg.norm(src_rest[j] - src_rest[0]) for j in common]), 1e-9)
    if tips is not None and 0 in steps:
        c = np.asarray(tips, np.float64) @ S.T  # (T,5,3) armature space, as the captured hand holds them
        if root == "KEEP":
            c = np.einsum("tba,tkb->tka", Y_keep, c)
        elif root == "REST":
            c = c @ C.T
        reach_fingertips(Y, steps, target, heads, c, scale)
    for j, s in steps.items():
        if j == 0 and root == "KEEP":
            continue
        B = np.asarray(target[s["bone"]]["matrix"], np.float64)
        Yp = Y[s["parent"]] if s["parent"] is not None else eye
        L = np.einsum("ba,tcb,tcd,de->tae", B, Yp, Y[j], B)  # B^T Yp^T Y B
        quats[s["bone"]] = make_continuous(matrix_to_quat(L))
    # wrist location (FOLLOW): the captured wrist's displacement, scaled to the target's size
    disp = {}  # {joint: (T,3) armature-space displacement of its head}
    if root == "FOLLOW" and 0 in steps:
        wrist_cam = rest_joints[0] + np.asarray(transl)  # (T,3) camera: the wrist joint's position
        disp[0] = (wrist_cam - wrist_cam[:1]) @ S.T * scale
        locs[steps[0]["bone"]] = disp[0] @ location_frame(target, steps[0]["bone"])  # F^T disp, row vectors
    # flat bones: heads follow the chain of their rotation parent
    for j, s in steps.items():
        if not s["flat"] or s["parent"] is None:
            continue
        pj = s["parent"]
        rel = heads[j] - heads[pj]
        new_head = heads[pj] + disp.get(pj, 0.0) + np.einsum("tab,b->ta", Y[pj], rel)
        s["head_path"] = new_head  # (T,3) armature space, for bones re-solved against their rig parent
        locs[s["bone"]] = (new_head - heads[j]) @ location_frame(target, s["bone"])
    world = {steps[j]["bone"]: Y[j] for j in steps}  # (T,3,3) each bone's world change, for re-solving
    return quats, locs, scale, world, steps


# ---------------------------------------------------------------------------------------------- bpy side

def check_target(obj):
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


def target_rest(obj):
    """{bone: {"matrix", "head", "tail", "parent", "local_location"}} from the armature's rest bones
    (armature space)."""
    out = {}
    for b in obj.data.bones:
        m = b.matrix_local
        out[b.name] = {"matrix": np.array([[m[r][c] for c in range(3)] for r in range(3)]),
                       "head": np.array(b.head_local), "tail": np.array(b.tail_local),
                       "parent": b.parent.name if b.parent else None, "local_location": b.use_local_location}
    return out


def rest_matrix4(rest_bone):
    """(4,4) rest matrix (armature space) from a ``target_rest`` entry."""
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rest_bone["matrix"], rest_bone["head"]
    return m


def warnings_for(obj, mapping):
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


def retarget_result(context, obj, res, side, mapping, root="ROTATION", influence=None, action_name=None,
                    tolerance=0.0, smoothing=0.0, into_current=False, fingertips=False):
    """Bake one captured hand of ``res`` (engine.result.Result) onto ``obj`` through ``mapping``.

    fingertips: after the rotation copy, bring each whole finger's tip to the captured fingertip scaled
    to the target (``reach_fingertips``; off when an influence is below 1).
    into_current: write into the Action ``obj`` already plays (its slot), replacing the mapped bones'
    keys over the captured frames only; otherwise a new Action named after the clip, hand and target
    (replacing one of that name). Returns {"action", "mapped", "unmapped", "warnings", "scale"}.
    Raises RetargetProblem before touching the scene when anything is wrong.
    """
    import bpy

    from . import bake, importer, poses

    problem = check_target(obj)
    if problem:
        raise RetargetProblem(problem)
    if side not in res.hands:
        raise RetargetProblem(f"the result has no {side} hand (it has: {', '.join(res.hands)})")
    if root not in ("KEEP", "ROTATION", "REST", "FOLLOW"):
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
    hand = res.hands[side]
    valid = np.asarray(hand["valid"], bool)
    mw = obj.matrix_world.to_3x3().normalized()
    rot = np.array([[mw[r][c] for c in range(3)] for r in range(3)])
    rest = target_rest(obj)
    tips = None
    if fingertips:  # (T,5,3) captured fingertips minus the wrist, camera frame, thumb..pinky
        joints = np.asarray(hand["joints"], np.float64)[valid]
        tips = joints[:, [FINGER_CHAINS[f][3] for f in FINGER_CHAINS]] - joints[:, :1]
        if influence:  # a finger held back by its influence keeps its rotations: no reach
            tips = tips if all(float(influence.get(f, 1.0)) == 1.0 for f in FINGER_CHAINS) else None
    quats, locs, scale, world, steps = channels(hand["global_orient"][valid], hand["hand_pose"][valid],
                                                hand["transl"][valid], hand["rest_joints"], rest, mapping, rot, root,
                                                influence, tips)
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

    def write(tolerance=0.0, smoothing=0.0):
        if into_current:
            return bake.bake_into_current_action(obj, frames, quats, locs, tolerance=tolerance, smoothing=smoothing)
        return bake.bake_pose_action(obj, name, frames, quats, locs, tolerance=tolerance, smoothing=smoothing)

    unchained = [s for j, s in steps.items() if s["flat"] and s["rig_parent"] is not None]
    for s in unchained:  # solved below against the parent's evaluated motion, not against its rest
        locs.pop(s["bone"], None)
    action = write()  # (final keys below if re-solved)
    if unchained and root != "KEEP":
        # these bones' parents move with the hand through the rig's own machinery (IK, constraints,
        # helper chains, e.g. Rigify's fingers under MCH-*_drv bones): read each parent's evaluated
        # posed matrix P(t) (4x4, armature space) frame by frame and solve the bone against it. A child's
        # posed matrix is P(t) R_p^-1 R_b Basis (R: rest matrices), so with K(t) = P(t) R_p^-1 R_b
        #   rotation  L = K3(t)^T Y(t) B          (K3: K's rotation part, B: the bone's rest rotation)
        #   location  l = F(t)^-1 (h(t) - k(t))   (F: K's 3x3, or P's with "Local Location" off; h: the
        #                                          head the captured chain asks for; k: K's offset)
        scene = context.scene
        current = scene.frame_current
        parents = {s["rig_parent"] for s in unchained}
        P = {p: np.empty((len(frames), 4, 4)) for p in parents}
        for i, f in enumerate(frames):
            whole = int(np.floor(f))
            scene.frame_set(whole, subframe=float(f - whole))
            for p in parents:
                m = obj.pose.bones[p].matrix
                P[p][i] = [[m[r][c] for c in range(4)] for r in range(4)]
        scene.frame_set(current)
        for s in unchained:
            K = P[s["rig_parent"]] @ np.linalg.inv(rest_matrix4(rest[s["rig_parent"]])) @ rest_matrix4(rest[s["bone"]])
            K3 = K[:, :3, :3] / np.linalg.norm(K[:, :3, :3], axis=1, keepdims=True)  # rotation only
            L = np.einsum("tcb,tcd,de->tbe", K3, world[s["bone"]], rest[s["bone"]]["matrix"])
            quats[s["bone"]] = make_continuous(matrix_to_quat(L))
            if "head_path" in s:
                # the location channel's frame: the bone's own (K), or with "Local Location" off its parent's
                F = K[:, :3, :3] if rest[s["bone"]]["local_location"] else P[s["rig_parent"]][:, :3, :3]
                loc = np.linalg.solve(F, (s["head_path"] - K[:, :3, 3])[..., None])[..., 0]
                size = max(np.linalg.norm(rest[s["bone"]]["tail"] - rest[s["bone"]]["head"]), 1e-9)
                # the rig normally carries the head there already (up to its IK solver's slack): key the
                # location only where it does not (a parent that does not follow the hand)
                if np.abs(loc).max() > 0.02 * size:
                    locs[s["bone"]] = loc
    if smoothing > 0 or tolerance > 0 or (unchained and root != "KEEP"):
        action = write(tolerance, smoothing)
    if not into_current:
        action[importer.VIDEO_TAG] = video
    unmapped = bonemaps.missing(mapping)
    if unmapped:
        warns.append(f"not mapped: {', '.join(unmapped)}: those joints stay as they are on '{obj.name}'")
    warns += warnings_for(obj, mapping)
    if absent:
        warns.append(f"bones not found in '{obj.name}': {', '.join(sorted(absent.values()))}")
    return {"action": action, "mapped": mapping, "unmapped": unmapped, "warnings": warns,
            "scale": scale}
