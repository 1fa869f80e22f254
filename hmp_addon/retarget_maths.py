"""Retarget a captured hand onto any armature through a bone map: the maths (numpy only; the Blender
side is ``hmp_addon.retarget``, the fingertip IK ``hmp_addon.fingertip_ik``).

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

from typing import NamedTuple

import numpy as np

from . import bonemaps
from .coords import CV_TO_BLENDER
from .fingertip_ik import FINGER_CHAINS, reach_fingertips
from .poses import CHILD, PARENTS, source_globals
from .rotations import (conjugate, inverse, kabsch, make_continuous, matrix_to_quat, relative, rotate, shortest_arc,
                        without_scale)

JOINTS = bonemaps.JOINTS


# The root placements (see the module docstring): (id, label, description), the Retarget panel's
# Wrist choices as they are listed there
ROOT_PLACEMENTS = (
    ("KEEP", "Keep", "Leave the character's wrist as it is: fingers only"),
    ("ROTATION", "Rotation", "Key the wrist's rotation as captured (its orientation in the camera's view)"),
    ("REST", "Rotation from Rest", "Match the first frame to the character's rest pose: the wrist turns from "
     "its rest as the hand turned from its first frame (for a T-posed character)"),
    ("FOLLOW", "Follow", "Key the wrist's rotation and its captured movement (scaled)"),
)
ROOT_IDS = tuple(r[0] for r in ROOT_PLACEMENTS)

# fewest finger joints (of MANO's 15) a bone map must give before a retarget bakes: two fingers' worth
MIN_FINGER_BONES = 6


class RetargetProblem(Exception):
    """A one-line reason why a retarget cannot be done; nothing was changed."""


def location_frame(target: dict, bone: str) -> np.ndarray:
    """(3,3) F mapping a pose bone's location channel to its head's armature-space displacement, for
    an unposed parent: the bone's rest orientation, or, for a bone with "Local Location" off (Rigify's
    IK controls), its parent's (the armature's when it has none)."""
    if target[bone].get("local_location", True):
        return np.asarray(target[bone]["matrix"], np.float64)
    parent = target[bone]["parent"]
    return np.eye(3) if parent is None else np.asarray(target[parent]["matrix"], np.float64)


def plan(target: dict, mapping: dict) -> dict:
    """Static part of a retarget. target: {bone: {"matrix": (3,3) rest B, "head": (3,), "tail": (3,),
    "parent": name or None}} in armature space. Returns per mapped joint the bone, its rotation
    parent joint, and whether it needs location keys (no mapped ancestor in its own chain)."""
    bone_of = {j: mapping[name] for j, name in enumerate(JOINTS) if name in mapping}
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

class Channels(NamedTuple):
    """What ``channels`` computes for one captured hand on one target (armature space, T frames)."""

    quats: dict  # {bone: (T, 4) wxyz}: pose-bone rotation channels, sign-continuous along T
    locs: dict  # {bone: (T, 3)}: pose-bone location channels (the wrist with FOLLOW, flat bones)
    scale: float  # target hand size / captured hand size
    world: dict  # {bone: (T, 3, 3)}: each mapped bone's world rotation change, for re-solving
    steps: dict  # plan(target, mapping)
    head_paths: dict  # {bone: (T, 3)}: where each flat bone's head must go, for re-solving


def captured_changes(global_orient: np.ndarray, hand_pose: np.ndarray, rest_joints: np.ndarray, S: np.ndarray,
                     influence: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The captured hand in armature space: A (T, 16, 3, 3) each joint's world rotation change from
    rest (S G_j S^T) and its rest joints (16, 3). S (3, 3): camera -> armature rotation."""
    G = source_globals(global_orient, hand_pose, influence)
    A = conjugate(S, G)
    return A, np.asarray(rest_joints, dtype=np.float64) @ S.T


def rest_alignment(steps: dict, target: dict, heads: dict, src_rest: np.ndarray) -> dict:
    """{joint: (3, 3) Q_j} aligning each mapped target rest bone onto the captured rest hand: the
    wrist by Kabsch of the target's mapped heads onto the captured rest joints (identity with fewer
    than three fingers' bones or no wrist), a finger bone by that then the shortest arc turning it
    along the captured bone. heads {joint: (3,)}, src_rest (16, 3), armature space."""
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
    return Q


