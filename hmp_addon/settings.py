"""The add-on's id and its resolved settings: the one place that reads the add-on preferences.

A leaf module (bpy, os and ``engine_link`` only): the preferences class, the operators, the panel,
the engine set-up and the headless script all ask here, so none of them imports another for it.
"""

import os

import bpy

from .engine_link import choices as C
from .engine_link import default_engine_python

# The id Blender files our preferences under: the extension package ("bl_ext.<repo>.hmp_hand_capture")
# when installed, or "hmp_addon" when the package is imported from a source checkout.
ADDON_ID = __package__.rpartition(".")[0] or __package__


class Settings:
    """Resolved preferences (works also when the add-on is registered without Blender's add-on
    manager, e.g. by tests or the headless script, where no preferences entry exists).

    Paths are absolute (``//`` resolved) or "". ``setup_*``: the Set Up Engine options.
    """

    def __init__(self, engine_python: str = "", mano_dir: str = "", default_device: str = C.DEFAULT_DEVICE,
                 setup_torch: str = "auto", setup_wheels: str = "", setup_base_python: str = ""):
        self.engine_python = engine_python
        self.mano_dir = mano_dir
        self.default_device = default_device
        self.setup_torch = setup_torch
        self.setup_wheels = setup_wheels
        self.setup_base_python = setup_base_python


def addon_preferences(context=None):
    """This add-on's preferences (``bpy.types.AddonPreferences``), or None. Also found when this
    package was imported from a source checkout (scripts/headless_capture.py run by a Blender where
    the extension is installed and enabled: its preferences live under
    "bl_ext.<repo>.hmp_hand_capture", not under ours)."""
    context = context or bpy.context
    addons = context.preferences.addons
    entries = [addons.get(ADDON_ID)] + [e for name, e in addons.items() if name.endswith(".hmp_hand_capture")]
    for entry in entries:
        prefs = getattr(entry, "preferences", None) if entry is not None else None
        if prefs is not None and hasattr(prefs, "engine_python"):
            return prefs
    return None


def _path(prefs, name: str) -> str:
    """A path preference made absolute, or "" (also without preferences)."""
    value = getattr(prefs, name, "") if prefs is not None else ""
    return bpy.path.abspath(value) if value else ""


def settings(context=None) -> Settings:
    """The preferences resolved with their fall-backs: Engine Python -> $HMP_ENGINE_PYTHON -> the
    project's .venv next to the extension; MANO directory -> $HMP_MANO_DIR; device -> "auto"."""
    prefs = addon_preferences(context)
    engine_python = _path(prefs, "engine_python") or os.environ.get("HMP_ENGINE_PYTHON", "") or default_engine_python()
    mano_dir = _path(prefs, "mano_dir") or os.environ.get("HMP_MANO_DIR", "")
    if prefs is None:
        return Settings(engine_python, mano_dir)
    return Settings(engine_python, mano_dir, prefs.default_device, prefs.setup_torch, _path(prefs, "setup_wheels"),
                    _path(prefs, "setup_base_python"))


def set_engine_python(context, python: str) -> bool:
    """Store ``python`` as the Engine Python preference; False when there are no preferences."""
    prefs = addon_preferences(context)
    if prefs is None:
        return False
    prefs.engine_python = python
    return True
