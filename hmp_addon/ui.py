"""View3D > Sidebar > Hand Capture: the "Capture hands from video" panel, and the status bar."""

import os

import bpy

from . import jobs
from .engine_link import choices as C
from .settings import settings


def draw_progress(layout, state, job):
    """The progress bar (layout.progress on 4.0+, a label before)."""
    text = f"{job.message} ({int(round(100 * job.fraction))}%)"
    if hasattr(layout, "progress"):
        layout.progress(factor=job.fraction, type="BAR", text=text)
    else:
        layout.label(text=text)


class HMP_PT_capture(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Hand Capture"
    bl_label = "Capture hands from video"

    def draw(self, context):
        layout = self.layout
        s = context.scene.hmp_capture
        state = context.window_manager.hmp_state
        job = jobs.current()
        running = job is not None and not job.finished

        col = layout.column()
        col.enabled = not running
        col.prop(s, "video")
        col.row().prop(s, "hands", expand=True)
        row = col.row(heading="Frame Range")
        row.prop(s, "use_range", text="")
        sub = row.row(align=True)
        sub.active = s.use_range
        sub.prop(s, "range_start")
        sub.prop(s, "range_end")
        col.prop(s, "quality")
        col.prop(s, "lens")
        if s.lens == "FOV":
            col.prop(s, "fov")
        elif s.lens == "FOCAL":
            row = col.row(align=True)
            row.prop(s, "focal_length")
            row.prop(s, "sensor_width")
        col.prop(s, "root_motion")
        col.prop(s, "hand_size")
        col.prop(s, "device")
        col.prop(s, "target")
        if s.target == "EXISTING":
            for side in C.sides_of(s.hands):
                col.prop(s, f"armature_{side}")
        col.prop(s, "make_camera")
        col.prop(s, "scene_rate")

        engine_python = settings(context).engine_python
        if not engine_python or not os.path.isfile(engine_python):
            box = layout.box()
            box.label(text="Engine not set up", icon="ERROR")
            box.label(text="Set 'Engine Python' in Preferences > Add-ons > HMP Hand Capture")
        elif state.engine_status:
            layout.label(text=state.engine_status, icon="CHECKMARK" if state.engine_ok else "ERROR")

        if running:
            draw_progress(layout, state, job)
            layout.operator("hmp.cancel_capture", icon="CANCEL", text="Cancel (Esc)")
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("hmp.capture", icon="REC")
            layout.operator("hmp.import_result", icon="IMPORT")
            layout.operator("hmp.load_preview", icon="FILE_MOVIE")
            layout.operator("hmp.check_engine", icon="CHECKMARK")
        if state.last_error:
            box = layout.box()
            for i, line in enumerate(_wrap(state.last_error)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        elif state.last_info:
            layout.label(text=state.last_info, icon="INFO")


def _wrap(text, width=60):
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def draw_status(self, context):
    """Status bar: capture progress while the engine runs."""
    job = jobs.current()
    if job is None or job.finished:
        return
    row = self.layout.row()
    row.label(text="Hand capture:")
    draw_progress(row, context.window_manager.hmp_state, job)


classes = (HMP_PT_capture,)


def register():
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister():
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