def root_rebase(Y: dict, root: str) -> np.ndarray:
    """(T, 3, 3) or (3, 3) rotation M, applied on the left to every world change (Y' = M Y) and to the
    captured fingertips, for the root placement: KEEP, the wrist's change undone frame by frame (the
    character's wrist stays put); REST, the first frame's wrist change undone (Y'(t) = Y_w(0)^T Y(t):
    the hand turns from the character's rest wrist as it turned from its first frame, in its own
    axes); else (or without a mapped wrist) the identity."""
    if root == "KEEP" and 0 in Y:
        return inverse(Y[0])
    if root == "REST" and 0 in Y:
        return inverse(Y[0][0])
    return np.eye(3)


def hand_scale(steps: dict, heads: dict, src_rest: np.ndarray) -> float:
    """Target hand size / captured hand size: mean wrist-to-joint distance over the mapped joints
    (1 without a mapped wrist or fingers)."""
    common = [j for j in steps if j != 0]
    if 0 not in steps or not common:
        return 1.0
    return float(np.mean([np.linalg.norm(heads[j] - heads[0]) for j in common]) / max(
        np.mean([np.linalg.norm(src_rest[j] - src_rest[0]) for j in common]), 1e-9))


def rotation_channels(steps: dict, target: dict, Y: dict, root: str) -> dict:
    """{bone: (T, 4)} L = B^T Y_p^T Y B for every mapped bone (Y_p: its rotation parent's change; the
    wrist is left out with KEEP)."""
    quats = {}
    for j, s in steps.items():
        if j == 0 and root == "KEEP":
            continue
        B = np.asarray(target[s["bone"]]["matrix"], np.float64)
        L = conjugate(B.T, Y[j] if s["parent"] is None else relative(Y[s["parent"]], Y[j]))  # B^T Yp^T Y B
        quats[s["bone"]] = make_continuous(matrix_to_quat(L))
    return quats


def location_channels(steps: dict, target: dict, heads: dict, Y: dict,
                      wrist_path: np.ndarray | None) -> tuple[dict, dict]:
    """Location channels and head paths: ({bone: (T, 3)}, {bone: (T, 3)}).

    wrist_path (T, 3) or None: the wrist head's armature-space displacement (FOLLOW), keyed on the
    wrist. Flat bones (no mapped ancestor in their own chain) get their heads carried along by their
    rotation parent's change (and its displacement): head_paths, and the location keys that put them
    there when their rig parent stays at rest."""
    locs, head_paths = {}, {}
    disp = {}  # {joint: (T, 3) displacement of its head}
    if wrist_path is not None:
        disp[0] = wrist_path
        locs[steps[0]["bone"]] = wrist_path @ location_frame(target, steps[0]["bone"])  # F^T disp, row vectors
    for j, s in steps.items():
        if not s["flat"] or s["parent"] is None:
            continue
        pj = s["parent"]
        new_head = heads[pj] + disp.get(pj, 0.0) + rotate(Y[pj], heads[j] - heads[pj])
        head_paths[s["bone"]] = new_head
        locs[s["bone"]] = (new_head - heads[j]) @ location_frame(target, s["bone"])
    return locs, head_paths


def channels(global_orient, hand_pose, transl, rest_joints, target, mapping, armature_rotation=np.eye(3),
             root: str = "ROTATION", influence: dict | None = None, tips=None) -> Channels:
    """Per-bone channels of one captured hand on ``target`` (see the module docstring).

    global_orient (T, 3), hand_pose (T, 45), transl (T, 3), rest_joints (16, 3): the result hand
    (camera frame). target: ``target_rest`` of the armature; mapping {MANO joint: bone};
    armature_rotation (3, 3): the armature's world rotation. tips: (T, 5, 3) captured fingertips
    minus wrist, camera frame (thumb..pinky as FINGER_CHAINS): reach them with each whole finger
    (``reach_fingertips``); None: rotations only. Nothing passed in is changed.
    """
    steps = plan(target, mapping)
    if not steps:
        raise RetargetProblem("the bone map is empty")
    S = np.asarray(armature_rotation).T @ CV_TO_BLENDER  # camera -> armature space
    A, src_rest = captured_changes(global_orient, hand_pose, rest_joints, S, influence)
    heads = {j: np.asarray(target[s["bone"]]["head"], np.float64) for j, s in steps.items()}
    Q = rest_alignment(steps, target, heads, src_rest)
    Y = {j: A[:, j] @ Q[j] for j in steps}  # (T, 3, 3) world change of each mapped bone
    M = root_rebase(Y, root)
    Y = {j: M @ y for j, y in Y.items()}
    scale = hand_scale(steps, heads, src_rest)
    if tips is not None and 0 in steps:
        c = np.asarray(tips, np.float64) @ S.T  # (T, 5, 3) armature space, as the captured hand holds them
        c = rotate(M[..., None, :, :], c)  # as the re-based hand holds them
        Y, _ = reach_fingertips(Y, steps, target, heads, c, scale)
    quats = rotation_channels(steps, target, Y, root)
    wrist_path = None
    if root == "FOLLOW" and 0 in steps:  # the captured wrist's displacement, scaled to the target's size
        wrist_cam = np.asarray(rest_joints, np.float64)[0] + np.asarray(transl)  # (T, 3) camera frame
        wrist_path = (wrist_cam - wrist_cam[:1]) @ S.T * scale
    locs, head_paths = location_channels(steps, target, heads, Y, wrist_path)
    world = {steps[j]["bone"]: Y[j] for j in steps}
    return Channels(quats, locs, scale, world, steps, head_paths)


