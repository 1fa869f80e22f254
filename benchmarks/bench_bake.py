"""Baking speed: the add-on's fast path (keyframe_points.foreach_set) against plain
keyframe_insert, measured in the same run on the same rigs.

    .venv/bin/python benchmarks/bench_bake.py [--frames 3000] [--hands 2]

2 hands x 16 joints (quaternions) + root location, 3000 frames by default. Prints a markdown table
(benchmarks/mdtable.py), **Baking speed**, in docs/blender.md's shape (path | time): the seconds of
each path and the speed-up (keyframe_insert's time / the fast path's).
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bpy  # noqa: E402
from mdtable import print_table  # noqa: E402

from hmp_addon import bake, poses, rig  # noqa: E402
from hmp_addon.engine_link import joints as J  # noqa: E402


def channels(rng, frames, rig_obj):
    t = np.arange(frames)[:, None]
    go = np.array([0.3, -0.5, 2.8]) + 0.4 * np.sin(t * 0.05 + rng.uniform(0, 3, 3))
    hp = 0.6 * np.sin(t * 0.03 + rng.uniform(0, 6, 45))
    tr = np.array([0.05, 0.02, 0.45]) + 0.03 * np.sin(t * 0.02)
    quats, loc = poses.bone_channels(go, hp, tr, rig.rest_frames(rig_obj))
    return {n: quats[:, j] for j, n in enumerate(rig.BONE_NAMES)}, {rig.BONE_NAMES[0]: loc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--hands", type=int, default=2)
    args = ap.parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ctx = bpy.context
    rng = np.random.default_rng(0)
    rest = np.zeros((16, 3))
    for j in range(1, 16):  # any non-degenerate skeleton will do for timing
        rest[j] = rest[J.MANO_PARENTS[j]] + [0.01 * (j % 4 - 1.5), -0.03, 0.002]
    hand = {"rest_joints": rest, "valid": np.zeros(0, bool)}  # no frames: the rig's extrapolated fingertips

    class Hand(dict):
        has_mesh = False

    rigs = [rig.ensure_hand_rig(ctx, "bench", side, Hand(hand)) for side in ("right", "left")[: args.hands]]
    frames = np.arange(1, args.frames + 1, dtype=np.float64)
    data = [channels(rng, args.frames, r) for r in rigs]

    t0 = time.perf_counter()
    for r, (rot, loc) in zip(rigs, data):
        bake.bake_pose_action(r, f"fast_{r.name}", frames, rot, loc)
    fast = time.perf_counter() - t0

    for r in rigs:  # plain keyframe_insert into fresh Actions on the same rigs
        r.animation_data.action = None
    t0 = time.perf_counter()
    for r, (rot, loc) in zip(rigs, data):
        pbs = [r.pose.bones[n] for n in rig.BONE_NAMES]
        for pb in pbs:
            pb.rotation_mode = "QUATERNION"
        for i, f in enumerate(frames):
            for pb in pbs:
                pb.rotation_quaternion = rot[pb.name][i]
                pb.keyframe_insert("rotation_quaternion", frame=f, group=pb.name)
            pbs[0].location = loc[rig.BONE_NAMES[0]][i]
            pbs[0].keyframe_insert("location", frame=f, group=pbs[0].name)
    slow = time.perf_counter() - t0

    keys = sum(len(fc.keyframe_points) for r in rigs for fc in bake.iter_fcurves(r.animation_data.action))
    fast_keys = sum(len(fc.keyframe_points) for a in bpy.data.actions if a.name.startswith("fast_")
                    for fc in bake.iter_fcurves(a))
    assert keys == fast_keys, (keys, fast_keys)
    print_table("Baking speed", ["path", "time"],
                [["fast path (`keyframe_points.add` + `foreach_set`)", f"{fast:.3f} s"],
                 ["`keyframe_insert` per key", f"{slow:.3f} s"],
                 ["speed-up", f"{slow / fast:.1f}x"]],
                f"{args.hands} hands x 16 joints x {args.frames} frames ({fast_keys} keyframes), "
                f"bpy {bpy.app.version_string}")


if __name__ == "__main__":
    main()
