"""Generate the open default hand model (engine/assets/hand/default_hand.npz) from the WebXR hand.

    .venv/bin/python tools/make_default_hand.py

Source: the MIT-licensed WebXR generic hand (engine/assets/hand/webxr/right.glb, with its
LICENSE.md), a skinned mesh of 1360 vertices with 25 flat (unparented) bones. This script:

1. reads the glb (binary glTF: a JSON chunk and a binary chunk; numpy is enough);
2. builds MANO's 16-joint kinematic tree from the bone heads: wrist, then per finger proximal /
   intermediate / distal phalanx heads (MCP, PIP, DIP), and for the thumb its metacarpal /
   proximal / distal heads (CMC, MCP, IP). The non-thumb metacarpals fold into the wrist (MANO has
   no metacarpal joints) and each tip bone into its finger's last joint, for the skin weights too;
3. picks a fingertip vertex per finger (the vertex furthest along the distal phalanx, as MANO's
   fingertip vertex ids are the tip of the nail pad);
4. builds a 10-dimensional linear shape space (see SHAPE_DIRECTIONS): each direction moves the
   joints by D_j and deforms the mesh by the skin-weighted blend of per-bone linear maps
   disp(v) = sum_j w_j(v) (D_j + A_j (v - J_j)), so vertices follow their bones exactly as the
   joints do. One unit is roughly one standard deviation of adult hands (anthropometric tables
   give coefficients of variation of about 5-6 % for hand length and breadth, about 8-10 % for
   finger and palm thickness); this is a hand-built shape space, not one learnt from scans.

The model frame is the glb's (metres): for the right hand at zero pose the fingers point along -y,
the thumb is on the -z side, the palm faces +x. The zero pose is the glb's bind pose (a relaxed,
nearly flat hand; MANO's flat_hand_mean template is flat too, so zero poses mean about the same).
The left hand is the exact mirror (x -> -x, faces reversed), as MANO's left relates to its right.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine.contract.joints import MANO_PARENTS as PARENTS  # noqa: E402  (the joint tables live in engine/contract/joints.py)

ASSETS = ROOT / "engine" / "assets" / "hand"
GLB = ASSETS / "webxr" / "right.glb"
OUT = ASSETS / "default_hand.npz"

FINGERS = ("index", "middle", "pinky", "ring")  # MANO order of the four fingers
# glb bone name -> MANO joint index
BONE_TO_JOINT = {"wrist": 0, "thumb-metacarpal": 13, "thumb-phalanx-proximal": 14,
                 "thumb-phalanx-distal": 15, "thumb-tip": 15}
for k, f in enumerate(FINGERS):
    base = 1 + 3 * k
    BONE_TO_JOINT.update({f"{f}-finger-metacarpal": 0, f"{f}-finger-phalanx-proximal": base,
                          f"{f}-finger-phalanx-intermediate": base + 1, f"{f}-finger-phalanx-distal": base + 2,
                          f"{f}-finger-tip": base + 2})
JOINT_BONES = ["wrist"] + [f"{f}-finger-phalanx-{p}" for f in FINGERS for p in ("proximal", "intermediate", "distal")] \
    + ["thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal"]
TIP_BONES = ["thumb-tip", "index-finger-tip", "middle-finger-tip", "ring-finger-tip", "pinky-finger-tip"]
FINGER_JOINTS = {"thumb": [13, 14, 15], "index": [1, 2, 3], "middle": [4, 5, 6], "ring": [10, 11, 12],
                 "pinky": [7, 8, 9]}
SHAPE_DIRECTIONS = ("scale", "palm_width", "palm_length", "palm_thickness", "finger_thickness",
                    "thumb_length", "index_length", "middle_length", "ring_length", "pinky_length")


def read_glb(path):
    data = Path(path).read_bytes()
    magic, _, _ = struct.unpack("<III", data[:12])
    assert magic == 0x46546C67, "not a glb file"
    jlen = struct.unpack("<I", data[12:16])[0]
    gltf = json.loads(data[20:20 + jlen])
    bin_start = 20 + jlen + 8
    blob = data[bin_start:]
    types = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
    sizes = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}

    def accessor(i):
        acc = gltf["accessors"][i]
        view = gltf["bufferViews"][acc["bufferView"]]
        dtype = types[acc["componentType"]]
        n = sizes[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride")
        item = np.dtype(dtype).itemsize * n
        if stride and stride != item:
            raw = np.frombuffer(blob, np.uint8, count=stride * acc["count"], offset=start).reshape(acc["count"], stride)
            return raw[:, :item].copy().view(dtype).reshape(acc["count"], n)
        return np.frombuffer(blob, dtype, count=acc["count"] * n, offset=start).reshape(acc["count"], n).copy()

    return gltf, accessor


def build():
    gltf, accessor = read_glb(GLB)
    nodes = gltf["nodes"]
    skin = gltf["skins"][0]
    names = [nodes[j]["name"] for j in skin["joints"]]
    ibm = accessor(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    bind = np.linalg.inv(ibm)
    heads = {n: bind[i, :3, 3] for i, n in enumerate(names)}
    for i, n in enumerate(names):  # the node transforms are the bind pose
        assert np.allclose(nodes[skin["joints"][i]]["translation"], heads[n], atol=1e-5), n
    prim = gltf["meshes"][0]["primitives"][0]
    verts = accessor(prim["attributes"]["POSITION"]).astype(np.float64)
    faces = accessor(prim["indices"]).reshape(-1, 3).astype(np.int64)
    bone_idx = accessor(prim["attributes"]["JOINTS_0"]).astype(np.int64)
    bone_w = accessor(prim["attributes"]["WEIGHTS_0"]).astype(np.float64)

    J = np.array([heads[b] for b in JOINT_BONES])  # (16,3)
    W = np.zeros((len(verts), 16))
    for k in range(4):
        np.add.at(W, (np.arange(len(verts)), [BONE_TO_JOINT[names[b]] for b in bone_idx[:, k]]), bone_w[:, k])
    W /= W.sum(1, keepdims=True)

    # fingertip vertices: furthest along the distal phalanx among vertices of that finger's last joint
    tips = []
    for tip_bone in TIP_BONES:
        j = BONE_TO_JOINT[tip_bone]
        d = heads[tip_bone] - J[j]
        d /= np.linalg.norm(d)
        cand = np.flatnonzero(W[:, j] > 0.5)
        along = (verts[cand] - J[j]) @ d
        radial = np.linalg.norm((verts[cand] - J[j]) - along[:, None] * d, axis=1)
        tips.append(int(cand[np.argmax(along - 0.5 * radial)]))
    tips = np.array(tips)

    # bone directions: joint -> child joint (last joint -> its tip)
    child_pos = np.zeros_like(J)
    for j in range(1, 16):
        kids = np.flatnonzero(PARENTS == j)
        child_pos[j] = J[kids[0]] if len(kids) else verts[tips[[15, 3, 6, 12, 9].index(j)]]
    child_pos[0] = J[4]  # wrist -> middle MCP
    dirs = child_pos - J
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    e_l = dirs[0]
    e_n = np.cross(J[1] - J[0], J[7] - J[0])
    e_n /= np.linalg.norm(e_n)
    e_w = np.cross(e_n, e_l)
    outer = lambda a: np.outer(a, a)

    def direction(name):
        D = np.zeros((16, 3))
        A = np.zeros((16, 3, 3))
        if name == "scale":
            s = 0.055
            D[:] = s * (J - J[0])
            A[:] = s * np.eye(3)
        elif name == "palm_width":
            s = 0.055
            A[0] = s * outer(e_w)
            D[1:] = s * ((J[1:] - J[0]) @ e_w)[:, None] * e_w
        elif name == "palm_length":
            s = 0.05
            A[0] = s * outer(e_l)
            for f, js in FINGER_JOINTS.items():
                D[js] = s * ((J[js[0]] - J[0]) @ e_l) * e_l
        elif name == "palm_thickness":
            A[0] = 0.09 * outer(e_n)
        elif name == "finger_thickness":
            for j in range(1, 16):
                A[j] = 0.09 * (np.eye(3) - outer(dirs[j]))
        elif name.endswith("_length"):
            s = 0.05
            js = FINGER_JOINTS[name[:-7]]
            for j in js:
                A[j] = s * outer(dirs[j])
                D[j] = s * (J[j] - J[js[0]])
        return D, A

    shapedirs = np.zeros((len(verts), 3, len(SHAPE_DIRECTIONS)))
    j_shapedirs = np.zeros((16, 3, len(SHAPE_DIRECTIONS)))
    for k, name in enumerate(SHAPE_DIRECTIONS):
        D, A = direction(name)
        per_joint = D[None] + np.einsum("jab,vjb->vja", A, verts[:, None] - J[None])  # (V,16,3)
        shapedirs[..., k] = np.einsum("vj,vja->va", W, per_joint)
        j_shapedirs[..., k] = D
    return {
        "v_template": verts.astype(np.float32), "faces": faces.astype(np.int32),
        "weights": W.astype(np.float32), "j_template": J.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32), "j_shapedirs": j_shapedirs.astype(np.float32),
        "parents": PARENTS.astype(np.int64), "fingertip_vertex_ids": tips.astype(np.int64),
        "shape_directions": np.array(SHAPE_DIRECTIONS), "source": np.array("WebXR generic hand right.glb (MIT)"),
    }


def main():
    model = build()
    np.savez_compressed(OUT, **model)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1024:.0f} KB): "
          f"{len(model['v_template'])} vertices, {len(model['faces'])} faces, tips {model['fingertip_vertex_ids']}")


if __name__ == "__main__":
    main()
