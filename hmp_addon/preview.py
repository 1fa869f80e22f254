"""The engine's overlay video in Blender: as the capture camera's background, aligned with the keys.

``load_preview(context, path, camera=None)`` loads the movie as a Movie Clip starting at the scene
frame where the capture's first frame was baked (``frame_start``) and shows it behind the camera
(or the scene camera); the Movie Clip editor / Image editor can show the same clip.
"""

import os

import bpy

from .properties import BLEND_RELATIVE


def load_preview(context, path, camera=None, frame_start=None):
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"preview video not found: {path}")
    scene = context.scene
    camera = camera or scene.camera
    if camera is None or camera.type != "CAMERA":
        raise ValueError("no camera to show the preview behind: capture with 'Camera' on, or add one")
    clip = bpy.data.movieclips.load(path, check_existing=True)
    clip.frame_start = scene.frame_start if frame_start is None else int(frame_start)
    cam = camera.data
    cam.show_background_images = True
    bg = next((b for b in cam.background_images if b.source == "MOVIE_CLIP" and b.clip == clip), None)
    if bg is None:
        bg = cam.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.clip = clip
    bg.alpha = 0.8
    return clip


class HMP_OT_load_preview(bpy.types.Operator):
    """Show the engine's overlay video behind the capture camera, aligned with the baked frames"""

    bl_idname = "hmp.load_preview"
    bl_label = "Show Preview Video"
    bl_options = {"REGISTER", "UNDO"}
    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options=BLEND_RELATIVE)
    filter_glob: bpy.props.StringProperty(default="*.mp4;*.mov;*.avi;*.mkv", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            clip = load_preview(context, bpy.path.abspath(self.filepath))
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Preview '{clip.name}' behind {context.scene.camera.name} from frame {clip.frame_start}")
        return {"FINISHED"}


classes = (HMP_OT_load_preview,)
