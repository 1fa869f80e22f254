"""Bone maps: which bone of a target armature plays each of MANO's 16 joints (bpy-free, pure Python).

A map is ``{mano_joint_name: bone_name}`` (``rig.BONE_NAMES`` order: wrist, index1-3, middle1-3,
pinky1-3, ring1-3, thumb1-3); joints without a bone are simply absent. Sources:

- presets (``PRESETS``): our hand rig, Rigify's generated rig (its FK finger controls, e.g.
  ``f_index.01.R``, and ``hand_ik.R``; the DEF/ORG bones follow them through constraints), Mixamo
  (``mixamorig:RightHandIndex1``), the WebXR generic hand (one armature per side, no suffix),
  MakeHuman / MPFB2's default rig (``wrist.R``, ``finger1-1.R`` thumb .. ``finger5-3.R`` pinky);
- ``auto_map(bone_names, side)``: matches common naming schemes: side marks (.L/.R, _l/_r, -L,
  Left/Right, l_/r_ prefixes, DAZ's rHand/lIndex1), numbering 1-3, 01-03 or 0-2, MakeHuman's
  finger<N>-<K> (N from the thumb), finger synonyms
  (pointer, fore, little, small, pollex...), and prefers animator-facing bones over DEF-/ORG-/MCH-
  helpers;
- JSON presets saved by the user (``save_preset`` / ``load_preset``).
"""

import json
import re

from .engine_link import joints as J

JOINTS = tuple(J.MANO_JOINT_NAMES)  # MANO order
FINGERS = J.FINGER_NAMES  # thumb..pinky

_SIDE_LETTER = {"right": "R", "left": "L"}


def _rigify(side):
    s = _SIDE_LETTER[side]
    m = {"wrist": f"hand_ik.{s}"}
    for finger, name in (("index", "f_index"), ("middle", "f_middle"), ("ring", "f_ring"), ("pinky", "f_pinky"),
                         ("thumb", "thumb")):
        for k in range(3):
            m[f"{finger}{k + 1}"] = f"{name}.0{k + 1}.{s}"
    return m


def _mixamo(side):
    s = side.capitalize()
    m = {"wrist": f"mixamorig:{s}Hand"}
    for finger in FINGERS:
        for k in range(3):
            m[f"{finger}{k + 1}"] = f"mixamorig:{s}Hand{finger.capitalize()}{k + 1}"
    return m


def _webxr(side):
    m = {"wrist": "wrist", "thumb1": "thumb-metacarpal", "thumb2": "thumb-phalanx-proximal",
         "thumb3": "thumb-phalanx-distal"}
    for finger in FINGERS[1:]:  # the thumb above
        for k, part in enumerate(("proximal", "intermediate", "distal")):
            m[f"{finger}{k + 1}"] = f"{finger}-finger-phalanx-{part}"
    return m


# MakeHuman / MPFB2's default rig numbers the fingers from the thumb, in FINGERS' order: finger1-1..3
# (thumb, from the wrist: its first bone is the metacarpal, MANO's thumb1), finger2 index ... finger5
# pinky, each of fingers 2-5 under its metacarpal1..4 (not MANO joints: they ride along)


def _mpfb(side):
    s = _SIDE_LETTER[side]
    m = {"wrist": f"wrist.{s}"}
    for n, finger in enumerate(FINGERS):
        for k in range(3):
            m[f"{finger}{k + 1}"] = f"finger{n + 1}-{k + 1}.{s}"
    return m


PRESETS = {
    "MANO": lambda side: {j: j for j in JOINTS},
    "RIGIFY": _rigify,
    "MIXAMO": _mixamo,
    "WEBXR": _webxr,
    "MPFB": _mpfb,
}

FINGER_WORDS = {
    "thumb": ("thumb", "pollex", "thb"),
    "index": ("index", "pointer", "forefinger", "fore", "idx"),
    "middle": ("middle", "mid"),
    "ring": ("ring", "third"),
    "pinky": ("pinky", "little", "small", "pinkie", "lil"),
}
WRIST_WORDS = ("hand", "wrist")
HELPER_PREFIXES = ("def", "org", "mch", "ik", "tgt", "jnt")  # deform / mechanism bones: last resort
PART_WORDS = {"metacarpal": 0, "proximal": 1, "intermediate": 2, "middle": 2, "distal": 3}


def _tokens(name):
    """Lower-case word/number tokens; camelCase split; separators . _ - : space."""
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", name.lower()) if t]


