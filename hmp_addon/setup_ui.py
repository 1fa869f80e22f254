"""The "Set Up Engine" button: runs engine_setup in the background, shows progress, sets Engine Python."""

import os

import bpy

from . import engine_setup

_SETUP = None  # the running / last set-up of this session


def default_venv_dir():
    from .preferences import ADDON_ID

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
    wait: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"}, description="block (scripts, tests)")

    _timer = None

    def execute(self, context):
        global _SETUP
        from .preferences import ADDON_ID

        if _SETUP is not None and _SETUP.state == "running":
            self.report({"ERROR"}, "the engine set-up is already running")
            return {"CANCELLED"}
        entry = context.preferences.addons.get(ADDON_ID)
        prefs = getattr(entry, "preferences", None) if entry is not None else None
        wheels = bpy.path.abspath(prefs.setup_wheels) if prefs is not None and prefs.setup_wheels else ""
        base = bpy.path.abspath(prefs.setup_base_python) if prefs is not None and prefs.setup_base_python else None
        torch_variant = prefs.setup_torch if prefs is not None else "auto"
        try:
            _SETUP = engine_setup.EngineSetup(self.venv_dir or default_venv_dir(), base_python=base,
                                              wheel_dir=wheels or None, torch_variant=torch_variant).start()
        except FileNotFoundError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
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
        from .preferences import ADDON_ID

        if _SETUP.state != "done":
            self.report({"ERROR"}, f"Engine set-up failed: {_SETUP.error}")
            return {"CANCELLED"}
        entry = context.preferences.addons.get(ADDON_ID)
        if entry is not None and getattr(entry, "preferences", None) is not None:
            entry.preferences.engine_python = _SETUP.python
        self.report({"INFO"}, f"Engine environment ready: {_SETUP.python}")
        return {"FINISHED"}


def current():
    return _SETUP


classes = (HMP_OT_setup_engine,)
