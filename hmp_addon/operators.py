"""Operators: Capture (modal, or blocking when executed from a script), Cancel, Import Result,
Check Engine. Engines still running when Blender quits or loads another file are terminated."""


import bpy
from bpy.app.handlers import persistent
from bpy_extras.io_utils import ImportHelper

from . import importer, jobs, runner
from .engine_link import choices as C
from .modal_job import ModalJob
from .settings import settings


def _finish_report(op, context, job):
    """Report a finished job; returns the operator's return set."""
    state = context.window_manager.hmp_state
    state.running = False
    state.cancel_requested = False
    state.progress = 0.0
    if job.state == "done":
        names = ", ".join(f"{item['action'].name} ({item['keys']} frames)" for item in job.imported)
        warn = "".join(f"; {w}" for w in job.warnings)
        notes = "".join(f"; {n}" for n in getattr(job, "notes", ()))
        seconds = getattr(getattr(job, "run", None), "seconds", None)  # the engine's done event
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        state.last_info, state.last_error = f"Captured {names}{took}{notes}{warn} (result: {job.result_path})", ""
        op.report({"WARNING"} if warn else {"INFO"}, state.last_info)
        return {"FINISHED"}
    if job.state == "cancelled":
        state.last_info, state.last_error = "Capture cancelled: nothing changed", ""
        op.report({"WARNING"}, state.last_info)
        return {"CANCELLED"}
    state.last_error, state.last_info = f"Capture failed: {job.error}", ""
    op.report({"ERROR"}, state.last_error)
    return {"CANCELLED"}


class HMP_OT_capture(ModalJob, bpy.types.Operator):
    """Run the engine on the video and bake the captured hands (Esc cancels)"""

    bl_idname = "hmp.capture"
    bl_label = "Capture"
    bl_options = {"REGISTER", "UNDO"}  # the whole import is one undo step

    job_current = staticmethod(jobs.current)

    @classmethod
    def poll(cls, context):
        job = jobs.current()
        return job is None or job.finished

    def job_start(self, context):
        state = context.window_manager.hmp_state
        state.last_error = state.last_info = ""
        state.cancel_requested = False
        try:
            job = jobs.start(jobs.CaptureParams.from_scene(context))
        except runner.EngineSetupError as exc:
            state.last_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return None
        self.job_sync(context, job)
        return job

    def job_sync(self, context, job):
        state = context.window_manager.hmp_state
        state.running = not job.finished
        state.progress = job.fraction
        state.message = job.message

    def job_cancel_requested(self, context):
        return context.window_manager.hmp_state.cancel_requested

    def job_escape(self, context, job):
        job.cancel()

    def job_report(self, context, job):
        return _finish_report(self, context, job)

    def execute(self, context):
        """Blocking path (scripts, EXEC_DEFAULT): same job, polled in a loop."""
        job = self.job_start(context)
        if job is None:
            return {"CANCELLED"}
        jobs.run_to_end(job, context)
        return _finish_report(self, context, job)

    def cancel(self, context):  # Blender tears the operator down (window closed, file loaded)
        jobs.cancel_current()
        self.job_end(context, None)


class HMP_OT_cancel_capture(bpy.types.Operator):
    """Stop the engine; the scene is left as it was"""

    bl_idname = "hmp.cancel_capture"
    bl_label = "Cancel Capture"

    @classmethod
    def poll(cls, context):
        job = jobs.current()
        return job is not None and not job.finished

    def execute(self, context):
        context.window_manager.hmp_state.cancel_requested = True
        jobs.cancel_current()  # the engine stops now; the modal operator sees it on its next event
        return {"FINISHED"}


class HMP_OT_import_result(bpy.types.Operator, ImportHelper):
    """Bake a result file made earlier (by the add-on or the engine's command line)"""

    bl_idname = "hmp.import_result"
    bl_label = "Import Result"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})
    hands: bpy.props.EnumProperty(
        name="Hands",
        items=[("ALL", "All", "Every hand in the result")] + [(k, k.capitalize(), "") for k in C.SIDES],
        default="ALL",
    )

    def execute(self, context):
        state = context.window_manager.hmp_state
        s = context.scene.hmp_capture
        try:
            res = importer.load(self.filepath)
            sides = list(res.hands) if self.hands == "ALL" else [self.hands]
            targets = {}
            if s.target == "EXISTING":
                for side in sides:
                    obj = getattr(s, f"armature_{side}")
                    if obj is None:
                        raise importer.ImportProblem(f"choose the {side} armature to bake onto")
                    targets[side] = obj
            imported = importer.apply_result(context, res, sides=sides, targets=targets, make_camera=s.make_camera)
        except importer.ImportProblem as exc:
            state.last_error, state.last_info = f"Import failed: {exc}", ""
            self.report({"ERROR"}, state.last_error)
            return {"CANCELLED"}
        state.last_info = "Imported " + ", ".join(f"{i['action'].name} ({i['keys']} frames)" for i in imported)
        state.last_error = ""
        self.report({"INFO"}, state.last_info)
        return {"FINISHED"}


class HMP_OT_check_engine(bpy.types.Operator):
    """Start the engine once (python -m engine --version) to check that it is set up"""

    bl_idname = "hmp.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        state = context.window_manager.hmp_state
        try:
            version = runner.engine_version(settings(context).engine_python)
        except runner.EngineSetupError as exc:
            state.engine_ok, state.engine_status = False, str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        state.engine_ok, state.engine_status = True, f"Engine OK: {version}"
        self.report({"INFO"}, state.engine_status)
        return {"FINISHED"}


@persistent
def _on_load_pre(*_args):
    """A new file is loading: stop any capture (its scene is going away)."""
    jobs.cancel_current()
    runner.stop_all()


classes = (HMP_OT_capture, HMP_OT_cancel_capture, HMP_OT_import_result, HMP_OT_check_engine)


def register():
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    jobs.cancel_current()
    jobs.forget()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
