"""HMP Hand Capture: Blender extension root (the repository root is the extension zip root).

Blender imports this package (as ``bl_ext.<repo>.hmp_hand_capture``) and calls ``register()``.
Everything lives in ``hmp_addon``; the ``engine`` package sits beside it and is imported
relatively from there. Imported as a plain top-level module (e.g. by a tool scanning the repo
root) this file does nothing and raises nothing.
"""

if __package__:  # imported as a package (installed extension): the add-on is a sub-package
    from . import hmp_addon

    def register():
        hmp_addon.register()

    def unregister():
        hmp_addon.unregister()

else:  # plain module import from the repository root: nothing to register

    def register():
        raise RuntimeError("import the extension as a package (or use hmp_addon.register())")

    def unregister():
        pass
