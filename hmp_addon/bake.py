"""Fast keyframe baking: per-bone channels in, one Action out.

``bake_pose_action`` is the reusable entry (the rig bake and retargeting both use it): it takes
per-bone quaternions / locations and scene frames and writes a fresh Action through
``keyframe_points.add`` + ``foreach_set`` (no per-key Python calls), replacing any Action of the
same name; ``bake_into_current_action`` re-keys those channels over the take's frames inside the
Action the armature already plays, keeping everything else. Works with Blender 4.4+ layered/slotted
Actions (channelbags) and falls back to the legacy ``action.fcurves`` on 4.2/4.3.
"""

import bpy
import numpy as np


def _new_action(name, id_root="OBJECT"):
    old = bpy.data.actions.get(name)
    if old is not None:  # re-run: replace, never pile up "name.001"
        bpy.data.actions.remove(old)
    action = bpy.data.actions.new(name)
    # legacy Actions (4.2/4.3) name their ID type. Asked through bl_rna, not hasattr: reading a new
    # Action's id_root in 4.2 prints "current value '0' matches no enum" on the console
    if "id_root" in action.bl_rna.properties:
        action.id_root = id_root
    return action


def _channel_curves(action, obj, slot=None):
    """Where ``obj``'s channels live in ``action``: (fcurves, new_fcurve(data_path, index, group) ->
    FCurve, slot or None). Blender 4.4+ (layered Actions): the channelbag of ``slot``, a new slot for
    ``obj`` when None; 4.2/4.3: the Action's own fcurves."""
    if hasattr(action, "slots") and hasattr(action, "layers"):  # Blender 4.4+: layered Actions
        if slot is None:
            slot = action.slots.new(id_type="OBJECT", name=obj.name)
        try:
            from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

            channelbag = action_ensure_channelbag_for_slot(action, slot)
        except ImportError:  # 4.4 without the helper
            layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
            strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
            channelbag = strip.channelbag(slot, ensure=True)
        fcurves = channelbag.fcurves

        def new(path, index, group):
            return fcurves.new(path, index=index, group_name=group)

        return fcurves, new, slot
    fcurves = action.fcurves

    def new_legacy(path, index, group):  # 4.2 / 4.3
        return fcurves.new(path, index=index, action_group=group)

    return fcurves, new_legacy, None


def write_fcurve(fcurve, frames, values):
    """Fill an empty FCurve with keys at frames (N,) with values (N,), in one foreach_set."""
    n = len(frames)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fcurve.keyframe_points.add(n)
    fcurve.keyframe_points.foreach_set("co", co)
    # LINEAR: dense mocap keys need no Bezier handles, and linear never overshoots between frames
    interp = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    fcurve.keyframe_points.foreach_set("interpolation", np.full(n, interp, dtype=np.int32))
    fcurve.update()


def smooth(values, sigma=1.0):
    """Gaussian smoothing along axis 0 (frames), edges held: (N, ...) -> (N, ...)."""
    values = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(values) < 3:
        return values
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.concatenate([np.repeat(values[:1], r, 0), values, np.repeat(values[-1:], r, 0)])
    return np.stack([np.convolve(padded[:, i], k, mode="valid") for i in range(values.shape[1])], 1) \
        if values.ndim == 2 else np.convolve(padded, k, mode="valid")


def runs_of(valid) -> np.ndarray:
    """valid (T,) bool -> (N,) int, one label per valid frame (N = valid.sum()): the run of
    consecutive valid frames it belongs to, 0, 1, ... in order. Frames either side of a gap (frames
    without a fit) are in different runs."""
    valid = np.asarray(valid, dtype=bool)
    starts = valid & ~np.concatenate([[False], valid[:-1]])
    return (np.cumsum(starts) - 1)[valid]


def smooth_runs(values, sigma=1.0, runs=None):
    """``smooth`` on each run of keys separately: values (N, ...), runs (N,) labels (``runs_of``;
    None: one run) -> (N, ...). A key is never averaged with a key of another run: across a gap the
    hand may have moved anywhere, so the keys either side of it are not neighbours."""
    if runs is None:
        return smooth(values, sigma)
    out = np.asarray(values, dtype=np.float64).copy()
    runs = np.asarray(runs)
    for run in np.unique(runs):
        keys = runs == run
        out[keys] = smooth(out[keys], sigma)
    return out


def reduce_keys(frames, values, tolerance):
    """Indices of the keys to keep so that linear interpolation of the kept keys stays within
    ``tolerance`` of every dropped value (Ramer-Douglas-Peucker on one channel)."""
    n = len(frames)
    if tolerance <= 0 or n <= 2:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = np.arange(a + 1, b)
        t = (frames[seg] - frames[a]) / (frames[b] - frames[a])
        err = np.abs(values[seg] - (values[a] + t * (values[b] - values[a])))
        i = int(np.argmax(err))
        if err[i] > tolerance:
            m = seg[i]
            keep[m] = True
            stack += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def _channels(frames, rotations, locations, smoothing, runs=None):
    """Yield (data_path, index, bone, values (N,)) for every channel to key, smoothed when asked
    (quaternions renormalised), each run of keys on its own (``smooth_runs``)."""
    for bone, quats in rotations.items():
        quats = np.asarray(quats, dtype=np.float64)
        assert quats.shape == (len(frames), 4), (bone, quats.shape)
        if smoothing > 0:
            quats = smooth_runs(quats, smoothing, runs)
            quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion'
        for i in range(4):
            yield path, i, bone, quats[:, i]
    for bone, loc in (locations or {}).items():
        loc = smooth_runs(np.asarray(loc, dtype=np.float64), smoothing, runs)
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].location'
        for i in range(3):
            yield path, i, bone, loc[:, i]


