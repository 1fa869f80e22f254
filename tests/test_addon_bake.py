"""Importing/baking real result files (engine.contract.result.write) into a real bpy scene (5.2.3, and 4.2.23
under Python 3.11: scripts/test.sh runs the add-on's tests under both)."""

import bpy
import numpy as np
import pytest
from addon_support import bone_heads_world, datablock_counts, make_result

import hmp_addon
from engine.contract import joints as J
from hmp_addon import bake, coords

TOL = 1e-4  # metres: float32 keys + Blender's float32 pose evaluation


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    yield bpy.context.scene
    hmp_addon.unregister()


def _import(path, **kw):
    return bpy.ops.hmp.import_result(filepath=str(path), **kw)


def _check_positions(scene, rig, arrays, side, clip_fps=30.0):
    """Bones' world heads == the result's joints (camera frame -> Blender) at every valid frame."""
    ratio = scene.render.fps / scene.render.fps_base / clip_fps
    joints16 = arrays[f"{side}/joints"][:, J.MANO_TO_MEDIAPIPE]  # (T, 16, 3)
    worst = 0.0
    for t in np.nonzero(arrays[f"{side}/valid"])[0]:
        heads = bone_heads_world(scene, rig, scene.frame_start + t * ratio)
        worst = max(worst, np.abs(heads - coords.points_to_blender(joints16[t])).max())
    assert worst < TOL, worst


def test_import_builds_rig_and_action_matching_joints(scene, tmp_path):
    arrays = make_result(tmp_path / "r.npz", T=24, sides=("right", "left"), invalid=(5, 6))
    assert _import(tmp_path / "r.npz") == {"FINISHED"}
    for side in ("right", "left"):
        rig = bpy.data.objects[f"my clip_{side}_hand"]
        assert rig.type == "ARMATURE" and [b.name for b in rig.data.bones] == list(J.MANO_JOINT_NAMES)
        action = rig.animation_data.action
        assert action.name == f"my clip_{side}_hand"
        keys = bake.count_keys(action)
        assert len(keys) == 16 * 4 + 3  # quaternion per bone + root location
        assert set(keys.values()) == {22}  # 24 frames, 2 invalid: no keys there
        _check_positions(scene, rig, arrays, side)
        mesh = bpy.data.objects[f"my clip_{side}_hand_mesh"]
        assert mesh.parent == rig and mesh.modifiers["Armature"].object == rig
        assert sorted(g.name for g in mesh.vertex_groups) == sorted(J.MANO_JOINT_NAMES)
    cam = bpy.data.objects["my clip_camera"]
    assert scene.camera == cam and scene.render.resolution_x == 1280
    assert cam.data.lens == pytest.approx(900.0 * 36.0 / 1280)
    assert scene.frame_end >= scene.frame_start + 23 * 24 / 30 - 1


def test_actions_get_their_id_type_without_console_warnings(scene, tmp_path, capfd):
    """Blender 4.2's Actions have an ID type (``id_root``), 5.2's layered ones have it per slot: the
    bake sets whichever exists. It used to ask 4.2 with hasattr, which reads a new Action's id_root
    and printed "current value '0' matches no enum" on the console at every bake."""
    make_result(tmp_path / "r.npz", T=6, mesh=False)
    capfd.readouterr()
    assert _import(tmp_path / "r.npz") == {"FINISHED"}
    action = bpy.data.objects["my clip_right_hand"].animation_data.action
    if "id_root" in action.bl_rna.properties:  # legacy Actions: 4.2, 4.3
        assert action.id_root == "OBJECT"
    else:  # layered Actions: 4.4 on
        assert [slot.target_id_type for slot in action.slots] == ["OBJECT"]
    assert "matches no enum" not in "".join(capfd.readouterr())  # Blender logs it on stdout


def test_frames_map_to_scene_fps_and_start(scene, tmp_path):
    make_result(tmp_path / "r.npz", T=10, first_frame=100, mesh=False)
    scene.render.fps, scene.render.fps_base = 60, 1.0
    scene.frame_start = 11
    _import(tmp_path / "r.npz")
    action = bpy.data.actions["my clip_right_hand"]
    fc = next(iter(bake.iter_fcurves(action)))
    xs = [k.co[0] for k in fc.keyframe_points]
    assert xs == pytest.approx([11 + 2 * i for i in range(10)])  # 30 fps clip on a 60 fps scene
    assert all(k.interpolation == "LINEAR" for k in fc.keyframe_points)


