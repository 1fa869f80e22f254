"""Retargeting a captured hand onto other armatures in real bpy: Mixamo-style, Rigify, WebXR hand."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_support import make_result

import hmp_addon
from engine.contract import joints as J
from engine.contract import result as R
from hmp_addon import bonemaps, coords, retarget, rotations

ROOT = Path(__file__).resolve().parents[1]
WEBXR = ROOT / "engine" / "assets" / "hand" / "webxr"


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    bpy.context.scene.render.fps = 30  # the clips' rate: result frame t is scene frame 1 + t
    yield bpy.context.scene
    hmp_addon.unregister()


def result(tmp_path, T=12):
    make_result(tmp_path / "r.npz", T=T, mesh=False)
    return R.read(tmp_path / "r.npz")


def mixamo_armature(res, side="right", scale=1.3, name="Character"):
    """A Mixamo-named armature shaped like the captured rest hand, larger, with its own bone rolls,
    under a forearm bone, at an offset location."""
    rest = coords.points_to_blender(res.hands[side]["rest_joints"]) * scale
    tips = rest[[15, 3, 6, 12, 9]] + (rest[[15, 3, 6, 12, 9]] - rest[[14, 2, 5, 11, 8]]) * 0.8
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = (0.4, -0.2, 1.1)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    s = side.capitalize()
    fore = arm.edit_bones.new(f"mixamorig:{s}ForeArm")
    fore.head, fore.tail = rest[0] - np.array([0, 0, 0.25]), rest[0]
    names = bonemaps.preset_map("MIXAMO", side)
    bones = {}
    for j in range(16):
        b = arm.edit_bones.new(names[J.MANO_JOINT_NAMES[j]])
        b.head = rest[j]
        kids = [k for k in range(16) if J.MANO_PARENTS[k] == j]
        b.tail = rest[kids[0]] if j and kids else (tips[[15, 3, 6, 12, 9].index(j)] if j else rest[4])
        b.roll = 0.3 * j
        b.parent = bones[J.MANO_PARENTS[j]] if j else fore
        b.use_connect = False
        bones[j] = b
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def joint_heads(obj, mapping, frame):
    bpy.context.scene.frame_set(frame)
    mw = np.array(obj.matrix_world)
    out = {}
    for j, name in enumerate(J.MANO_JOINT_NAMES):
        if name in mapping:
            h = np.array(obj.pose.bones[mapping[name]].head)
            out[j] = mw[:3, :3] @ h + mw[:3, 3]
    return out


def follow_error(res, obj, mapping, side="right", align=False):
    """Mean distance (fraction of the hand's size) between the target's joints and the captured
    ones, relative to the wrist, after scaling to the target's size; worst over frames. align:
    compare the hand's shape only (best rotation first), for a wrist kept where it was."""
    hand = res.hands[side]
    joints16 = coords.points_to_blender(hand["joints"][:, J.MANO_TO_MEDIAPIPE])  # (T,16,3) world
    worst = 0.0
    for t in range(res.num_frames):
        heads = joint_heads(obj, mapping, bpy.context.scene.frame_start + t)
        js = [j for j in heads if j]
        tgt = np.array([heads[j] - heads[0] for j in js])
        src = np.array([joints16[t, j] - joints16[t, 0] for j in js])
        size_t = np.linalg.norm(tgt, axis=1).mean()
        size_s = np.linalg.norm(src, axis=1).mean()
        tgt, src = tgt / size_t, src / size_s
        if align:
            tgt = tgt @ rotations.kabsch(tgt, src).T
        err = np.linalg.norm(tgt - src, axis=1).mean()
        worst = max(worst, err)
    return worst


FINGERS5 = ("thumb", "index", "middle", "ring", "pinky")


def _scheme(side):
    """Bone names of common character rigs, both hands, with their expected map for ``side``:
    {rig: (all bone names, {joint: bone})}."""
    S, s, c = side.capitalize(), side[0], side[0].upper()
    out = {}

    def add(rig, names, wrist, finger_bone, extra=()):
        expected = {"wrist": wrist}
        for f in FINGERS5:
            for k in (1, 2, 3):
                expected[f"{f}{k}"] = finger_bone(f, k)
        out[rig] = (names, expected)

    both = lambda fn: [n for sd in ("right", "left") for n in fn(sd)]  # noqa: E731
    add("mixamo (numbered namespace)", both(lambda sd: [f"mixamorig1:{sd.capitalize()}Hand"] + [
        f"mixamorig1:{sd.capitalize()}Hand{f.capitalize()}{k}" for f in FINGERS5 for k in (1, 2, 3, 4)]),
        f"mixamorig1:{S}Hand", lambda f, k: f"mixamorig1:{S}Hand{f.capitalize()}{k}")
    add("unreal mannequin", both(lambda sd: [f"hand_{sd[0]}", f"lowerarm_{sd[0]}"] + [
        f"{f}_metacarpal_{sd[0]}" for f in FINGERS5[1:]] + [f"{f}_0{k}_{sd[0]}" for f in FINGERS5 for k in (1, 2, 3)]),
        f"hand_{s}", lambda f, k: f"{f}_0{k}_{s}")
    daz = {"thumb": "Thumb", "index": "Index", "middle": "Mid", "ring": "Ring", "pinky": "Pinky"}
    add("daz genesis", both(lambda sd: [f"{sd[0]}Hand", f"{sd[0]}ForearmBend", f"{sd[0]}Carpal1", f"{sd[0]}Carpal2"] + [
        f"{sd[0]}{daz[f]}{k}" for f in FINGERS5 for k in (1, 2, 3)]),
        f"{s}Hand", lambda f, k: f"{s}{daz[f]}{k}")
    add("character creator", both(lambda sd: [f"CC_Base_{sd[0].upper()}_Hand"] + [
        f"CC_Base_{sd[0].upper()}_{daz[f]}{k}" for f in FINGERS5 for k in (1, 2, 3)]),
        f"CC_Base_{c}_Hand", lambda f, k: f"CC_Base_{c}_{daz[f]}{k}")
    vrm = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
    add("vrm", both(lambda sd: [f"J_Bip_{sd[0].upper()}_Hand"] + [
        f"J_Bip_{sd[0].upper()}_{vrm[f]}{k}" for f in FINGERS5 for k in (1, 2, 3)]),
        f"J_Bip_{c}_Hand", lambda f, k: f"J_Bip_{c}_{vrm[f]}{k}")
    add("blender metarig", both(lambda sd: [f"hand.{sd[0].upper()}", f"palm.01.{sd[0].upper()}"] + [
        f"f_{f}.0{k}.{sd[0].upper()}" for f in FINGERS5[1:] for k in (1, 2, 3)] + [
        f"thumb.0{k}.{sd[0].upper()}" for k in (1, 2, 3)]),
        f"hand.{c}", lambda f, k: f"thumb.0{k}.{c}" if f == "thumb" else f"f_{f}.0{k}.{c}")
    return out


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("rig", ["mixamo (numbered namespace)", "unreal mannequin", "daz genesis",
                                 "character creator", "vrm", "blender metarig"])
def test_auto_map_on_common_rig_namings(rig, side):
    names, expected = _scheme(side)[rig]
    assert bonemaps.auto_map(names, side) == expected


def test_joint_tables_are_the_engines():
    # engine/contract/joints.py is the one copy: the add-on's names and parents are read from it
    from hmp_addon import poses, rig

    assert bonemaps.JOINTS == tuple(J.MANO_JOINT_NAMES) and bonemaps.FINGERS == J.FINGER_NAMES
    assert rig.BONE_NAMES == J.MANO_JOINT_NAMES and retarget.JOINTS == bonemaps.JOINTS
    assert poses.PARENTS == tuple(J.MANO_PARENTS.tolist()) and retarget.PARENTS is poses.PARENTS
    webxr = bonemaps.PRESETS["WEBXR"]("right")
    assert set(webxr) == set(J.MANO_JOINT_NAMES) and webxr["pinky3"] == "pinky-finger-phalanx-distal"


def test_mixamo_style_follows_and_maps_automatically(scene, tmp_path):
    res = result(tmp_path)
    obj = mixamo_armature(res)
    mapping = bonemaps.auto_map(obj.data.bones.keys(), "right")
    assert mapping == bonemaps.preset_map("MIXAMO", "right")
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="ROTATION")
    assert not out["unmapped"] and out["scale"] == pytest.approx(1.3, rel=0.02)
    assert follow_error(res, obj, mapping) < 0.03


