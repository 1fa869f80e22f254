"""HMP Hand Capture, the Blender side (bpy + numpy; the engine runs in a subprocess).

Registration is driven by ``MODULES``: each module exposes ``classes`` (registered in order) and may
define ``register()`` / ``unregister()`` hooks, called after its classes are registered / before they
are unregistered. To add a feature module (e.g. retargeting), append it to ``MODULES``.
"""

import bpy

from . import (engine_link, jobs, importer, operators, preferences, preview, properties, retarget_ui, runner,  # noqa: F401
               session_files, setup_ui, ui)

MODULES = [preferences, properties, operators, ui, retarget_ui, preview, setup_ui, session_files]


def register():
    for mod in MODULES:
        for cls in getattr(mod, "classes", ()):
            bpy.utils.register_class(cls)
        hook = getattr(mod, "register", None)
        if hook is not None:
            hook()


def unregister():
    for mod in reversed(MODULES):
        hook = getattr(mod, "unregister", None)
        if hook is not None:
            hook()
        for cls in reversed(getattr(mod, "classes", ())):
            bpy.utils.unregister_class(cls)