def test_rerun_replaces_action_and_rig(scene, tmp_path):
    make_result(tmp_path / "a.npz", T=12, seed=1)
    _import(tmp_path / "a.npz")
    before = datablock_counts(bpy)
    arrays = make_result(tmp_path / "b.npz", T=15, seed=2)  # same clip name, new capture
    _import(tmp_path / "b.npz")
    assert datablock_counts(bpy) == before
    assert not any(a.name.endswith(".001") for a in bpy.data.actions)
    rig = bpy.data.objects["my clip_right_hand"]
    assert set(bake.count_keys(rig.animation_data.action).values()) == {15}
    _check_positions(scene, rig, arrays, "right")


def test_bake_onto_existing_armature(scene, tmp_path):
    make_result(tmp_path / "a.npz", T=8, seed=3, mesh=False)
    _import(tmp_path / "a.npz")
    rig = bpy.data.objects["my clip_right_hand"]
    rig.name = "MyHand"
    settings = scene.hmp_capture
    settings.target, settings.armature_right = "EXISTING", rig
    arrays = make_result(tmp_path / "b.npz", T=9, seed=4, mesh=False)
    before = datablock_counts(bpy)
    _import(tmp_path / "b.npz")
    after = datablock_counts(bpy)
    assert after["objects"] == before["objects"] and after["armatures"] == before["armatures"]
    assert rig.animation_data.action.name == "my clip_right_hand"
    _check_positions(scene, rig, arrays, "right")


def _make_bad(tmp_path, name, mutate):
    arrays = make_result(tmp_path / "good.npz", T=6, mesh=False)
    mutate(arrays)
    path = tmp_path / name
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


@pytest.mark.parametrize("name,mutate,message", [
    ("newer.npz", lambda a: a.__setitem__("schema_version", np.array(99)), "newer than this reader"),
    ("missing.npz", lambda a: a.pop("right/hand_pose"), "missing the field 'right/hand_pose'"),
    ("nan.npz", lambda a: a["right/transl"].__setitem__((2, 0), np.nan), "NaN"),
    ("shape.npz", lambda a: a.__setitem__("right/joints", np.zeros((6, 20, 3))), "right/joints"),
])
def test_malformed_result_reports_and_changes_nothing(scene, tmp_path, name, mutate, message):
    path = _make_bad(tmp_path, name, mutate)
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match=message):
        _import(path)
    assert datablock_counts(bpy) == before
    assert message in bpy.context.window_manager.hmp_state.last_error


def test_not_a_result_file(scene, tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip")
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match="Import failed: .*result file"):  # message wording is engine.contract.result's
        _import(path)
    with pytest.raises(RuntimeError, match="not found"):
        _import(tmp_path / "absent.npz")
    assert datablock_counts(bpy) == before


def test_existing_target_without_mano_bones_is_refused(scene, tmp_path):
    make_result(tmp_path / "a.npz", T=6, mesh=False)
    arm = bpy.data.objects.new("Plain", bpy.data.armatures.new("Plain"))
    scene.collection.objects.link(arm)
    scene.hmp_capture.target, scene.hmp_capture.armature_right = "EXISTING", arm
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match="lacks the MANO bones"):
        _import(tmp_path / "a.npz")
    assert datablock_counts(bpy) == before and arm.animation_data is None


def test_last_finger_bones_end_at_the_fingertips(tmp_path):
    """Issue 12.13: the built rig's last bone per finger was its parent's direction continued (a tail
    5 mm from the fingertip keypoint on real captures); it now ends at the fingertip, at every frame."""
    import hmp_addon
    from hmp_addon import coords

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        scene = bpy.context.scene
        scene.render.fps = 30
        arrays = make_result(tmp_path / "r.npz", T=12, sides=("right", "left"), mesh=False, invalid=(4,))
        assert bpy.ops.hmp.import_result(filepath=str(tmp_path / "r.npz")) == {"FINISHED"}
        worst = 0.0
        for side in ("right", "left"):
            rig = bpy.data.objects[f"my clip_{side}_hand"]
            mw = np.array(rig.matrix_world)
            for t in (0, 3, 5, 11):
                scene.frame_set(1 + t)
                tails = np.array([list(rig.pose.bones[J.MANO_JOINT_NAMES[p]].tail) for p in J.FINGERTIP_PARENT_MANO])
                tails = tails @ mw[:3, :3].T + mw[:3, 3]
                want = coords.points_to_blender(arrays[f"{side}/joints"][t, J.FINGERTIPS_MEDIAPIPE])
                worst = max(worst, np.abs(tails - want).max())
        assert worst < 1e-4, worst  # metres
    finally:
        hmp_addon.unregister()
