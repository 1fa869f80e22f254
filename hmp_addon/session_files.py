"""Capture files kept with the .blend: the result and the overlay video a capture leaves.

A capture writes into a folder in Blender's session temp directory (``hmp-capture-*``, removed when
Blender quits). So that a saved scene keeps its preview video and its re-importable result, they move
to ``hand_capture/`` beside the .blend: right after the capture when the .blend is already saved,
otherwise when it is first saved (a ``save_pre`` handler); Movie Clips and the retarget panel's result
path follow them, as paths relative to the .blend. Save As into another folder rewrites the add-on's own relative
paths (the result path, the video) as Blender does for Movie Clips (``remap_relative``).
"""

import os
import shutil

import bpy

TEMP_PREFIX = "hmp-capture-"
FOLDER = "hand_capture"


def in_capture_temp(path):
    """True for a file inside one of the captures' session temp folders."""
    if not path:
        return False
    parent = os.path.dirname(os.path.abspath(bpy.path.abspath(path)))
    return os.path.basename(parent).startswith(TEMP_PREFIX)


def keep_with_blend(blend_path, extra=()):
    """Move the capture files that data-blocks point at (and the capture files in ``extra``) into
    ``hand_capture/`` beside ``blend_path`` and repoint them there (relative paths). Returns
    {old absolute path: new absolute path}."""
    if not blend_path:
        return {}
    base = os.path.dirname(os.path.abspath(blend_path))
    dest_dir = os.path.join(base, FOLDER)
    moved = {}

    def move(path):
        src = os.path.abspath(bpy.path.abspath(path))
        if src not in moved:
            if not os.path.isfile(src):
                return None
            dst = os.path.join(dest_dir, os.path.basename(src))
            try:
                os.makedirs(dest_dir, exist_ok=True)
                shutil.move(src, dst)  # a re-capture of the same clip replaces its files, as its Action
            except OSError:  # read-only folder, file in use (Windows): it stays where it is
                return None
            moved[src] = dst
            try:
                os.rmdir(os.path.dirname(src))  # the capture's temp folder, once empty
            except OSError:
                pass
        return "//" + os.path.relpath(moved[src], base).replace(os.sep, "/")

    for clip in bpy.data.movieclips:
        if in_capture_temp(clip.filepath):
            new = move(clip.filepath)
            if new:
                clip.filepath = new
    for scene in bpy.data.scenes:
        settings = getattr(scene, "hmp_retarget", None)
        if settings is not None and in_capture_temp(settings.result):
            new = move(settings.result)
            if new:
                settings.result = new
    for path in extra:
        if in_capture_temp(path):
            move(path)
    return moved


def _path_settings():
    """(property group, property name) of every blend-relative file path the add-on keeps in scenes:
    Blender remaps its data-blocks' paths on Save As, not add-on properties."""
    for scene in bpy.data.scenes:
        for group, prop in (("hmp_retarget", "result"), ("hmp_capture", "video")):
            settings = getattr(scene, group, None)
            if settings is not None:
                yield settings, prop


def remap_relative(old_blend, new_blend):
    """Save As into another folder: rewrite the add-on's "//..." paths, relative to ``old_blend``'s
    folder, relative to ``new_blend``'s (absolute when no relative path exists, e.g. another drive),
    as Blender does for Movie Clips. Returns {(settings, prop): old value} of what changed."""
    old_dir, new_dir = os.path.dirname(os.path.abspath(old_blend)), os.path.dirname(os.path.abspath(new_blend))
    changed = {}
    if not old_blend or old_dir == new_dir:
        return changed
    for settings, prop in _path_settings():
        value = getattr(settings, prop)
        if not value.startswith("//"):
            continue
        target = os.path.normpath(os.path.join(old_dir, value[2:]))
        try:
            new = "//" + os.path.relpath(target, new_dir).replace(os.sep, "/")
        except ValueError:  # another drive (Windows)
            new = target
        changed[(settings, prop)] = value
        setattr(settings, prop, new)
    return changed


_REMAPPED = {}  # what the last save_pre rewrote, restored by save_post when that save was a copy


@bpy.app.handlers.persistent
def _before_save(filepath, *_):
    global _REMAPPED
    target = filepath or bpy.data.filepath
    _REMAPPED = {"to": target, "values": remap_relative(bpy.data.filepath, target)}
    keep_with_blend(target)


@bpy.app.handlers.persistent
def _after_save(filepath, *_):
    global _REMAPPED
    remapped, _REMAPPED = _REMAPPED, {}
    if not remapped or not remapped["values"]:
        return
    # "Save Copy": the open file still lives where it did, so its paths go back to what they were
    if os.path.abspath(bpy.data.filepath) != os.path.abspath(remapped["to"]):
        for (settings, prop), value in remapped["values"].items():
            try:
                setattr(settings, prop, value)
            except ReferenceError:
                pass


def register():
    if _before_save not in bpy.app.handlers.save_pre:
        bpy.app.handlers.save_pre.append(_before_save)
    if _after_save not in bpy.app.handlers.save_post:
        bpy.app.handlers.save_post.append(_after_save)


def unregister():
    if _before_save in bpy.app.handlers.save_pre:
        bpy.app.handlers.save_pre.remove(_before_save)
    if _after_save in bpy.app.handlers.save_post:
        bpy.app.handlers.save_post.remove(_after_save)