def wrist_path_error(res, obj, bone, scale, side="right"):
    """Worst distance (fraction of the hand's size) between the target wrist head's displacement
    from frame 1 and the captured wrist's, scaled to the target's size."""
    wrist = coords.points_to_blender(res.hands[side]["joints"][:, 0])  # (T,3) Blender axes, metres
    size = np.linalg.norm(res.hands[side]["rest_joints"][1:] - res.hands[side]["rest_joints"][0], axis=1).mean()
    mw = np.array(obj.matrix_world)
    heads = []
    for t in range(res.num_frames):
        bpy.context.scene.frame_set(bpy.context.scene.frame_start + t)
        heads.append(mw[:3, :3] @ np.array(obj.pose.bones[bone].head))
    moved = np.array(heads) - heads[0]
    return np.linalg.norm(moved - (wrist - wrist[0]) * scale, axis=1).max() / (size * scale)


def wrist_turn_error(res, obj, bone, side="right"):
    """Worst angle (degrees) between the target bone's rotation since frame 1 and the captured
    wrist's (world space)."""
    C = coords.CV_TO_BLENDER
    G = rotations.axis_angle_to_matrix(res.hands[side]["global_orient"])  # (T,3,3) camera frame
    mw = np.array(obj.matrix_world)[:3, :3]
    worst = 0.0
    for t in range(res.num_frames):
        bpy.context.scene.frame_set(bpy.context.scene.frame_start + t)
        m = mw @ np.array(obj.pose.bones[bone].matrix)[:3, :3]
        m = m / np.linalg.norm(m, axis=0)
        if t == 0:
            m0 = m
        turn = m @ m0.T
        want = C @ G[t] @ G[0].T @ C.T
        cos = (np.trace(turn.T @ want) - 1) / 2
        worst = max(worst, np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return worst


def test_mixamo_style_follow_moves_the_wrist(scene, tmp_path):
    res = result(tmp_path)
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    for local_location in (True, False):  # the wrist's location channel in its own frame, or its parent's
        obj.data.bones[mapping["wrist"]].use_local_location = local_location
        out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="FOLLOW")
        assert follow_error(res, obj, mapping) < 0.03
        assert wrist_path_error(res, obj, mapping["wrist"], out["scale"]) < 0.01, local_location
        assert wrist_turn_error(res, obj, mapping["wrist"]) < 0.5


