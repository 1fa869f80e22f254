"""The "Set Up Engine" button: runs engine_setup in the background, shows progress, sets Engine Python."""

import os

import bpy

from . import engine_setup, runner
from .settings import ADDON_ID, set_engine_python, settings

_SETUP = None  # the running / last set-up of this session


def default_venv_dir() -> str:
    """Where Set Up Engine makes the environment by default."""
    try:  # installed as an extension: its user folder survives updates of the extension
        return os.path.join(bpy.utils.extension_path_user(ADDON_ID, path="", create=True), "engine-venv")
    except (ValueError, TypeError, AttributeError):  # a source checkout registered by hand
        return os.path.join(bpy.utils.user_resource("CONFIG"), "hmp_hand_capture", "engine-venv")


def draw_status(layout):
    if _SETUP is None:
        return
    if _SETUP.state == "running":
        text = f"Setting up: step {_SETUP.step + 1} of {len(_SETUP.commands)}"
        if hasattr(layout, "progress"):
            layout.progress(factor=_SETUP.fraction, type="BAR", text=text)
        else:
            layout.label(text=text)
    elif _SETUP.state == "failed":
        layout.label(text=_SETUP.error[:120], icon="ERROR")
    else:
        layout.label(text=f"Engine ready: {_SETUP.python}", icon="CHECKMARK")
    for line in _SETUP.lines[-3:]:
        layout.label(text=line[:100])


class HMP_OT_setup_engine(bpy.types.Operator):
    """Create (or repair) the engine's Python environment with its pinned packages"""

    bl_idname = "hmp.setup_engine"
    bl_label = "Set Up Engine"
    venv_dir: bpy.props.StringProperty(default="", options={"SKIP_SAVE"})
    wheel_dir: bpy.props.StringProperty(default="", options={"SKIP_SAVE", "HIDDEN"},
                                        description="wheel folder (default: the preference)")
    requirements: bpy.props.StringProperty(default="", options={"SKIP_SAVE", "HIDDEN"},
                                           description="requirements file (default: the extension's)")
    wait: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"}, description="block (scripts, tests)")

    _timer = None

    def _options(self, context):
        """(wheel folder or None, base Python or None, torch variant) from this call and the preferences."""
        found = settings(context)
        wheels = self.wheel_dir or found.setup_wheels
        return (bpy.path.abspath(wheels) if wheels else None), found.setup_base_python or None, found.setup_torch

    def invoke(self, context, event):
        wheels, _, torch_variant = self._options(context)
        if wheels:
            return self.execute(context)
        message = engine_setup.network_warning(torch_variant)  # ask before downloading gigabytes
        try:
            return context.window_manager.invoke_confirm(self, event, title="Set Up Engine", message=message,
                                                         confirm_text="Download and Install")
        except TypeError:  # Blender before 4.1: no message in the confirmation
            return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        global _SETUP

        if _SETUP is not None and _SETUP.state == "running":
            self.report({"ERROR"}, "the engine set-up is already running")
            return {"CANCELLED"}
        wheels, base, torch_variant = self._options(context)
        try:
            _SETUP = engine_setup.EngineSetup(self.venv_dir or default_venv_dir(), requirements=self.requirements or None,
                                              base_python=base, wheel_dir=wheels, torch_variant=torch_variant).start()
        except FileNotFoundError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not wheels:
            self.report({"WARNING"}, engine_setup.network_warning(torch_variant))
        if self.wait:
            _SETUP.wait()
            return self._finish(context)
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "TIMER":
            for area in context.screen.areas if context.screen else ():
                area.tag_redraw()
            if _SETUP.state != "running":
                context.window_manager.event_timer_remove(self._timer)
                return self._finish(context)
        return {"PASS_THROUGH"}

    def _finish(self, context):
        if _SETUP.state != "done":
            self.report({"ERROR"}, f"Engine set-up failed: {_SETUP.error}")
            return {"CANCELLED"}
        set_engine_python(context, _SETUP.python)
        # Check Engine on the new environment: the engine and every package it imports
        state = context.window_manager.hmp_state
        try:
            version = runner.engine_version(_SETUP.python)
        except runner.EngineSetupError as exc:
            state.engine_ok, state.engine_status = False, str(exc)
            self.report({"WARNING"}, f"Engine environment made at {_SETUP.python}, but Check Engine failed: {exc}")
            return {"FINISHED"}
        state.engine_ok, state.engine_status = True, f"Engine OK: {version}"
        self.report({"INFO"}, f"Engine environment ready: {_SETUP.python}; {state.engine_status}")
        return {"FINISHED"}


classes = (HMP_OT_setup_engine,)
