"""The hand rig: an armature with MANO joint names (plus the skinned hand mesh when the result
carries one), built from a result hand's rest skeleton, and a camera matching the clip."""

import bpy
import numpy as np

from .coords import CAMERA_EULER, camera_settings, matrix_array, points_to_blender
from .engine_link import joints as J
from .poses import CHILD, source_globals
from .rotations import inverse, rotate

BONE_NAMES = J.MANO_JOINT_NAMES  # bone names on our rigs: the MANO joint names, MANO order
RIG_TAG = "hmp_side"  # custom property on rigs we build: "right" / "left"
TIP_EXTEND = 0.8  # last phalanx length / the previous one's, when the result gives no fingertips


def rig_name(clip, side):
    return f"{clip}_{side}_hand"


def rest_fingertips(hand):
    """(5, 3) the fingertips at rest (model frame, thumb..pinky as ``J.FINGERTIP_PARENT_MANO``), or
    None. A fingertip keypoint moves with its last phalanx: its offset in that bone's frame, averaged
    over the valid frames, added to the bone's rest joint."""
    valid = np.asarray(hand["valid"], bool)
    if "joints" not in hand or not valid.any():
        return None
    G = source_globals(hand["global_orient"][valid], hand["hand_pose"][valid])  # (T, 16, 3, 3) camera frame
    joints = np.asarray(hand["joints"], np.float64)[valid]  # (T, 21, 3)
    parents = J.FINGERTIP_PARENT_MANO
    offsets = joints[:, J.FINGERTIPS_MEDIAPIPE] - joints[:, J.MANO_TO_MEDIAPIPE[parents]]  # (T, 5, 3)
    local = rotate(inverse(G[:, parents]), offsets).mean(0)  # (5, 3) G_p^T offset
    length = np.linalg.norm(local, axis=1)
    if not np.all((length > 1e-3) & (length < 0.06)):  # not a fingertip: keep the extrapolated tails
        return None
    return np.asarray(hand["rest_joints"], np.float64)[parents] + local


def _bone_tails(heads, tips=None):
    """Tail of each bone (16, 3) from the heads (16, 3): towards the only child; the wrist points at
    middle1; a fingertip bone ends at its fingertip (``tips`` (5, 3), thumb..pinky) or, without
    them, continues its parent's direction."""
    tails = np.empty_like(heads)
    for j in range(J.NUM_MANO_JOINTS):
        if j == 0:
            tails[j] = heads[J.MANO_JOINT_NAMES.index("middle1")]
        elif CHILD[j] is not None:
            tails[j] = heads[CHILD[j]]
        elif tips is not None:
            tails[j] = tips[list(J.FINGERTIP_PARENT_MANO).index(j)]
        else:
            parent = J.MANO_PARENTS[j]
            tails[j] = heads[j] + TIP_EXTEND * (heads[j] - heads[parent])
    return tails


def _edit_armature(context, obj):
    """Enter edit mode on obj (made active); returns the previous active object to restore."""
    view_layer = context.view_layer
    previous = view_layer.objects.active
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    return previous


def build_armature_data(context, name, rest_joints, collection, rest_tips=None):
    """New armature data + object with 16 MANO bones at the rest joints (model frame, metres); the
    last bone of each finger ends at its fingertip when ``rest_tips`` (5, 3) are given."""
    heads = points_to_blender(rest_joints)  # (16, 3)
    tails = _bone_tails(heads, None if rest_tips is None else points_to_blender(rest_tips))
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    collection.objects.link(obj)
    previous = _edit_armature(context, obj)
    try:
        bones = []
        for j, bone_name in enumerate(BONE_NAMES):
            eb = arm.edit_bones.new(bone_name)
            eb.head = heads[j]
            eb.tail = tails[j]
            eb.roll = 0.0
            bones.append(eb)
        for j, parent in enumerate(J.MANO_PARENTS):
            if parent >= 0:
                bones[j].parent = bones[parent]
                bones[j].use_connect = False  # heads are where MANO puts them, not at parent tails
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous
    arm.display_type = "OCTAHEDRAL"
    obj.show_in_front = True
    return obj