def test_fbx_style_object_transform(scene, tmp_path):
    """As Mixamo/FBX characters import: a rig built in centimetres under an object scaled 0.01 and
    turned 90 degrees about X. The hand follows in world space, and FOLLOW moves the wrist by the
    captured displacement at the character's own size."""
    res = result(tmp_path)
    obj = mixamo_armature(res, scale=130.0)  # armature units: centimetres
    obj.rotation_euler = (np.pi / 2, 0.0, 0.3)
    obj.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()
    mapping = bonemaps.preset_map("MIXAMO", "right")
    for root in ("ROTATION", "FOLLOW"):
        out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root=root)
        assert out["scale"] == pytest.approx(130.0, rel=0.02)  # captured metres -> armature units
        assert follow_error(res, obj, mapping) < 0.03, root
        assert wrist_turn_error(res, obj, mapping["wrist"]) < 0.5, root
        if root == "FOLLOW":
            assert wrist_path_error(res, obj, mapping["wrist"], out["scale"] * 0.01) < 0.01


def test_fingers_under_a_bone_that_does_not_follow_the_hand(scene, tmp_path):
    """An index finger parented to the forearm (not the hand): its head is keyed to follow the wrist."""
    res = result(tmp_path)
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    obj.data.edit_bones[mapping["index1"]].parent = obj.data.edit_bones["mixamorig:RightForeArm"]
    bpy.ops.object.mode_set(mode="OBJECT")
    for root in ("ROTATION", "FOLLOW"):
        out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root=root)
        keyed = {fc.data_path for fc in hmp_addon.bake.iter_fcurves(out["action"])}
        assert f'pose.bones["{mapping["index1"]}"].location' in keyed
        assert follow_error(res, obj, mapping) < 0.03, root


def test_rigify_rig(scene, tmp_path):
    import addon_utils

    addon_utils.enable("rigify", default_set=True, handle_error=None)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o is not meta)
    mapping = bonemaps.auto_map(rig.data.bones.keys(), "right")
    assert mapping == bonemaps.preset_map("RIGIFY", "right"), mapping  # the controls, not DEF/ORG/MCH
    res = result(tmp_path)
    deform = {j: ("DEF-" + b if j != "wrist" else "DEF-hand.R") for j, b in mapping.items()}
    shapes = {}
    for root in ("KEEP", "ROTATION", "FOLLOW"):
        out = retarget.retarget_result(bpy.context, rig, res, "right", mapping, root=root)
        assert not out["unmapped"]
        # the fingers hang off Rigify's palm helpers (not the hand control): solved against the rig's
        # evaluated palm, rotation only: the palm carries their heads, so no location keys
        keyed = {fc.data_path.split('"')[1]: fc.data_path for fc in hmp_addon.bake.iter_fcurves(out["action"])
                 if fc.data_path.endswith("location")}
        assert set(keyed) <= {"hand_ik.R"}, keyed
        # Rigify's own proportions and palm differ from the captured hand: compare the hand's shape
        assert follow_error(res, rig, deform, align=True) < 0.2, root
        shapes[root] = [np.array([h - hs[0] for h in hs.values()]) for hs in
                        (joint_heads(rig, deform, 1 + t) for t in range(res.num_frames))]
        if root != "KEEP":  # the hand turns as captured (orientation, not only shape)
            assert wrist_turn_error(res, rig, "DEF-hand.R") < 0.5, root
        if root == "FOLLOW":
            assert wrist_path_error(res, rig, "DEF-hand.R", out["scale"]) < 0.01
    # moving or turning the wrist must not change the articulation: the same hand shape in every mode
    size = np.linalg.norm(shapes["KEEP"][0], axis=1).mean()
    for root in ("ROTATION", "FOLLOW"):
        for keep, other in zip(shapes["KEEP"], shapes[root]):
            assert np.abs(keep @ rotations.kabsch(keep, other).T - other).max() < 1e-3 * size, root


