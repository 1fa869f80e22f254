"""Known answers, computed by hand, for the maths that turns MANO rotations into pose-bone channels:
poses.bone_channels (our own rig) and retarget.channels (any armature through a bone map).

Camera -> Blender: C (x, y, z) = (x, z, -y). A rotation by angle t about the camera axis a becomes,
on a bone with rest orientation B, the quaternion (cos t/2, sin t/2 B^T C a) (w, x, y, z).
"""

import math

import numpy as np
import pytest
from addon_support import REST_RIGHT

from engine.contract import joints as J
from hmp_addon import coords, poses, retarget

S = math.sqrt(0.5)
ROLL_Z = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # a rest frame turned 90 degrees about Blender z
WRIST, INDEX1, INDEX3 = 0, 1, 3


def _same_rotation(q, want):
    """Quaternions equal up to sign (a half turn's sign is arbitrary)."""
    return np.allclose(q, want) or np.allclose(q, -np.asarray(want))


def _poses(T=1, **joints):
    """global_orient (T,3), hand_pose (T,45) with the given joints' axis-angles (MANO index: (T,3))."""
    aa = np.zeros((T, 16, 3))
    for j, value in joints.items():
        aa[:, int(j[1:])] = value
    return aa[:, 0], aa[:, 1:].reshape(T, 45)


def test_bone_channels_identity_rest_frames():
    frames = np.broadcast_to(np.eye(3), (16, 3, 3))
    go, hp = _poses(j0=[[np.pi / 2, 0, 0]], j1=[[0, np.pi / 2, 0]], j2=[[0, 0, np.pi]], j3=[[1e-9, 0, 0]])
    quats, loc = poses.bone_channels(go, hp, np.array([[1.0, 2.0, 3.0]]), frames)
    assert quats.shape == (1, 16, 4) and loc.shape == (1, 3)
    assert np.allclose(quats[0, WRIST], [S, S, 0, 0])  # 90 degrees about camera x = Blender x
    assert np.allclose(quats[0, INDEX1], [S, 0, 0, -S])  # about camera y (down) = Blender -z
    assert np.allclose(quats[0, 2], [0, 0, 1, 0])  # 180 degrees about camera z (forward) = Blender +y
    assert np.allclose(quats[0, INDEX3], [1, 5e-10, 0, 0], atol=1e-15)  # a tiny angle stays exact
    assert np.array_equal(quats[0, 4:], np.tile([1.0, 0, 0, 0], (12, 1)))  # unposed joints: identity
    assert np.allclose(loc[0], [1.0, 3.0, -2.0])  # the root's location: C transl


def test_bone_channels_rolled_rest_frame():
    frames = np.array([ROLL_Z] + [np.eye(3)] * 15)
    go, hp = _poses(j0=[[np.pi / 2, 0, 0]])
    quats, loc = poses.bone_channels(go, hp, np.array([[1.0, 2.0, 3.0]]), frames)
    # B^T (1, 0, 0) = (0, -1, 0): the same turn, about the bone's own -y
    assert np.allclose(quats[0, WRIST], [S, 0, -S, 0])
    assert np.allclose(loc[0], ROLL_Z.T @ [1.0, 3.0, -2.0])  # B^T C transl = (3, -1, -2)


def test_bone_channels_stay_sign_continuous_through_180_degrees():
    # 170 then 190 degrees about camera z (written as -170): one turn, not a 340-degree swing back
    t = math.radians(170)
    go, hp = _poses(T=2, j0=[[0, 0, t], [0, 0, -t]])
    quats, _ = poses.bone_channels(go, hp, np.zeros((2, 3)), np.broadcast_to(np.eye(3), (16, 3, 3)))
    c, s = math.cos(t / 2), math.sin(t / 2)
    assert np.allclose(quats[:, WRIST], [[c, 0, s, 0], [-c, 0, s, 0]])


def _target(matrix=np.eye(3), scale=1.0):
    """A target laid out exactly like the captured rest hand (Blender axes, ``scale`` times its size),
    with MANO bone names and every rest frame ``matrix``: each bone points along its captured bone
    (last bones continue their parent's direction), so the rest alignment is the identity."""
    heads = coords.points_to_blender(REST_RIGHT) * scale
    target = {}
    for j, name in enumerate(J.MANO_JOINT_NAMES):
        parent = int(J.MANO_PARENTS[j])
        child = poses.CHILD[j]
        tail = heads[child] if child is not None else heads[j] + (heads[j] - heads[parent])
        target[name] = {"matrix": np.array(matrix, float), "head": heads[j], "tail": tail,
                        "parent": J.MANO_JOINT_NAMES[parent] if parent >= 0 else None, "local_location": True}
    return target, {n: n for n in J.MANO_JOINT_NAMES}


def _channels(go, hp, transl=None, matrix=np.eye(3), scale=1.0, **kw):
    target, mapping = _target(matrix, scale)
    transl = np.zeros((len(go), 3)) if transl is None else transl
    return retarget.channels(go, hp, transl, REST_RIGHT, target, mapping, **kw)