def rest_matrix4(rest_bone: dict) -> np.ndarray:
    """(4,4) rest matrix (armature space) from a ``target_rest`` entry."""
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rest_bone["matrix"], rest_bone["head"]
    return m
def captured_fingertips(hand, valid: np.ndarray, influence: dict | None = None) -> np.ndarray | None:
    """(T, 5, 3) captured fingertips minus the wrist over the valid frames, camera frame, thumb..pinky
    (FINGER_CHAINS order); None when a finger is held back by its influence (it keeps its rotations)."""
    if influence and any(float(influence.get(f, 1.0)) != 1.0 for f in FINGER_CHAINS):
        return None
    joints = np.asarray(hand["joints"], np.float64)[valid]  # (T, 21, 3)
    return joints[:, [FINGER_CHAINS[f][3] for f in FINGER_CHAINS]] - joints[:, :1]


def unchained_bones(ch: Channels) -> list:
    """The flat bones under a rig parent (``plan`` steps): their location keys from ``channels``
    assume a parent at rest, so they are dropped, and (but with KEEP) the bones are re-solved
    against their parent's evaluated motion (``solve_against_parents``)."""
    return [s for s in ch.steps.values() if s["flat"] and s["rig_parent"] is not None]

def solve_against_parents(unchained: list, ch: Channels, rest: dict, P: dict) -> tuple[dict, dict]:
    """Channels of bones whose rig parent moves through the rig's own machinery (IK, constraints,
    helper chains, e.g. Rigify's fingers under MCH-*_drv bones): ({bone: (T, 4)}, {bone: (T, 3)}).

    P {parent: (T, 4, 4)}: the parents' evaluated posed matrices. A child's posed matrix is
    P(t) R_p^-1 R_b Basis (R: rest matrices), so with K(t) = P(t) R_p^-1 R_b
      rotation  L = K3(t)^T Y(t) B          (K3: K's rotation part, B: the bone's rest rotation)
      location  l = F(t)^-1 (h(t) - k(t))   (F: K's 3x3, or P's with "Local Location" off; h: the head
                                             the captured chain asks for; k: K's offset)
    A location is keyed only where the rig does not carry the head there already (beyond 2% of the
    bone's length: its IK solver's slack)."""
    quats, locs = {}, {}
    for s in unchained:
        bone, parent = s["bone"], s["rig_parent"]
        K = P[parent] @ np.linalg.inv(rest_matrix4(rest[parent])) @ rest_matrix4(rest[bone])
        K3 = without_scale(K[:, :3, :3])  # rotation only
        L = relative(K3, ch.world[bone]) @ rest[bone]["matrix"]
        quats[bone] = make_continuous(matrix_to_quat(L))
        if bone in ch.head_paths:
            F = K[:, :3, :3] if rest[bone]["local_location"] else P[parent][:, :3, :3]
            loc = np.linalg.solve(F, (ch.head_paths[bone] - K[:, :3, 3])[..., None])[..., 0]
            size = max(np.linalg.norm(rest[bone]["tail"] - rest[bone]["head"]), 1e-9)
            if np.abs(loc).max() > 0.02 * size:
                locs[bone] = loc
    return quats, locs