def test_webxr_hand_flat_bones(scene, tmp_path):
    bpy.ops.import_scene.gltf(filepath=str(WEBXR / "right.glb"))
    obj = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    mapping = bonemaps.auto_map(obj.data.bones.keys(), "right")
    assert len(mapping) == 16 and mapping == bonemaps.preset_map("WEBXR", "right")
    res = result(tmp_path)
    retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="ROTATION")
    assert follow_error(res, obj, mapping) < 0.2


def test_keep_wrist_and_finger_influence(scene, tmp_path):
    res = result(tmp_path)
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    rest = joint_heads(obj, mapping, 1)
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="KEEP",
                                   influence={"index": 0.0})
    bones_keyed = {fc.data_path.split('"')[1] for fc in hmp_addon.bake.iter_fcurves(out["action"])}
    assert mapping["wrist"] not in bones_keyed and mapping["index1"] in bones_keyed
    posed = joint_heads(obj, mapping, 5)
    assert np.allclose(posed[0], rest[0], atol=1e-6)  # the wrist stays
    # index influence 0: the index keeps its rest shape relative to the (unmoved) wrist
    assert np.linalg.norm(posed[3] - rest[3]) < 0.01


def test_preset_round_trip_and_missing_fingers(scene, tmp_path):
    mapping = bonemaps.preset_map("RIGIFY", "left")
    bonemaps.save_preset(tmp_path / "map.json", mapping, side="left")
    assert bonemaps.load_preset(tmp_path / "map.json") == mapping
    (tmp_path / "bad.json").write_text(json.dumps({"format": "hmp-bone-map", "map": {"elbow": "x"}}))
    with pytest.raises(ValueError, match="unknown joints"):
        bonemaps.load_preset(tmp_path / "bad.json")
    res = result(tmp_path)
    obj = mixamo_armature(res)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for n in ("mixamorig:RightHandPinky1", "mixamorig:RightHandPinky2", "mixamorig:RightHandPinky3"):
        obj.data.edit_bones.remove(obj.data.edit_bones[n])
    bpy.ops.object.mode_set(mode="OBJECT")
    mapping = bonemaps.auto_map(obj.data.bones.keys(), "right")
    assert bonemaps.missing(mapping) == ["pinky1", "pinky2", "pinky3"]
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping)
    assert out["unmapped"] == ["pinky1", "pinky2", "pinky3"]


def test_bad_targets_are_refused_without_a_partial_bake(scene, tmp_path):
    res = result(tmp_path)
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    actions = len(bpy.data.actions)
    obj.scale = (1.0, 2.0, 1.0)
    bpy.context.view_layer.update()
    with pytest.raises(retarget.RetargetProblem, match="non-uniform scale"):
        retarget.retarget_result(bpy.context, obj, res, "right", mapping)
    obj.scale = (2.0, 2.0, 2.0)  # uniform is fine
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(retarget.RetargetProblem, match="Edit Mode"):
        retarget.retarget_result(bpy.context, obj, res, "right", mapping)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(retarget.RetargetProblem, match="none of the mapped bones"):
        retarget.retarget_result(bpy.context, obj, res, "right", {"wrist": "nope"})
    assert len(bpy.data.actions) == actions
    obj.pose.bones[mapping["index1"]].lock_rotation = (True, False, False)
    c = obj.pose.bones[mapping["index2"]].constraints.new("COPY_ROTATION")
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping)
    assert any("locks" in w for w in out["warnings"]) and any("constraints" in w for w in out["warnings"])
    # every Wrist choice the panel offers is a placement the retarget knows; nothing else is
    for item in scene.hmp_retarget.bl_rna.properties["root"].enum_items:
        retarget.checked_mapping(obj, res, "right", mapping, item.identifier)
    with pytest.raises(retarget.RetargetProblem, match="unknown root placement 'SIDEWAYS'"):
        retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="SIDEWAYS")


