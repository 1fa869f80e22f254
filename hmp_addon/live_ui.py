"""Capture from a camera, its Blender UI: the Start / Stop / Cancel operators (Start is modal: it steps
the ``live.LiveJob`` on a timer), the live panel's settings and state, the panel, and the load_pre
handler that ends a recording when another file loads. The job itself is ``live.py`` (no UI code)."""

import bpy
from bpy.app.handlers import persistent

from . import runner
from .engine_link import choices as C
from .live import cancel_current, current, forget, is_file_source, run_to_end, start
from .modal_job import ModalJob
from .properties import BLEND_RELATIVE

TICK_S = 1.0 / 30.0  # the modal operator's timer: poses are applied at the rate they arrive, up to this


def _report(op, context, job):
    st = context.window_manager.hmp_live_state
    st.running = False
    if job.state == "error":
        st.last_error, st.last_info = f"Camera capture failed: {job.error}", ""
        op.report({"ERROR"}, st.last_error)
        return {"CANCELLED"}
    st.last_error, st.last_info = "", job.info or ""
    op.report({"INFO"} if job.state == "done" else {"WARNING"}, st.last_info)
    return {"FINISHED"} if job.state == "done" else {"CANCELLED"}


class HMP_OT_live_start(ModalJob, bpy.types.Operator):
    """Record a take from the camera while the hand rig follows it live; Stop fits and bakes the take"""

    bl_idname = "hmp.live_start"
    bl_label = "Start"
    bl_options = {"REGISTER", "UNDO"}
    tick_s = TICK_S
    job_current = staticmethod(current)

    @classmethod
    def poll(cls, context):
        job = current()
        return job is None or job.finished

    def job_start(self, context):
        st = context.window_manager.hmp_live_state
        st.last_error = st.last_info = ""
        try:
            job = start(context)
        except (runner.EngineSetupError, OSError) as exc:
            st.last_error = f"Camera capture: {exc}"
            self.report({"ERROR"}, st.last_error)
            return None
        self.job_sync(context, job)
        return job

    def job_sync(self, context, job):
        st = context.window_manager.hmp_live_state
        st.running = not job.finished
        st.message = job.message
        st.progress = job.fraction

    def job_escape(self, context, job):
        job.stop() if job.state == "recording" else job.cancel()

    def job_report(self, context, job):
        return _report(self, context, job)

    def execute(self, context):
        """Scripts: blocks until the take ends (a file's end, or Seconds) and is fitted."""
        s = context.scene.hmp_live
        if s.source.strip() and not is_file_source(s.source) and not s.seconds:
            st = context.window_manager.hmp_live_state
            st.last_error = "Camera capture from a script: set Seconds (a camera never ends by itself)"
            self.report({"ERROR"}, st.last_error)
            return {"CANCELLED"}
        job = self.job_start(context)
        if job is None:
            return {"CANCELLED"}
        run_to_end(job, context)
        return _report(self, context, job)

    def cancel(self, context):
        cancel_current()
        self.job_end(context, None)


class HMP_OT_live_stop(bpy.types.Operator):
    """Stop recording: the take is saved, then captured with the two-stage fit and baked"""

    bl_idname = "hmp.live_stop"
    bl_label = "Stop"

    @classmethod
    def poll(cls, context):
        job = current()
        return job is not None and job.state == "recording"

    def execute(self, context):
        current().stop()
        return {"FINISHED"}


class HMP_OT_live_cancel(bpy.types.Operator):
    """Stop the fit (or the recording, without a fit); the recorded take is kept"""

    bl_idname = "hmp.live_cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        job = current()
        return job is not None and not job.finished

    def execute(self, context):
        current().cancel()
        return {"FINISHED"}


class HMP_LiveSettings(bpy.types.PropertyGroup):
    source: bpy.props.StringProperty(
        name="Camera", default="0",
        description="Camera index (0 is the first webcam), a device such as /dev/video0, a stream URL "
                    "(http://.../video, rtsp://...), or a video file played as a camera")
    hands: bpy.props.EnumProperty(
        name="Hands", items=[(k, k.capitalize(), f"Follow and capture the {k} hand" + ("s" if k == "both" else ""))
                             for k in C.HANDS], default=C.DEFAULT_HANDS)
    folder: bpy.props.StringProperty(
        name="Take Folder", subtype="DIR_PATH", options=BLEND_RELATIVE,
        description="Where takes are saved (empty: hand_capture/ beside the .blend, or the add-on's folder "
                    "while the .blend is unsaved)")
    seconds: bpy.props.FloatProperty(name="Seconds", min=0.0, default=0.0,
                                     description="Stop by itself after this long (0: until Stop)")
    realtime: bpy.props.BoolProperty(name="Real Time", default=True,
                                     description="A video file as the camera plays at its own frame rate")


class HMP_LiveState(bpy.types.PropertyGroup):
    running: bpy.props.BoolProperty(default=False)
    message: bpy.props.StringProperty(default="")
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    last_error: bpy.props.StringProperty(default="")
    last_info: bpy.props.StringProperty(default="")


class HMP_PT_live(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Hand Capture"
    bl_label = "Capture from camera"
    bl_parent_id = "HMP_PT_capture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from .ui import _wrap

        layout = self.layout
        s = context.scene.hmp_live
        st = context.window_manager.hmp_live_state
        job = current()
        active = job is not None and not job.finished
        col = layout.column()
        col.enabled = not active
        col.prop(s, "source")
        if is_file_source(s.source):
            col.prop(s, "realtime")
        col.row().prop(s, "hands", expand=True)
        col.prop(s, "folder")
        col.prop(s, "seconds")
        col.label(text="The fit uses the settings above (quality, lens, target...)", icon="INFO")
        if active and job.state == "recording":
            layout.label(text=job.message, icon="REC")
            row = layout.row()
            row.scale_y = 1.4
            row.operator("hmp.live_stop", icon="SNAP_FACE")
        elif active:
            text = job.message
            if hasattr(layout, "progress"):
                layout.progress(factor=job.fraction, type="BAR", text=text)
            else:
                layout.label(text=text)
            layout.operator("hmp.live_cancel", icon="CANCEL", text="Cancel Fit (the take is kept)")
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("hmp.live_start", icon="OUTLINER_OB_CAMERA")
        if st.last_error:
            box = layout.box()
            for i, line in enumerate(_wrap(st.last_error)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        elif st.last_info:
            for i, line in enumerate(_wrap(st.last_info)):
                layout.label(text=line, icon="INFO" if i == 0 else "BLANK1")


@persistent
def _on_load_pre(*_args):
    """Another file is loading: end the recording (the take is kept), no fit into the file going away."""
    job = current()
    if job is not None and not job.finished:
        job.cancel()
        if job.state == "fitting":
            job.capture.cancel()
    forget()


classes = (HMP_LiveSettings, HMP_LiveState, HMP_OT_live_start, HMP_OT_live_stop, HMP_OT_live_cancel, HMP_PT_live)


def register():
    bpy.types.Scene.hmp_live = bpy.props.PointerProperty(type=HMP_LiveSettings)
    bpy.types.WindowManager.hmp_live_state = bpy.props.PointerProperty(type=HMP_LiveState)
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    cancel_current()
    forget()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    del bpy.types.WindowManager.hmp_live_state
    del bpy.types.Scene.hmp_live
