"""Scene settings of the capture panel, and the window manager's (unsaved) run state."""

import bpy

from .engine_link import choices as C  # the option values are the engine's (engine/contract/choices.py)
from .preferences import DEVICE_ITEMS

# file paths a user may give relative to the .blend ("//clip.mp4"); Blender 5 asks properties to say so
BLEND_RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (5, 0, 0) else set()


def _is_armature(self, obj):
    return obj.type == "ARMATURE"


class HMP_CaptureSettings(bpy.types.PropertyGroup):
    video: bpy.props.StringProperty(name="Video", description="Video file of the hands", subtype="FILE_PATH",
                                    options=BLEND_RELATIVE)
    hands: bpy.props.EnumProperty(
        name="Hands",
        items=[(k, *{"right": ("Right", "Capture the right hand"), "left": ("Left", "Capture the left hand"),
                     "both": ("Both", "Capture both hands")}[k]) for k in C.HANDS],
        default=C.DEFAULT_HANDS,
    )
    use_range: bpy.props.BoolProperty(name="Frame Range", description="Capture only part of the video", default=False)
    range_start: bpy.props.IntProperty(name="Start", description="First video frame (0-based)", min=0, default=0)
    range_end: bpy.props.IntProperty(name="End", description="Video frame after the last one captured", min=1, default=100)
    quality: bpy.props.EnumProperty(
        name="Quality",
        items=[(k, *{"draft": ("Draft", "Fast, per-frame fit and a short optimisation"),
                     "balanced": ("Balanced", "The default trade-off"),
                     "best": ("Best", "Slowest, most optimisation")}[k]) for k in C.QUALITIES],
        default=C.DEFAULT_QUALITY,
    )
    device: bpy.props.EnumProperty(
        name="Device", items=[("PREFS", "Default", "The default device from the add-on preferences")] + DEVICE_ITEMS,
        default="PREFS",
    )
    target: bpy.props.EnumProperty(
        name="Target",
        items=[("NEW", "New Hand Rig", "Build a hand rig (armature with MANO joint names) per hand"),
               ("EXISTING", "Existing Armature", "Bake onto an armature with MANO bone names")],
        default="NEW",
    )
    armature_right: bpy.props.PointerProperty(name="Right Armature", type=bpy.types.Object, poll=_is_armature)
    armature_left: bpy.props.PointerProperty(name="Left Armature", type=bpy.types.Object, poll=_is_armature)
    root_motion: bpy.props.EnumProperty(
        name="Hand Turning",
        items=[(k, *{"filtered": ("Filtered", "The hand's global rotation fitted frame by frame, then smoothed "
                                  "by a zero-lag One Euro filter (the default)"),
                     "prior": ("Motion Prior", "The hand's global rotation moves as the motion prior decodes it: "
                               "smooth, but can drift where the hand is hard to see"),
                     "free": ("Per Frame", "The hand's global rotation fitted frame by frame, unfiltered: follows "
                              "fast turns closely, with the most jitter")}[k]) for k in C.ROOT_MOTIONS],
        default=C.DEFAULT_ROOT_MOTION,
    )
    hand_size: bpy.props.FloatProperty(
        name="Hand Size (mm)",
        description=f"The filmed hand's length from the wrist to the middle finger's knuckle, in millimetres "
                    f"({C.HAND_SIZE_MM[0]:g}-{C.HAND_SIZE_MM[1]:g}; 0: the hand model's own size). From one camera a "
                    "hand's size sets its distance: a smaller hand than the model sits too far away",
        min=0.0, max=C.HAND_SIZE_MM[1], soft_min=0.0, default=0.0, precision=0, step=100,
    )
    lens: bpy.props.EnumProperty(
        name="Lens",
        items=[("AUTO", "Automatic", "The camera data of the video's Movie Clip when it was set (Movie Clip "
                "editor > Track > Camera, or a solved camera), else the engine's estimate"),
               ("FOV", "Field of View", "The video camera's horizontal field of view"),
               ("FOCAL", "Focal Length", "The lens's focal length and the camera's sensor width")],
        default="AUTO",
    )
    fov: bpy.props.FloatProperty(name="Field of View", description="Horizontal field of view of the video camera",
                                 min=1.0, max=170.0, default=60.0, precision=1)
    focal_length: bpy.props.FloatProperty(name="Focal Length", description="Lens focal length (mm)", min=0.1,
                                          default=26.0, unit="CAMERA")
    sensor_width: bpy.props.FloatProperty(name="Sensor Width", description="Camera sensor width (mm; 36 for "
                                          "full frame, about 6-9 for phones with their real focal length)",
                                          min=0.1, default=36.0, unit="CAMERA")
    scene_rate: bpy.props.EnumProperty(
        name="Scene Rate",
        items=[("VIDEO", "Video's", "Set the scene's frame rate to the video's, so the preview video (which "
                "Blender plays frame for frame) stays in sync with the keys"),
               ("KEEP", "Keep", "Keep the scene's frame rate: the keys are time-mapped onto it (fractional "
                "frames), the preview video drifts when the rates differ")],
        default="VIDEO",
    )
    make_camera: bpy.props.BoolProperty(
        name="Camera", description="Add a camera matching the video's intrinsics, so the rig lines up with the video",
        default=True,
    )


class HMP_RunState(bpy.types.PropertyGroup):
    running: bpy.props.BoolProperty(default=False)
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: bpy.props.StringProperty(default="")
    last_error: bpy.props.StringProperty(default="")
    last_info: bpy.props.StringProperty(default="")
    engine_status: bpy.props.StringProperty(default="")
    engine_ok: bpy.props.BoolProperty(default=False)
    cancel_requested: bpy.props.BoolProperty(default=False)


classes = (HMP_CaptureSettings, HMP_RunState)


def register():
    bpy.types.Scene.hmp_capture = bpy.props.PointerProperty(type=HMP_CaptureSettings)
    bpy.types.WindowManager.hmp_state = bpy.props.PointerProperty(type=HMP_RunState)


def unregister():
    del bpy.types.WindowManager.hmp_state
    del bpy.types.Scene.hmp_capture