def test_panel_operators_and_bake_options(scene, tmp_path):
    res = result(tmp_path, T=40)
    obj = mixamo_armature(res)
    s = scene.hmp_retarget
    s.result, s.target, s.preset = str(tmp_path / "r.npz"), obj, "AUTO"
    assert bpy.ops.hmp.map_bones() == {"FINISHED"} and len(hmp_addon.retarget_ui.current_map(s)) == 16
    bpy.ops.hmp.save_bone_map(filepath=str(tmp_path / "m.json"))
    s.bone_map.clear()
    assert bpy.ops.hmp.load_bone_map(filepath=str(tmp_path / "m.json")) == {"FINISHED"}
    assert hmp_addon.retarget_ui.current_map(s) == bonemaps.preset_map("MIXAMO", "right")
    assert bpy.ops.hmp.retarget() == {"FINISHED"}
    full = {k: n for k, n in hmp_addon.bake.count_keys(obj.animation_data.action).items()}
    assert set(full.values()) == {40}
    # keyframe reduction keeps the curve within tolerance of the full bake, with fewer keys
    dense = {fc.data_path + str(fc.array_index): [fc.evaluate(f) for f in range(1, 41)]
             for fc in hmp_addon.bake.iter_fcurves(obj.animation_data.action)}
    s.tolerance, s.push_nla = 0.002, True
    assert bpy.ops.hmp.retarget() == {"FINISHED"}
    assert obj.animation_data.action is None and len(obj.animation_data.nla_tracks) == 1
    action = obj.animation_data.nla_tracks[0].strips[0].action
    reduced = {k: n for k, n in hmp_addon.bake.count_keys(action).items()}
    assert sum(reduced.values()) < 0.8 * sum(full.values())
    worst = max(abs(fc.evaluate(f) - dense[fc.data_path + str(fc.array_index)][f - 1])
                for fc in hmp_addon.bake.iter_fcurves(action) for f in range(1, 41))
    assert worst <= 0.002 + 1e-6
    s.target = None
    with pytest.raises(RuntimeError, match="Choose the armature"):  # reported, not a traceback in the UI
        bpy.ops.hmp.map_bones()


def test_bake_into_the_current_action_keeps_the_rest_of_it(scene, tmp_path):
    res = result(tmp_path, T=12)  # scene frames 1..12
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    fore, index1 = obj.pose.bones["mixamorig:RightForeArm"], obj.pose.bones[mapping["index1"]]
    fore.rotation_mode = index1.rotation_mode = "QUATERNION"
    for f, angle in ((1, 0.0), (50, 0.4), (100, 0.8)):  # the character's own animation
        fore.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0, 0)
        fore.keyframe_insert("rotation_quaternion", frame=f)
        index1.rotation_quaternion = (np.cos(angle / 4), 0, 0, np.sin(angle / 4))
        index1.keyframe_insert("rotation_quaternion", frame=f)
    action = obj.animation_data.action
    slot = getattr(obj.animation_data, "action_slot", None)
    fore_before = [fc for fc in hmp_addon.bake.iter_fcurves(action) if "ForeArm" in fc.data_path]
    fore_before = [[tuple(k.co) for k in fc.keyframe_points] for fc in fore_before]
    s = scene.hmp_retarget
    s.result, s.target, s.destination = str(tmp_path / "r.npz"), obj, "CURRENT"
    assert bpy.ops.hmp.map_bones() == {"FINISHED"}
    assert bpy.ops.hmp.retarget() == {"FINISHED"}
    assert obj.animation_data.action == action and len(bpy.data.actions) == 1
    assert getattr(obj.animation_data, "action_slot", None) == slot
    curves = {(fc.data_path, fc.array_index): fc for fc in hmp_addon.bake.iter_fcurves(action)}
    assert [[tuple(k.co) for k in fc.keyframe_points] for (p, _), fc in sorted(curves.items())
            if "ForeArm" in p] == fore_before  # other channels untouched
    w = curves[(f'pose.bones["{mapping["index1"]}"].rotation_quaternion', 0)]
    frames = [k.co[0] for k in w.keyframe_points]
    assert frames == list(range(1, 13)) + [50, 100]  # the take's keys, then the old keys after it
    assert w.keyframe_points[12].interpolation == "BEZIER"  # kept as they were
    assert w.keyframe_points[12].co[1] == pytest.approx(np.cos(0.1), abs=1e-6)
    assert follow_error(res, obj, mapping) < 0.03  # and the take plays as captured
    # an armature that plays nothing gets a new Action, with a warning
    other = mixamo_armature(res, name="Other")
    s.target = other
    assert bpy.ops.hmp.retarget() == {"FINISHED"}
    assert other.animation_data.action is not None and other.animation_data.action != action


