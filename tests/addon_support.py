"""Helpers for the add-on tests: real result files (written by engine.contract.result.write) whose joints
are the forward kinematics of their poses, computed independently here with roma; and reading
bone positions back from a real bpy scene."""

import textwrap

import numpy as np
import roma
import torch

from engine.contract import joints as J
from engine.contract import result as R

# A plausible right-hand rest skeleton (model frame = camera frame at rest: x right, y down,
# z forward; metres): fingers point up (-y), palm facing the camera.
REST_RIGHT = np.array([
    [0.000, 0.000, 0.000],                                          # wrist
    [-0.030, -0.085, 0.005], [-0.032, -0.120, 0.006], [-0.033, -0.143, 0.007],   # index
    [-0.008, -0.090, 0.004], [-0.008, -0.130, 0.005], [-0.008, -0.155, 0.006],   # middle
    [0.035, -0.070, 0.006], [0.040, -0.095, 0.007], [0.043, -0.112, 0.008],      # pinky
    [0.014, -0.085, 0.005], [0.016, -0.120, 0.006], [0.017, -0.143, 0.007],      # ring
    [-0.030, -0.020, 0.012], [-0.055, -0.045, 0.018], [-0.070, -0.065, 0.022],   # thumb
])


def forward_kinematics(rest, global_orient, hand_pose, transl, rotations=False):
    """MANO FK. rest (16,3); global_orient (T,3); hand_pose (T,45); transl (T,3) -> (T,16,3)
    (and the global rotations (T,16,3,3) with ``rotations``)."""
    T = global_orient.shape[0]
    aa = torch.from_numpy(np.concatenate([global_orient[:, None], hand_pose.reshape(T, 15, 3)], 1))
    rot = roma.rotvec_to_rotmat(aa).numpy()  # (T,16,3,3)
    G = np.zeros_like(rot)
    pos = np.zeros((T, 16, 3))
    for j in range(16):
        p = J.MANO_PARENTS[j]
        if p < 0:
            G[:, j] = rot[:, j]
            pos[:, j] = rest[j] + transl
        else:
            G[:, j] = G[:, p] @ rot[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,b->ta", G[:, p], rest[j] - rest[p])
    return (pos, G) if rotations else pos


def rest_tips(rest):
    """(5,3) fingertips at rest (thumb..pinky): each last phalanx continued by 0.7 of its length, and
    3 mm towards the palm side (a fingertip keypoint sits on the pad, off the bone's axis)."""
    p = J.FINGERTIP_PARENT_MANO
    return rest[p] + 0.7 * (rest[p] - rest[np.array(J.MANO_PARENTS)[p]]) + np.array([0, 0, 0.003])


def make_result(path, T=20, sides=("right",), mesh=True, seed=0, fps=30.0, invalid=(), first_frame=0,
                video="/videos/my clip.mp4"):
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None]
    arrays = {
        "schema_version": np.array(R.SCHEMA_VERSION), "engine_version": np.array("test"),
        "fps": np.array(fps), "K": np.array([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]]),
        "image_size": np.array([1280, 720]), "frame_ids": np.arange(first_frame, first_frame + T),
        "hand_model": np.array("default"), "hands": np.array(list(sides)), "video": np.array(video),
        "stages": np.array(2),
    }
    for k, side in enumerate(sides):
        rest = REST_RIGHT * (np.array([-1.0, 1, 1]) if side == "left" else 1.0)
        go = np.array([0.3, -0.5, 2.8]) + 0.4 * np.sin(t * 0.2 + rng.uniform(0, 3, 3))  # large rotations
        hp = 0.6 * np.sin(t * 0.15 + rng.uniform(0, 6, 45)) * rng.uniform(0.2, 1.0, 45)
        tr = np.array([0.05 * (1 if side == "right" else -1), 0.02, 0.45]) + 0.03 * np.sin(t * 0.1 + k)
        j16, G = forward_kinematics(rest, go, hp, tr, rotations=True)
        # fingertips move with their last phalanx (as MANO's fingertip vertices do)
        p = J.FINGERTIP_PARENT_MANO
        tips = j16[:, p] + np.einsum("tkab,kb->tka", G[:, p], rest_tips(rest) - rest[p])
        valid = np.ones(T, bool)
        valid[list(invalid)] = False
        arrays.update({
            f"{side}/global_orient": go, f"{side}/hand_pose": hp, f"{side}/betas": np.zeros(10),
            f"{side}/transl": tr, f"{side}/joints": J.mano_to_mediapipe(j16, tips),
            f"{side}/keypoints_2d": np.zeros((T, 21, 2)), f"{side}/confidence": np.full((T, 21), 0.9),
            f"{side}/valid": valid, f"{side}/keypoint_source": np.ones(T, np.uint8), f"{side}/rest_joints": rest,
        })
        if mesh:
            V = 40
            verts = rest[rng.integers(0, 16, V)] + rng.normal(0, 0.004, (V, 3))
            w = rng.uniform(0, 1, (V, 16)) ** 8
            arrays.update({f"{side}/rest_vertices": verts, f"{side}/faces": rng.integers(0, V, (30, 3)),
                           f"{side}/skin_weights": w / w.sum(1, keepdims=True)})
    R.write(path, arrays)
    return arrays


def bone_heads_world(scene, rig, frame, names=J.MANO_JOINT_NAMES):
    """(16,3) world positions of the rig's bone heads at a scene frame (after evaluation)."""
    whole = int(np.floor(frame))
    scene.frame_set(whole, subframe=float(frame - whole))
    mw = np.array(rig.matrix_world)
    heads = np.array([list(rig.pose.bones[n].head) for n in names])
    return heads @ mw[:3, :3].T + mw[:3, 3]


def datablock_counts(bpy):
    names = ["objects", "meshes", "armatures", "actions", "cameras", "collections", "materials"]
    return {n: len(getattr(bpy.data, n)) for n in names}


def fake_engine(tmp_path, body):
    """A throwaway extension root whose `python -m engine` runs ``body`` (argv in ``args``, the
    ``--out`` path in ``out``, ``emit(**event)`` prints a progress event): a real process standing in
    for the engine where only the add-on's side is under test."""
    root = tmp_path / "fake_root"
    (root / "engine").mkdir(parents=True, exist_ok=True)
    (root / "engine" / "__init__.py").write_text("")
    (root / "engine" / "__main__.py").write_text(textwrap.dedent("""
        import json, os, shutil, sys, time
        def emit(**e):
            print(json.dumps(e), flush=True)
        args = sys.argv[1:]
        out = args[args.index("--out") + 1]
    """) + textwrap.dedent(body))
    return str(root)


def operator_driver(op_class):
    """A stand-in for the instance of a modal operator that Blender's window manager would hold
    (background bpy runs execute() for INVOKE_DEFAULT and has no event loop, so tests call the real
    invoke / modal with events they make): the operator's own methods and those of its mixins (not
    bpy's), with report() recording into ``.reports``."""
    ns = {}
    for klass in reversed(op_class.__mro__):
        if klass is object or klass.__module__.startswith(("bpy", "_bpy")):
            continue
        ns.update({k: v for k, v in vars(klass).items() if not k.startswith("__")})
    ns["__init__"] = lambda self: setattr(self, "reports", [])
    ns["report"] = lambda self, kind, message: self.reports.append((kind, message))
    return type(f"{op_class.__name__}Driver", (), ns)