def side_of(name):
    """'right' / 'left' / None from the usual side marks of a bone name (also DAZ's camelCase
    prefix: rHand, lIndex1)."""
    camel = re.match(r"([rl])[A-Z]", name)
    if camel:
        return "right" if camel.group(1) == "r" else "left"
    n = name.lower()
    if "right" in n:
        return "right"
    if "left" in n:
        return "left"
    if re.search(r"(^|[._\-: ])r($|[._\-: 0-9])", n):
        return "right"
    if re.search(r"(^|[._\-: ])l($|[._\-: 0-9])", n):
        return "left"
    return None


def _classify(name):
    """(joint name or None, helper?) for one bone name, ignoring the side."""
    toks = _tokens(name)
    helper = bool(toks) and toks[0] in HELPER_PREFIXES
    makehuman = re.search(r"(?:^|[^a-z])finger([1-5])-([1-3])(?:$|[^0-9])", name.lower())
    if makehuman:  # MakeHuman / MPFB2: finger<N>-<K>, N = 1 (thumb) .. 5 (pinky)
        return (FINGERS[int(makehuman.group(1)) - 1], int(makehuman.group(2))), helper
    words = [t for t in toks if not t.isdigit()]
    finger, finger_word = None, None
    for f, syn in FINGER_WORDS.items():
        hit = next((w for w in words if w in syn or (len(w) > 4 and w.startswith(syn[0]))), None)
        if hit is not None:
            finger, finger_word = f, hit
            break
    if finger is None:
        if any(w in WRIST_WORDS for w in words) and not any(w in ("tweak", "parent", "fk", "target", "pole")
                                                            for w in words):
            return "wrist", helper
        return None, helper
    if any(w in ("master", "tweak", "drv", "parent", "pole") for w in words):
        return None, helper
    part = next((PART_WORDS[w] for w in words if w in PART_WORDS and w != finger_word), None)
    numbers = [int(t) for t in toks if t.isdigit()]
    if part is None and numbers:
        part = numbers[-1]
    if part is None:
        return None, helper
    return (finger, part), helper


def auto_map(bone_names, side):
    """Best guess {joint: bone} for ``side`` from a list of bone names."""
    candidates = {}  # joint -> list of (rank, name)
    per_finger_numbers = {}
    parsed = []
    for name in bone_names:
        s = side_of(name)
        if s is not None and s != side:
            continue
        kind, helper = _classify(name)
        if kind is None:
            continue
        parsed.append((name, kind, helper, s is None))
        if kind != "wrist":
            per_finger_numbers.setdefault(kind[0], set()).add(kind[1])
    for name, kind, helper, sideless in parsed:
        rank = (helper, sideless, len(name))
        if kind == "wrist":
            candidates.setdefault("wrist", []).append((rank, name))
            continue
        finger, number = kind
        nums = sorted(per_finger_numbers[finger])
        # numbering: 1-3, 01-03 or 0-2; four bones 0-3 on a finger = metacarpal first (not a MANO
        # joint), four bones 1-4 = an end/tip bone last (Mixamo, Unreal). The thumb's first bone is
        # its metacarpal, which is MANO's thumb1.
        if finger != "thumb" and len(nums) >= 4 and nums[0] == 0:
            nums = nums[1:]
        if number not in nums[:3]:
            continue
        candidates.setdefault(f"{finger}{nums.index(number) + 1}", []).append((rank, name))
    return {joint: sorted(c)[0][1] for joint, c in candidates.items() if joint in JOINTS}


def preset_map(preset, side, bone_names=None):
    """A preset's map, keeping only bones that exist when ``bone_names`` is given."""
    m = PRESETS[preset](side)
    if bone_names is not None:
        names = set(bone_names)
        m = {j: b for j, b in m.items() if b in names}
    return m


def missing(mapping):
    return [j for j in JOINTS if j not in mapping]


def save_preset(path, mapping, side=None):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"format": "hmp-bone-map", "version": 1, "side": side,
                   "map": {j: mapping[j] for j in JOINTS if j in mapping}}, fh, indent=1)


def load_preset(path):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read bone map {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "hmp-bone-map" or not isinstance(doc.get("map"), dict):
        raise ValueError(f"{path} is not an HMP bone map")
    unknown = [j for j in doc["map"] if j not in JOINTS]
    if unknown:
        raise ValueError(f"{path} maps unknown joints: {unknown}")
    return {j: str(b) for j, b in doc["map"].items()}
