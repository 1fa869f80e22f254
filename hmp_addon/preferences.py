"""Add-on preferences: engine Python, MANO directory, default device."""

import os

import bpy

from .engine_link import default_engine_python

# The id Blender files our preferences under: the extension package ("bl_ext.<repo>.hmp_hand_capture")
# when installed, or "hmp_addon" when the package is imported from a source checkout.
ADDON_ID = __package__.rpartition(".")[0] or __package__

DEVICE_ITEMS = [
    ("auto", "Auto", "CUDA when available, else CPU"),
    ("cpu", "CPU", "Run the engine on the CPU"),
    ("cuda", "CUDA", "Run the engine on an NVIDIA GPU"),
]


class HMP_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    engine_python: bpy.props.StringProperty(
        name="Engine Python",
        description="Python interpreter of an environment with the engine's requirements "
        "(requirements.txt); empty: the project's .venv next to the extension, if any",
        subtype="FILE_PATH",
        default="",
    )
    mano_dir: bpy.props.StringProperty(
        name="MANO Directory",
        description="Optional folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; without it the open default hand model is used",
        subtype="DIR_PATH",
        default="",
    )
    default_device: bpy.props.EnumProperty(name="Default Device", items=DEVICE_ITEMS, default="auto")
    setup_torch: bpy.props.EnumProperty(
        name="torch Build", items=[("auto", "Auto", "CUDA build when an NVIDIA GPU is found, else CPU"),
                                   ("cpu", "CPU", "CPU build"), ("cuda", "CUDA", "CUDA build (NVIDIA GPUs)")],
        default="auto")
    setup_wheels: bpy.props.StringProperty(
        name="Wheel Folder", description="Optional: install offline from this folder of wheels (no network)",
        subtype="DIR_PATH", default="")
    setup_base_python: bpy.props.StringProperty(
        name="Base Python", description="Python that creates the environment (empty: Blender's own)",
        subtype="FILE_PATH", default="")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "engine_python")
        if not self.engine_python:
            found = default_engine_python()
            layout.label(text=f"Using: {found}" if found else "No engine Python found: set one", icon="INFO")
        layout.prop(self, "mano_dir")
        layout.prop(self, "default_device")
        layout.operator("hmp.check_engine", icon="CHECKMARK")
        box = layout.box()
        box.label(text="Engine set-up: a Python environment with the engine's packages", icon="PACKAGE")
        box.prop(self, "setup_torch")
        box.prop(self, "setup_wheels")
        if not self.setup_wheels:
            from .engine_setup import network_warning

            box.label(text=network_warning(self.setup_torch), icon="ERROR")
        box.prop(self, "setup_base_python")
        from . import setup_ui

        setup_ui.draw_status(box)
        box.operator("hmp.setup_engine", icon="IMPORT")


class Settings:
    """Resolved preferences (works also when the add-on is registered without Blender's add-on
    manager, e.g. by tests or the headless script, where no preferences entry exists)."""

    def __init__(self, engine_python="", mano_dir="", default_device="auto"):
        self.engine_python = engine_python
        self.mano_dir = mano_dir
        self.default_device = default_device


def addon_preferences(context=None):
    """This add-on's preferences, or None. Also found when this package was imported from a source
    checkout (scripts/headless_capture.py run by a Blender where the extension is installed and
    enabled: its preferences live under "bl_ext.<repo>.hmp_hand_capture", not under ours)."""
    context = context or bpy.context
    addons = context.preferences.addons
    entries = [addons.get(ADDON_ID)] + [e for name, e in addons.items() if name.endswith(".hmp_hand_capture")]
    for entry in entries:
        prefs = getattr(entry, "preferences", None) if entry is not None else None
        if prefs is not None and hasattr(prefs, "engine_python"):
            return prefs
    return None


def settings(context=None):
    context = context or bpy.context
    prefs = addon_preferences(context)
    engine_python = bpy.path.abspath(prefs.engine_python) if prefs is not None and prefs.engine_python else ""
    engine_python = engine_python or os.environ.get("HMP_ENGINE_PYTHON", "") or default_engine_python()
    mano_dir = bpy.path.abspath(prefs.mano_dir) if prefs is not None and prefs.mano_dir else os.environ.get("HMP_MANO_DIR", "")
    device = prefs.default_device if prefs is not None else "auto"
    return Settings(engine_python, mano_dir, device)


classes = (HMP_AddonPreferences,)
