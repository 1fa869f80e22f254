"""Sidebar > Hand Capture > Retarget: bone map (editable list, presets, auto map), options, bake."""

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import bake, bonemaps, importer, retarget
from .engine_link import choices as C
from .properties import BLEND_RELATIVE

FINGERS = bonemaps.FINGERS  # thumb..pinky: one influence slider each


def _is_armature(self, obj):
    return obj.type == "ARMATURE"


class HMP_BoneMapItem(bpy.types.PropertyGroup):
    joint: bpy.props.StringProperty(name="Joint")
    bone: bpy.props.StringProperty(name="Bone", description="Bone of the target armature playing this joint")


class HMP_RetargetSettings(bpy.types.PropertyGroup):
    result: bpy.props.StringProperty(name="Result", description="Capture result (.npz)", subtype="FILE_PATH",
                                     options=BLEND_RELATIVE)
    target: bpy.props.PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature)
    side: bpy.props.EnumProperty(name="Hand", items=[(k, k.capitalize(), "") for k in C.SIDES], default=C.SIDES[0])
    preset: bpy.props.EnumProperty(
        name="Bone Map",
        items=[("AUTO", "Automatic", "Match the armature's bone names"), ("MANO", "MANO Hand Rig", ""),
               ("RIGIFY", "Rigify", "Rigify's finger controls"), ("MIXAMO", "Mixamo", "mixamorig: bones"),
               ("WEBXR", "WebXR Hand", "The WebXR generic hand"),
               ("MPFB", "MakeHuman / MPFB", "MPFB2's default rig: wrist.R, finger1-1.R (thumb) .. finger5-3.R")],
        default="AUTO")
    root: bpy.props.EnumProperty(name="Wrist", items=list(retarget.ROOT_PLACEMENTS), default="ROTATION")
    reach_tips: bpy.props.BoolProperty(
        name="Reach Fingertips", description="After copying the rotations, bend and swing each whole finger so "
        "its tip reaches the captured fingertip scaled to the character's hand (for characters whose finger "
        "proportions differ from the captured hand's)", default=False)
    smoothing: bpy.props.FloatProperty(name="Smoothing", description="Gaussian smoothing in frames (0: off)",
                                       min=0.0, max=5.0, default=0.0)
    tolerance: bpy.props.FloatProperty(
        name="Key Reduction", description="Drop keys whose value the neighbouring keys reproduce within this "
        "tolerance (quaternion units; 0.001 is about 0.1 degree). 0: a key on every frame",
        min=0.0, max=0.05, default=0.0, precision=4)
    destination: bpy.props.EnumProperty(
        name="Bake Into",
        items=[("NEW", "New Action", "A new Action named after the clip, the hand and the armature (a re-run "
                "replaces it)"),
               ("CURRENT", "Current Action", "The Action the armature already plays (its slot): the mapped "
                "bones' keys over the captured frames are replaced, everything else is kept")],
        default="NEW")
    push_nla: bpy.props.BoolProperty(name="Push to NLA", description="Put the baked Action into a new NLA track",
                                     default=False)
    bone_map: bpy.props.CollectionProperty(type=HMP_BoneMapItem)
    bone_map_index: bpy.props.IntProperty()


for _f in FINGERS:
    HMP_RetargetSettings.__annotations__[f"influence_{_f}"] = bpy.props.FloatProperty(
        name=_f.capitalize(), description=f"How much of the captured {_f} motion to apply", min=0.0, max=1.0,
        default=1.0, subtype="FACTOR")


def current_map(settings):
    return {item.joint: item.bone for item in settings.bone_map if item.bone}


def set_map(settings, mapping):
    settings.bone_map.clear()
    for joint in bonemaps.JOINTS:
        item = settings.bone_map.add()
        item.joint, item.bone = joint, mapping.get(joint, "")


class HMP_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        s = context.scene.hmp_retarget
        row = layout.row(align=True)
        row.label(text=item.joint, icon="BONE_DATA" if item.bone else "ERROR")
        if s.target is not None:
            row.prop_search(item, "bone", s.target.data, "bones", text="")
        else:
            row.prop(item, "bone", text="")