def test_retarget_channels_on_a_copy_of_the_captured_hand():
    go, hp = _poses(j0=[[np.pi / 2, 0, 0]], j1=[[0, 0, np.pi / 2]], j13=[[0, -np.pi, 0]])
    ch = _channels(go, hp)
    assert ch.scale == pytest.approx(1.0)
    assert np.allclose(ch.quats["wrist"][0], [S, S, 0, 0])
    # a finger's channel is relative to its parent's motion: its own rotation only, C a
    assert np.allclose(ch.quats["index1"][0], [S, 0, S, 0])   # camera z -> Blender y
    assert _same_rotation(ch.quats["thumb1"][0], [0, 0, 0, 1])  # 180 degrees about camera -y: Blender +z
    assert np.allclose(ch.quats["middle2"][0], [1, 0, 0, 0])
    assert ch.locs == {} and ch.head_paths == {}  # chained bones: rotations only
    # the same answer as our own rig's channels (identity rest frames)
    quats, _ = poses.bone_channels(go, hp, np.zeros((1, 3)), np.broadcast_to(np.eye(3), (16, 3, 3)))
    for j, name in enumerate(J.MANO_JOINT_NAMES):
        assert _same_rotation(ch.quats[name][0], quats[0, j]), name


def test_retarget_channels_rolled_rest_frames_and_a_bigger_target():
    go, hp = _poses(j0=[[np.pi / 2, 0, 0]], j1=[[0, 0, np.pi / 2]])
    ch = _channels(go, hp, matrix=ROLL_Z, scale=2.0)
    assert ch.scale == pytest.approx(2.0)
    assert np.allclose(ch.quats["wrist"][0], [S, 0, -S, 0])  # B^T (1,0,0) = (0,-1,0)
    assert np.allclose(ch.quats["index1"][0], [S, S, 0, 0])  # B^T (0,1,0) = (1,0,0)


def test_retarget_root_placements():
    q = np.pi / 4
    go, hp = _poses(T=2, j0=[[q, 0, 0], [3 * q, 0, 0]], j1=[[0, 0, np.pi / 2]] * 2)
    transl = np.array([[0.0, 0, 0], [0.1, 0.2, 0.3]])
    c, s = math.cos(q / 2), math.sin(q / 2)
    rot = _channels(go, hp, transl, root="ROTATION")
    c3, s3 = math.cos(3 * q / 2), math.sin(3 * q / 2)
    assert np.allclose(rot.quats["wrist"], [[c, s, 0, 0], [c3, s3, 0, 0]])  # 45 then 135 degrees about x
    assert "wrist" not in rot.locs
    # REST: the first frame's wrist is the rest wrist: 0 then 90 degrees
    rest = _channels(go, hp, transl, root="REST")
    assert np.allclose(rest.quats["wrist"], [[1, 0, 0, 0], [S, S, 0, 0]])
    # KEEP: no wrist channel; the fingers keep their own rotations
    keep = _channels(go, hp, transl, root="KEEP")
    assert "wrist" not in keep.quats and "wrist" not in keep.locs
    assert np.allclose(keep.quats["index1"], [[S, 0, S, 0]] * 2)
    # FOLLOW: the wrist also moves as captured, from its first frame: C (transl(t) - transl(0)), x2 size
    follow = _channels(go, hp, transl, root="FOLLOW", scale=2.0)
    assert np.allclose(follow.quats["wrist"], rot.quats["wrist"])
    assert np.allclose(follow.locs["wrist"], [[0, 0, 0], [0.2, 0.6, -0.4]])


def test_retarget_influence_scales_a_finger():
    go, hp = _poses(j1=[[0, 0, np.pi / 2]], j4=[[0, 0, np.pi / 2]])
    ch = _channels(go, hp, influence={"index": 0.5})
    c, s = math.cos(np.pi / 8), math.sin(np.pi / 8)
    assert np.allclose(ch.quats["index1"][0], [c, 0, s, 0])  # half of 90 degrees
    assert np.allclose(ch.quats["middle1"][0], [S, 0, S, 0])  # other fingers untouched


def test_retarget_channels_leave_their_inputs_alone():
    go, hp = _poses(T=3, j0=[[0.3, 0.2, 0.1]] * 3, j1=[[0, 0, 1.0]] * 3)
    target, mapping = _target()
    before = {b: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()} for b, d in target.items()}
    tips = np.tile(REST_RIGHT[[15, 3, 6, 12, 9]] - REST_RIGHT[0], (3, 1, 1))  # roughly where they are
    tips_copy = tips.copy()
    retarget.channels(go, hp, np.zeros((3, 3)), REST_RIGHT, target, mapping, root="KEEP", tips=tips)
    assert np.array_equal(tips, tips_copy)
    assert target.keys() == before.keys()
    for b, d in target.items():
        assert d.keys() == before[b].keys()
        for k, v in d.items():
            assert np.array_equal(v, before[b][k]) if isinstance(v, np.ndarray) else v == before[b][k]


def test_finger_chains_follow_the_joint_tables():
    """retarget.FINGER_CHAINS comes from engine.contract.joints: each finger's three MANO joints from the wrist
    out (a chain of parents), then its MediaPipe fingertip, thumb..pinky."""
    assert tuple(retarget.FINGER_CHAINS) == J.FINGER_NAMES
    for finger, (j1, j2, j3, tip) in retarget.FINGER_CHAINS.items():
        assert [J.MANO_JOINT_NAMES[j] for j in (j1, j2, j3)] == [f"{finger}{k}" for k in (1, 2, 3)]
        assert [int(J.MANO_PARENTS[j]) for j in (j1, j2, j3)] == [0, j1, j2]
        assert J.MEDIAPIPE_NAMES[tip] == f"{finger}_tip"
