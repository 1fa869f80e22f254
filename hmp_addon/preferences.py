"""Add-on preferences: engine Python, MANO directory, default device."""

import bpy

from . import setup_ui
from .engine_link import choices as C
from .engine_link import default_engine_python
from .engine_setup import TORCH_VARIANTS, network_warning
from .settings import ADDON_ID

# the engine's --device values (engine/contract/choices.py), with their labels
DEVICE_ITEMS = [(k, *{"auto": ("Auto", "CUDA when available, else CPU"),
                      "cpu": ("CPU", "Run the engine on the CPU"),
                      "cuda": ("CUDA", "Run the engine on an NVIDIA GPU")}[k]) for k in C.DEVICES]
# the torch builds Set Up Engine installs (engine_setup.TORCH_VARIANTS), with their labels
TORCH_ITEMS = [(k, *{"auto": ("Auto", "CUDA build when an NVIDIA GPU is found, else CPU"),
                     "cpu": ("CPU", "CPU build"),
                     "cuda": ("CUDA", "CUDA build (NVIDIA GPUs)")}[k]) for k in TORCH_VARIANTS]


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
    default_device: bpy.props.EnumProperty(name="Default Device", items=DEVICE_ITEMS, default=C.DEFAULT_DEVICE)
    setup_torch: bpy.props.EnumProperty(name="torch Build", items=TORCH_ITEMS, default="auto")
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
            box.label(text=network_warning(self.setup_torch), icon="ERROR")
        box.prop(self, "setup_base_python")
        setup_ui.draw_status(box)
        box.operator("hmp.setup_engine", icon="IMPORT")


classes = (HMP_AddonPreferences,)