@pytest.mark.parametrize("into_current", [False, True])
def test_smoothing_never_reaches_across_a_gap(scene, tmp_path, into_current):
    """Frames 10-19 without a fit: the hand holds one pose before the gap and another after it.
    Smoothed, each run of keys keeps its own pose (the keys either side of a gap are not neighbours)."""
    arrays = make_result(tmp_path / "r.npz", T=30, mesh=False, invalid=range(10, 20))
    for key in ("global_orient", "hand_pose", "transl", "joints"):
        value = arrays[f"right/{key}"]
        value[:10], value[20:] = value[0], value[29]  # constant in each run, different between them
    R.write(tmp_path / "r.npz", arrays)
    res = R.read(tmp_path / "r.npz")
    assert hmp_addon.bake.runs_of(res.hands["right"]["valid"]).tolist() == [0] * 10 + [1] * 10
    obj = mixamo_armature(res)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    if into_current:  # the armature plays an Action already: the take is baked into it
        obj.animation_data_create().action = bpy.data.actions.new("Own")
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, smoothing=3.0, into_current=into_current)
    moved = 0
    for fc in hmp_addon.bake.iter_fcurves(out["action"]):
        co = np.array([tuple(k.co) for k in fc.keyframe_points])
        before, after = co[co[:, 0] <= 10, 1], co[co[:, 0] >= 21, 1]  # scene frame = 1 + result frame
        assert len(before) == len(after) == 10, fc.data_path
        assert np.ptp(before) < 1e-5 and np.ptp(after) < 1e-5, (fc.data_path, fc.array_index, before, after)
        moved += abs(before[0] - after[0]) > 1e-3
    assert moved > 20  # the two poses differ in most channels


@pytest.mark.parametrize("fmt", ["FBX", "GLTF", "BVH"])
def test_baked_hand_round_trips_through_exporters(scene, tmp_path, fmt):
    make_result(tmp_path / "r.npz", T=10, mesh=True)
    assert bpy.ops.hmp.import_result(filepath=str(tmp_path / "r.npz")) == {"FINISHED"}
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    scene.frame_set(8)
    before = {b.name: np.array(rig.matrix_world @ b.head) for b in rig.pose.bones}
    path = tmp_path / {"FBX": "hand.fbx", "GLTF": "hand.glb", "BVH": "hand.bvh"}[fmt]
    if fmt == "FBX":
        bpy.ops.export_scene.fbx(filepath=str(path), bake_anim=True, add_leaf_bones=False,
                                 bake_anim_simplify_factor=0.0)
    elif fmt == "GLTF":
        bpy.ops.export_scene.gltf(filepath=str(path), export_animations=True)
    else:  # BVH: the active armature, one skeleton, Blender's axes
        import addon_utils

        addon_utils.enable("io_anim_bvh", default_set=True, handle_error=None)
        bpy.context.view_layer.objects.active = rig
        bpy.ops.export_anim.bvh(filepath=str(path), frame_start=1, frame_end=10)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30  # the same timeline as the export (glTF stores seconds)
    if fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=str(path))
    elif fmt == "GLTF":
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        import addon_utils

        addon_utils.enable("io_anim_bvh", default_set=True, handle_error=None)
        # the exporter writes Blender's axes as they are: import without an axis conversion
        bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y", axis_up="Z", update_scene_fps=False)
    rig2 = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert rig2.animation_data is not None and (rig2.animation_data.action is not None
                                                or len(rig2.animation_data.nla_tracks))
    if rig2.animation_data.action is None:  # glTF puts takes on NLA tracks
        rig2.animation_data.action = rig2.animation_data.nla_tracks[0].strips[0].action
    bpy.context.scene.frame_set(8)
    after = {b.name: np.array(rig2.matrix_world @ b.head) for b in rig2.pose.bones}
    common = [n for n in before if n in after]
    assert len(common) >= 15
    err = max(np.linalg.norm(before[n] - after[n]) for n in common)
    assert err < 2e-3, err  # metres, at a posed frame: the animation survived the round trip


MPFB2 = ROOT / "tests" / "data" / "mpfb2_hand_rigs.json"  # CC0, from makehumancommunity/mpfb2


def mpfb2_armature(rig="default", name="Human"):
    """MPFB2's own rig (its forearm, hand and finger bones as MPFB2 places them on its base mesh, both
    sides, with its rolls and parents), read from the rig JSON shipped with MPFB2."""
    bones = json.loads(MPFB2.read_text())["rigs"][rig]
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for n, b in bones.items():
        eb = arm.edit_bones.new(n)
        eb.head, eb.tail, eb.roll = b["head"], b["tail"], b["roll"]
    for n, b in bones.items():
        if b["parent"]:
            arm.edit_bones[n].parent = arm.edit_bones[b["parent"]]
            arm.edit_bones[n].use_connect = b["use_connect"]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