def build_hand_mesh(name, hand, rig, collection):
    """Skinned mesh object of the hand model's rest vertices, parented to the rig with an armature
    modifier; vertex groups named after the bones, weights from the result's skin_weights."""
    verts = points_to_blender(hand["rest_vertices"])
    faces = np.asarray(hand["faces"], dtype=np.int64)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts.tolist(), [], faces.tolist())
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    weights = np.asarray(hand["skin_weights"], dtype=np.float64)  # (V, 16)
    for j, bone_name in enumerate(BONE_NAMES):
        group = obj.vertex_groups.new(name=bone_name)
        for v in np.nonzero(weights[:, j] > 1e-6)[0]:
            group.add([int(v)], float(weights[v, j]), "REPLACE")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = rig
    obj.parent = rig
    return obj


def ensure_hand_rig(context, clip, side, hand, collection=None):
    """Build (or rebuild in place, on a re-run) the rig for one hand. Returns the armature object.

    A re-run on the same clip reuses the object called ``{clip}_{side}_hand`` if it is one of our
    rigs: its armature data and mesh are replaced by fresh ones for the new rest skeleton.
    """
    collection = collection or context.scene.collection
    name = rig_name(clip, side)
    old = bpy.data.objects.get(name)
    fresh = build_armature_data(context, name + "_new", hand["rest_joints"], collection, rest_fingertips(hand))
    if old is not None and old.type == "ARMATURE" and old.get(RIG_TAG) == side:
        old_data = old.data
        for child in list(old.children):
            if child.type == "MESH" and child.get(RIG_TAG) == side:
                mesh = child.data
                bpy.data.objects.remove(child)
                if mesh.users == 0:
                    bpy.data.meshes.remove(mesh)
        new_data = fresh.data
        bpy.data.objects.remove(fresh)
        old.data = new_data
        if old_data.users == 0:
            bpy.data.armatures.remove(old_data)
        rig = old
        rig.matrix_world.identity()
    else:
        rig = fresh
        rig.name = name
    rig.data.name = name
    rig[RIG_TAG] = side
    if hand.has_mesh:
        mesh_obj = build_hand_mesh(name + "_mesh", hand, rig, collection)
        mesh_obj[RIG_TAG] = side
    return rig


def rest_frames(rig, bone_names=BONE_NAMES):
    """(16, 3, 3) rest orientation of each named bone in armature space (bone.matrix_local)."""
    out = np.empty((len(bone_names), 3, 3))
    for j, name in enumerate(bone_names):
        out[j] = matrix_array(rig.data.bones[name].matrix_local)
    return out


def check_rig(obj):
    """Problems that stop a bake onto ``obj``: a message, or None when it is usable."""
    try:
        obj.name
    except ReferenceError:
        return "the target armature was deleted"
    if obj.type != "ARMATURE":
        return f"'{obj.name}' is not an armature"
    missing = [n for n in BONE_NAMES if n not in obj.data.bones]
    if missing:
        return (f"armature '{obj.name}' lacks the MANO bones {', '.join(missing[:4])}"
                f"{'...' if len(missing) > 4 else ''} (use a rig made by this add-on, or 'New hand rig')")
    return None


def ensure_camera(context, clip, K, image_size, collection=None):
    """A camera at the origin looking along +Y matching K and the image size (created or updated);
    becomes the scene camera only when the scene has none. Returns the camera object."""
    collection = collection or context.scene.collection
    name = f"{clip}_camera"
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "CAMERA":
        cam = bpy.data.cameras.new(name)
        obj = bpy.data.objects.new(name, cam)
        collection.objects.link(obj)
    settings = camera_settings(K, image_size)
    cam = obj.data
    cam.lens = settings["lens"]
    cam.sensor_width = settings["sensor_width"]
    cam.sensor_fit = settings["sensor_fit"]
    cam.shift_x = settings["shift_x"]
    cam.shift_y = settings["shift_y"]
    cam.clip_start = 0.01
    obj.location = (0.0, 0.0, 0.0)
    obj.rotation_mode = "XYZ"
    obj.rotation_euler = CAMERA_EULER
    scene = context.scene
    if scene.camera is None:
        scene.camera = obj
        scene.render.resolution_x, scene.render.resolution_y = settings["resolution"]
        scene.render.resolution_percentage = 100
    return obj