def bake_pose_action(obj, action_name, frames, rotations, locations=None, tolerance=0.0, smoothing=0.0, runs=None):
    """Write one Action with pose-bone keys and assign it to ``obj`` (an armature object).

    frames (N,) scene frames; rotations {bone_name: (N, 4) wxyz quaternions};
    locations {bone_name: (N, 3)}. Sets each keyed bone's rotation_mode to QUATERNION.
    Replaces an existing Action called ``action_name``. Returns the Action.
    smoothing: Gaussian sigma in frames (0: off), within each run of ``runs`` ((N,) labels of the
    runs of consecutive valid frames, ``runs_of``; None: the keys are one run). tolerance: keyframe
    reduction, the largest deviation a dropped key may have from the kept curve (quaternion units
    for rotations, metres for locations; 0: every frame keyed).
    """
    frames = np.asarray(frames, dtype=np.float64)
    action = _new_action(action_name)
    _, new_fcurve, slot = _channel_curves(action, obj)
    for path, i, bone, values in _channels(frames, rotations, locations, smoothing, runs):
        keep = reduce_keys(frames, values, tolerance)
        write_fcurve(new_fcurve(path, i, bone), frames[keep], values[keep])
    for bone in rotations:
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
    assign_action(obj, action, slot)
    return action


def bake_into_current_action(obj, frames, rotations, locations=None, tolerance=0.0, smoothing=0.0, runs=None):
    """Like ``bake_pose_action`` but into the Action ``obj`` already plays (its assigned slot on
    Blender 4.4+): in each baked channel the keys within the baked frame range are replaced, keys
    outside it (with their interpolation and handles) and every other channel are kept. Returns the
    Action, or None when ``obj`` plays no Action."""
    anim = obj.animation_data
    action = anim.action if anim is not None else None
    if action is None:
        return None
    frames = np.asarray(frames, dtype=np.float64)
    lo, hi = frames.min() - 1e-4, frames.max() + 1e-4
    fcurves, new, slot = _channel_curves(action, obj, getattr(anim, "action_slot", None))
    if slot is not None and anim.action_slot != slot:  # the Action played without a slot: now it has one
        anim.action_slot = slot
    for path, i, bone, values in _channels(frames, rotations, locations, smoothing, runs):
        keep = reduce_keys(frames, values, tolerance)
        old = fcurves.find(path, index=i)
        kept = None
        if old is not None:
            n = len(old.keyframe_points)
            kept = {k: np.empty(n * w, dtype=dt) for k, w, dt in _KEY_FIELDS}
            for k, arr in kept.items():
                old.keyframe_points.foreach_get(k, arr)
            outside = (kept["co"][0::2] < lo) | (kept["co"][0::2] > hi)
            kept = {k: arr.reshape(n, -1)[outside].ravel() for k, arr in kept.items()}
            fcurves.remove(old)
        fc = new(path, i, bone)
        write_fcurve(fc, frames[keep], values[keep])
        if kept is not None and len(kept["co"]):  # the keys outside the take, as they were
            n0, n1 = len(fc.keyframe_points), len(kept["co"]) // 2
            fc.keyframe_points.add(n1)
            merged = {k: np.empty((n0 + n1) * w, dtype=dt) for k, w, dt in _KEY_FIELDS}
            for k, arr in merged.items():
                fc.keyframe_points.foreach_get(k, arr)
                w = len(arr) // (n0 + n1)
                arr[n0 * w:] = kept[k]
            order = np.argsort(merged["co"][0::2], kind="stable")
            for k, arr in merged.items():
                w = len(arr) // (n0 + n1)
                fc.keyframe_points.foreach_set(k, arr.reshape(n0 + n1, w)[order].ravel())
            fc.update()
    for bone in rotations:
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
    return action


# per-key fields carried over when a channel is re-baked in place: (name, values per key, dtype)
_KEY_FIELDS = (("co", 2, np.float32), ("handle_left", 2, np.float32), ("handle_right", 2, np.float32),
               ("interpolation", 1, np.int32), ("handle_left_type", 1, np.int32),
               ("handle_right_type", 1, np.int32))


def push_to_nla(obj, action, track_name="Hand capture"):
    """Move the object's active Action into a new NLA strip (so another take can be layered)."""
    anim = obj.animation_data or obj.animation_data_create()
    track = anim.nla_tracks.new()
    track.name = track_name
    start = int(np.floor(action.frame_range[0]))
    strip = track.strips.new(action.name, start, action)
    if hasattr(anim, "action_slot") and hasattr(strip, "action_slot") and anim.action_slot is not None:
        strip.action_slot = anim.action_slot
    anim.action = None
    return strip


def assign_action(obj, action, slot=None):
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = action
    if slot is not None and hasattr(anim, "action_slot"):
        anim.action_slot = slot


def count_keys(action):
    """Number of keyframes per fcurve: {(data_path, index): n} (both Action layouts). The Retarget
    operator reports their sum (what key reduction left)."""
    out = {}
    for fc in iter_fcurves(action):
        out[(fc.data_path, fc.array_index)] = len(fc.keyframe_points)
    return out


def iter_fcurves(action):
    if hasattr(action, "layers") and len(action.layers):
        for layer in action.layers:
            for strip in layer.strips:
                for channelbag in strip.channelbags:
                    yield from channelbag.fcurves
    elif hasattr(action, "fcurves"):
        yield from action.fcurves