@pytest.mark.parametrize("rig", ["default", "game_engine"])
def test_mpfb2_rigs_map_automatically_and_follow(scene, tmp_path, rig):
    """Issue 12.9: MPFB2's default names (finger1-1.R thumb .. finger5-3.R pinky, metacarpal1.R..)
    used to map the wrist only, and the retarget baked a turned hand with straight fingers."""
    obj = mpfb2_armature(rig)
    for side in ("right", "left"):
        mapping = bonemaps.auto_map(obj.data.bones.keys(), side)
        assert len(mapping) == 16, (side, mapping)
        if rig == "default":
            assert mapping == bonemaps.preset_map("MPFB", side)
    res = result(tmp_path)
    mapping = bonemaps.auto_map(obj.data.bones.keys(), "right")
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="ROTATION")
    assert not out["unmapped"] and not out["warnings"]
    assert follow_error(res, obj, mapping) < 0.2  # MPFB2's own finger proportions: see the Rigify bound


def test_wrist_only_map_refuses_and_partial_map_warns(scene, tmp_path, capfd):
    obj = mpfb2_armature("default")
    res = result(tmp_path)
    s = scene.hmp_retarget
    s.result, s.target, s.side = str(tmp_path / "r.npz"), obj, "right"
    hmp_addon.retarget_ui.set_map(s, {"wrist": "wrist.R"})  # what the map used to find on this rig
    with pytest.raises(RuntimeError, match="only 0 of 15 finger bones are mapped onto 'Human'"):
        bpy.ops.hmp.retarget()
    assert len(bpy.data.actions) == 0 and obj.animation_data is None  # nothing baked
    with pytest.raises(retarget.RetargetProblem, match="only 5 of 15"):
        retarget.retarget_result(bpy.context, obj, res, "right", {"wrist": "wrist.R", "index1": "finger2-1.R",
                                                                    "index2": "finger2-2.R", "index3": "finger2-3.R",
                                                                    "thumb1": "finger1-1.R", "thumb2": "finger1-2.R"})
    # ring and pinky missing: baked, with a WARNING in the operator's report (not only an INFO note)
    partial = {j: b for j, b in bonemaps.preset_map("MPFB", "right").items() if not j.startswith(("ring", "pinky"))}
    hmp_addon.retarget_ui.set_map(s, partial)
    capfd.readouterr()
    assert bpy.ops.hmp.retarget() == {"FINISHED"}
    printed = capfd.readouterr()
    assert "Warning: not mapped: pinky1, pinky2, pinky3, ring1, ring2, ring3" in printed.out + printed.err


def _heads(rig, frames):
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append([np.array(rig.matrix_world @ b.head) for b in sorted(rig.pose.bones, key=lambda b: b.name)])
    return np.array(out)


@pytest.mark.parametrize("start", [1, 5])
def test_fbx_round_trip_is_exact_with_the_documented_settings(scene, tmp_path, start):
    """Issue 12.12: FBX export baked the whole scene range (1-250) and re-imported one frame late with
    Blender's default import offset. The scene's range is now the take; docs/blender.md gives the
    settings that round-trip exactly (checked here at every frame of the take)."""
    scene.frame_start = start
    make_result(tmp_path / "r.npz", T=20, mesh=False)
    assert bpy.ops.hmp.import_result(filepath=str(tmp_path / "r.npz")) == {"FINISHED"}
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    take = range(start, start + 20)
    if start == 1:  # Blender's default 1-250 becomes the take
        assert (scene.frame_start, scene.frame_end) == (1, 20)
    assert tuple(rig.animation_data.action.frame_range) == (start, start + 19)
    before = _heads(rig, take)
    # 1. one take, the scene's range: export without per-action stacks, import with no offset
    bpy.ops.export_scene.fbx(filepath=str(tmp_path / "scene.fbx"), bake_anim=True, add_leaf_bones=False,
                             bake_anim_simplify_factor=0.0, bake_anim_use_all_actions=False,
                             bake_anim_use_nla_strips=False)
    # 2. Blender's defaults (a stack per Action, starting at zero): import at the take's first frame
    bpy.ops.export_scene.fbx(filepath=str(tmp_path / "actions.fbx"), bake_anim=True, add_leaf_bones=False,
                             bake_anim_simplify_factor=0.0)
    # (a scene whose range the user set keeps it: the scene route then bakes that range)
    routes = [("actions.fbx", float(start))] + ([("scene.fbx", 0.0)] if start == 1 else [])
    for name, offset in routes:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps = 30
        bpy.ops.import_scene.fbx(filepath=str(tmp_path / name), anim_offset=offset)
        rig2 = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        assert tuple(rig2.animation_data.action.frame_range) == (start, start + 19), name
        assert np.abs(_heads(rig2, take) - before).max() < 1e-4, name  # 0.1 mm at every frame