class HMP_OT_map_bones(bpy.types.Operator):
    """Fill the bone map from the chosen preset, or automatically from the armature's bone names"""

    bl_idname = "hmp.map_bones"
    bl_label = "Map Bones"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.hmp_retarget
        if s.target is None:
            self.report({"ERROR"}, "Choose the armature to retarget onto first")
            return {"CANCELLED"}
        names = s.target.data.bones.keys()
        mapping = (bonemaps.auto_map(names, s.side) if s.preset == "AUTO"
                   else bonemaps.preset_map(s.preset, s.side, names))
        set_map(s, mapping)
        missing = bonemaps.missing(mapping)
        if missing:
            self.report({"WARNING"}, f"Mapped {len(mapping)} of 16 joints; not found: {', '.join(missing)}")
        else:
            self.report({"INFO"}, "Mapped all 16 joints")
        return {"FINISHED"}


class HMP_OT_save_bone_map(bpy.types.Operator, ExportHelper):
    """Save the bone map as a JSON preset"""

    bl_idname = "hmp.save_bone_map"
    bl_label = "Save Bone Map"
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        s = context.scene.hmp_retarget
        try:
            bonemaps.save_preset(self.filepath, current_map(s), side=s.side)
        except OSError as exc:
            self.report({"ERROR"}, f"Cannot save the bone map: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Bone map saved to {self.filepath}")
        return {"FINISHED"}


class HMP_OT_load_bone_map(bpy.types.Operator, ImportHelper):
    """Load a bone map saved as a JSON preset"""

    bl_idname = "hmp.load_bone_map"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            mapping = bonemaps.load_preset(self.filepath)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        set_map(context.scene.hmp_retarget, mapping)
        return {"FINISHED"}


class HMP_OT_retarget(bpy.types.Operator):
    """Bake the captured hand onto the armature through the bone map"""

    bl_idname = "hmp.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.hmp_retarget
        if not s.result:
            self.report({"ERROR"}, "Choose a capture result (.npz) first")
            return {"CANCELLED"}
        if not len(s.bone_map):
            bpy.ops.hmp.map_bones()
        try:
            res = importer.load(bpy.path.abspath(s.result))
            influence = {f: getattr(s, f"influence_{f}") for f in FINGERS}
            out = retarget.retarget_result(context, s.target, res, s.side, current_map(s), root=s.root,
                                           influence=influence, tolerance=s.tolerance, smoothing=s.smoothing,
                                           into_current=s.destination == "CURRENT", fingertips=s.reach_tips)
        except (importer.ImportProblem, retarget.RetargetProblem) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if s.push_nla:
            bake.push_to_nla(s.target, out["action"])
        for w in out["warnings"]:
            self.report({"WARNING"}, w)
        # what was not mapped is in the warnings above: the report the user sees, not only INFO
        keys = sum(bake.count_keys(out["action"]).values())  # what key reduction (tolerance) left
        self.report({"INFO"}, f"Baked '{out['action'].name}' onto {s.target.name} ({keys} keys in the Action)")
        return {"FINISHED"}


class HMP_PT_retarget(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Hand Capture"
    bl_label = "Retarget onto an armature"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.hmp_retarget
        layout = self.layout
        layout.prop(s, "result")
        layout.prop(s, "target")
        layout.row().prop(s, "side", expand=True)
        row = layout.row(align=True)
        row.prop(s, "preset", text="")
        row.operator("hmp.map_bones", text="Map", icon="BONE_DATA")
        layout.template_list("HMP_UL_bone_map", "", s, "bone_map", s, "bone_map_index", rows=6)
        row = layout.row(align=True)
        row.operator("hmp.load_bone_map", text="Load", icon="FILEBROWSER")
        row.operator("hmp.save_bone_map", text="Save", icon="FILE_TICK")
        layout.prop(s, "root")
        col = layout.column(align=True, heading="Influence")
        for f in FINGERS:
            col.prop(s, f"influence_{f}", slider=True)
        layout.prop(s, "reach_tips")
        layout.prop(s, "smoothing")
        layout.prop(s, "tolerance")
        layout.prop(s, "destination")
        layout.prop(s, "push_nla")
        layout.operator("hmp.retarget", icon="ARMATURE_DATA")


classes = (HMP_BoneMapItem, HMP_RetargetSettings, HMP_UL_bone_map, HMP_OT_map_bones, HMP_OT_save_bone_map,
           HMP_OT_load_bone_map, HMP_OT_retarget, HMP_PT_retarget)


def register():
    bpy.types.Scene.hmp_retarget = bpy.props.PointerProperty(type=HMP_RetargetSettings)


def unregister():
    del bpy.types.Scene.hmp_retarget
