"""HMP Hand Capture, the Blender side (bpy + numpy; the engine runs in a subprocess).

Registration is driven by ``MODULES``: each module exposes ``classes`` (registered in order) and may
define ``register()`` / ``unregister()`` hooks, called after its classes are registered / before they
are unregistered. To add a feature module (e.g. retargeting), append it to ``MODULES``.
"""

import atexit
import sys

import bpy

from . import (engine_link, jobs, importer, live, live_ui, operators, preferences, preview, properties,  # noqa: F401
               retarget_ui, runner, session_files, setup_ui, ui)

MODULES = [preferences, properties, operators, ui, live_ui, retarget_ui, preview, setup_ui, session_files]


def _drop_bpy_references():
    """At interpreter exit: remove the name ``bpy`` from this package's modules.

    Why: under Blender as a Python module, Blender shuts down when Python frees the ``bpy`` module.
    Blender 4.2 keeps every Python callback a property was given (``update=``, ``poll=``, ``items=``)
    even after unregister, and so their modules' globals, which hold ``bpy``: the module was never
    freed, Blender's shutdown never ran, and the process crashed in its exit handlers (SIGSEGV: exit
    code -11 whatever ``sys.exit`` asked; tests/test_addon_register.py). Blender 5.2 does not crash;
    there, and inside the Blender application, this changes nothing (Python is ending)."""
    prefix = __name__ + "."
    for name, module in list(sys.modules.items()):
        if name == __name__ or name.startswith(prefix):
            vars(module).pop("bpy", None)


atexit.register(_drop_bpy_references)


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