def _angle(R):
    return np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


def test_rotation_from_rest_keeps_a_t_posed_wrist_in_line(scene, tmp_path):
    """Issue 12.10: 'Rotation' keys the wrist as the camera saw it, bending a T-posed character's wrist
    about 90 degrees against its arm. 'Rotation from Rest' matches the first frame to the rest pose
    and turns the wrist from there by the captured hand's own turn."""
    res = result(tmp_path, T=12)
    obj = mixamo_armature(res)
    obj.rotation_euler = (0.0, np.pi / 2, 0.0)  # the arm and hand lie along the world X axis: a T-pose
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
    mapping = bonemaps.preset_map("MIXAMO", "right")
    wrist = obj.pose.bones[mapping["wrist"]]

    def wrist_world(frame):
        scene.frame_set(frame)
        return np.array(obj.matrix_world.to_3x3() @ wrist.matrix.to_3x3())

    rest = np.array(obj.matrix_world.to_3x3() @ obj.data.bones[mapping["wrist"]].matrix_local.to_3x3())
    retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="ROTATION")
    assert _angle(rest.T @ wrist_world(1)) > 45  # the camera's view: far from the character's rest
    retarget.retarget_result(bpy.context, obj, res, "right", mapping, root="REST")
    assert _angle(rest.T @ wrist_world(1)) < 1e-3  # the first frame is the rest pose
    go = res.hands["right"]["global_orient"]
    R = rotations.axis_angle_to_matrix(go)
    for t in (3, 7, 11):  # then it turns as much as the captured hand turned since its first frame
        assert _angle(wrist_world(1).T @ wrist_world(1 + t)) == pytest.approx(_angle(R[0].T @ R[t]), abs=0.05)
    assert follow_error(res, obj, mapping, align=True) < 0.03  # and the hand's shape is the capture's


def fingertip_error(res, obj, mapping, scale, side="right"):
    """Worst over frames of the mean distance between the target's fingertips (each finger's last
    bone's tail) and the captured fingertips scaled to the target (``scale``), both relative to the
    wrist, as a fraction of the captured palm (wrist to the four finger bases)."""
    j21 = coords.points_to_blender(res.hands[side]["joints"])  # (T,21,3)
    bases = [J.MEDIAPIPE_NAMES.index(f"{finger}_mcp") for finger in J.FINGER_NAMES[1:]]  # the four finger bases
    palm = np.mean(np.linalg.norm(j21[0, bases] - j21[0, 0], axis=1))
    worst = 0.0
    for t in range(res.num_frames):
        bpy.context.scene.frame_set(bpy.context.scene.frame_start + t)
        wrist = np.array(obj.pose.bones[mapping["wrist"]].head)
        errs = [np.linalg.norm((np.array(obj.pose.bones[mapping[J.MANO_JOINT_NAMES[last]]].tail) - wrist) / scale
                               - (j21[t, tip] - j21[t, 0])) / palm
                for _, _, last, tip in retarget.FINGER_CHAINS.values()]
        worst = max(worst, float(np.mean(errs)))
    return worst


def test_reach_fingertips_corrects_other_finger_proportions(scene, tmp_path):
    """Issue 12.11: on rigs whose finger lengths relative to the palm differ from the captured hand's
    (MPFB2 here, Rigify alike), copying rotations puts the fingertips a quarter of the palm away from
    where the capture has them; 'Reach Fingertips' bends and swings each finger onto them."""
    res = result(tmp_path)
    obj = mpfb2_armature("default")
    mapping = bonemaps.auto_map(obj.data.bones.keys(), "right")
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping)
    copied = fingertip_error(res, obj, mapping, out["scale"])
    out = retarget.retarget_result(bpy.context, obj, res, "right", mapping, fingertips=True)
    reached = fingertip_error(res, obj, mapping, out["scale"])
    assert copied > 0.2 and reached < 0.05, (copied, reached)
    # a character with the captured proportions: the tips were right already and stay so, joints too
    other = mixamo_armature(res, name="Same")
    mapping = bonemaps.preset_map("MIXAMO", "right")
    out = retarget.retarget_result(bpy.context, other, res, "right", mapping, fingertips=True)
    assert fingertip_error(res, other, mapping, out["scale"]) < 0.01
    assert follow_error(res, other, mapping) < 0.03
