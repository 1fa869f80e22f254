"""The result file: the one contract between the engine and the Blender add-on.

numpy only (no torch, no bpy), so the add-on imports this very module. A result is a ``.npz``
written with ``allow_pickle=False`` semantics: every entry is a plain numeric or unicode array.

Schema v1
---------
Clip-level entries:

=================  ===========  ===========================================================
key                shape/dtype  meaning
=================  ===========  ===========================================================
schema_version     () int       ``SCHEMA_VERSION``; readers refuse newer versions
engine_version     () str       engine that wrote the file
fps                () float     frame rate of the clip
K                  (3, 3) f     camera intrinsics, pixels (OpenCV: x right, y down, z fwd)
image_size         (2,) int     width, height in pixels
frame_ids          (T,) int     index of each result frame in the source video
hand_model         () str       "default" (open WebXR-derived model) or "mano"
hands              (H,) str     hands present, each "right" or "left"
video              () str       path of the source video (informational)
stages             () int       fitting stages run: 0 per-frame, 1 stage I, 2 stage II
=================  ===========  ===========================================================

Per hand ``h`` in ``hands``, entries named ``"{h}/{field}"``:

=================  ===========  ===========================================================
global_orient      (T, 3) f     root rotation, axis-angle, camera frame (about the wrist)
hand_pose          (T, 45) f    15 joint rotations, axis-angle, parent frame, MANO order
betas              (10,) f      shape, one per hand for the clip
transl             (T, 3) f     translation, metres, camera frame
joints             (T, 21, 3) f 3D keypoints, metres, camera frame, MediaPipe order
keypoints_2d       (T, 21, 2) f detected/filled 2D keypoints, pixels
confidence         (T, 21) f    per-joint confidence alpha in [0, 1]
valid              (T,) bool    a fit exists for this frame (False: hand absent, values
                                are held from the nearest valid frame and carry no keys)
keypoint_source    (T,) uint8   ``SOURCE_*`` codes: where that frame's 2D keypoints came from
rest_joints        (16, 3) f    MANO-order joints of the hand at zero pose with ``betas``
                                (model frame, metres): the skeleton a rig is built from
=================  ===========  ===========================================================

Optional clip-level ``frame_times (T,) f``: the presentation time of each result frame in seconds
from the clip's start (variable-frame-rate videos; without it frame ``t`` is at
``(frame_ids[t] - frame_ids[0]) / fps``). Finite and non-decreasing.

Optional clip-level ``hand_size () f``: the hand model's length from the wrist to the middle finger's
knuckle at rest with betas 0 (MANO joints wrist and middle1), metres: the size the capture used
(``--hand-size``, else the model's own). Finite and positive. (Optional entries are additions
within v1: readers before them skip them unread, as any entry outside the schema.)

Values are range-checked: ``fps`` in (0, 1000], ``K`` a pinhole matrix with fx, fy > 0 and last row
(0, 0, 1), ``image_size`` positive, ``frame_ids`` >= 0 and increasing, ``stages`` 0-2,
``keypoint_source`` one of the ``SOURCE_*`` codes, ``confidence`` in [0, 1]. Entries outside the
schema are ignored by ``read`` without being decompressed (newer writers may add some).

Optional per-hand mesh (all three or none): ``rest_vertices (V, 3)``, ``faces (F, 3) int``,
``skin_weights (V, 16)``, for a skinned hand mesh at zero pose.

Optional per-hand keypoint counts, each a () int (``KEYPOINT_COUNTS``; engine.keypoints.STAT_NAMES):
the frames plain MediaPipe found for the hand and what the keypoint front end kept, filled and set
aside, for a report to read.

Posing convention (as MANO / smplx linear blend skinning): pose rotations act in frames aligned
with the model frame at rest; a point x of the rest hand goes to
``R_root @ (x - rest_joints[0]) + rest_joints[0] + transl`` under the root alone, and ``joints``
are the full forward kinematics of (global_orient, hand_pose, betas, transl).
"""

import os
import zipfile

import numpy as np

from ..util.atomic import atomic_path  # relative: this module is also imported inside the installed add-on
from .choices import SIDES

SCHEMA_VERSION = 1
TEMP_PREFIX = ".hmp-result-"  # a result being written: .hmp-result-{host}.{pid}.{random}.npz
HAND_SIDES = SIDES

SOURCE_NONE = 0  # no keypoints in this frame
SOURCE_MEDIAPIPE = 1  # MediaPipe found the hand
SOURCE_TRACKED_CROP = 2  # landmark model on a crop predicted from neighbouring frames
SOURCE_INTERPOLATED = 3  # projection of the interpolated per-frame estimate (gap fill)
SOURCE_EXTERNAL = 4  # keypoints from a user-supplied file
SOURCE_NAMES = {
    SOURCE_NONE: "none",
    SOURCE_MEDIAPIPE: "mediapipe",
    SOURCE_TRACKED_CROP: "tracked_crop",
    SOURCE_INTERPOLATED: "interpolated",
    SOURCE_EXTERNAL: "external",
}

# field -> (shape with "T"/"V"/"F" placeholders, kind) ; kind: "f" float, "i" int, "b" bool, "u" uint8
CLIP_FIELDS = {
    "schema_version": ((), "i"),
    "engine_version": ((), "s"),
    "fps": ((), "f"),
    "K": ((3, 3), "f"),
    "image_size": ((2,), "i"),
    "frame_ids": (("T",), "i"),
    "hand_model": ((), "s"),
    "hands": (("H",), "s"),
    "video": ((), "s"),
    "stages": ((), "i"),
}
HAND_FIELDS = {
    "global_orient": (("T", 3), "f"),
    "hand_pose": (("T", 45), "f"),
    "betas": ((10,), "f"),
    "transl": (("T", 3), "f"),
    "joints": (("T", 21, 3), "f"),
    "keypoints_2d": (("T", 21, 2), "f"),
    "confidence": (("T", 21), "f"),
    "valid": (("T",), "b"),
    "keypoint_source": (("T",), "u"),
    "rest_joints": ((16, 3), "f"),
}
MESH_FIELDS = {
    "rest_vertices": (("V", 3), "f"),
    "faces": (("F", 3), "i"),
    "skin_weights": (("V", 16), "f"),
}
KEYPOINT_COUNTS = ("mediapipe_frames", "mediapipe_any_frames", "kept_frames", "filled_frames", "interpolated_frames",
                   "duplicate_frames", "nested_frames", "other_side_frames", "swapped_frames", "relabelled_frames",
                   "extra_hand_frames", "low_confidence_frames")  # optional () int per hand


class ResultError(ValueError):
    """A result file is missing, unreadable, malformed or from an unsupported schema."""


class HandResult(dict):
    """One hand's arrays, keyed by the names of ``HAND_FIELDS`` (and ``MESH_FIELDS`` if present)."""

    @property
    def num_frames(self) -> int:
        return int(self["valid"].shape[0])

    @property
    def has_mesh(self) -> bool:
        return "rest_vertices" in self


class Result:
    """A validated result: clip-level fields as attributes-by-key, and ``hands[side]``."""

    def __init__(self, clip: dict, hands: dict[str, HandResult]) -> None:
        self.clip = clip  # dict of clip-level arrays / python scalars
        self.hands = hands  # dict side -> HandResult

    def __getitem__(self, key):
        return self.clip[key]

    @property
    def num_frames(self) -> int:
        return int(self.clip["frame_ids"].shape[0])

    @property
    def fps(self) -> float:
        return float(self.clip["fps"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flatten into the ``{key: array}`` layout of the file."""
        out = {}
        for key, value in self.clip.items():
            out[key] = np.asarray(value)
        out["hands"] = np.asarray(list(self.hands.keys()), dtype=np.str_)
        for side, hand in self.hands.items():
            for key, value in hand.items():
                out[f"{side}/{key}"] = np.asarray(value)
        return out


def _kind_ok(arr, kind):
    if kind == "f":
        return np.issubdtype(arr.dtype, np.floating)
    if kind == "i":
        return np.issubdtype(arr.dtype, np.integer)
    if kind == "u":
        return np.issubdtype(arr.dtype, np.integer)
    if kind == "b":
        return arr.dtype == np.bool_
    if kind == "s":
        return arr.dtype.kind == "U"
    raise AssertionError(kind)


def _check(name, arr, spec, dims):
    shape, kind = spec
    if not _kind_ok(arr, kind):
        raise ResultError(f"field '{name}' has dtype {arr.dtype}, expected {'float int int bool str'.split()['fiubs'.index(kind)]}")
    if arr.ndim != len(shape):
        raise ResultError(f"field '{name}' has shape {arr.shape}, expected {len(shape)} dimensions {shape}")
    for got, want in zip(arr.shape, shape):
        if isinstance(want, str):
            if want in dims and dims[want] != got:
                raise ResultError(f"field '{name}' has {got} along '{want}', but other fields have {dims[want]}")
            dims[want] = got
        elif got != want:
            raise ResultError(f"field '{name}' has shape {arr.shape}, expected {shape}")
    if kind == "f" and not np.all(np.isfinite(arr)):
        raise ResultError(f"field '{name}' contains NaN or infinite values")


MAX_FPS = 1000.0


def _check_ranges(clip):
    """Values a real clip can have: a positive frame rate, a pinhole K, a positive image size, frame
    ids >= 0 and increasing, a known stage count."""
    fps = float(clip["fps"])
    if not 0.0 < fps <= MAX_FPS:
        raise ResultError(f"'fps' is {fps:g}, expected a frame rate in (0, {MAX_FPS:g}]")
    K = np.asarray(clip["K"], dtype=np.float64)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and K[1, 0] == 0 and np.array_equal(K[2], [0.0, 0.0, 1.0])):
        raise ResultError(f"'K' is not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0: "
                          f"{K.tolist()}")
    size = clip["image_size"]
    if np.any(size <= 0):
        raise ResultError(f"'image_size' must be positive, got {size.tolist()}")
    ids = clip["frame_ids"]
    if ids.min() < 0:
        raise ResultError(f"'frame_ids' must be 0 or more, got {int(ids.min())}")
    if np.any(np.diff(ids) <= 0):
        raise ResultError("'frame_ids' must increase")
    if int(clip["stages"]) not in (0, 1, 2):
        raise ResultError(f"'stages' must be 0, 1 or 2, got {int(clip['stages'])}")


OPTIONAL_CLIP_FIELDS = ("frame_times", "hand_size")


def known_keys(names: list[str]) -> list[str]:
    """The entries of an archive that schema v1 reads (others are never decompressed)."""
    fields = set(CLIP_FIELDS) | set(OPTIONAL_CLIP_FIELDS)
    per_hand = set(HAND_FIELDS) | set(MESH_FIELDS) | set(KEYPOINT_COUNTS)
    return [n for n in names if n in fields or (n.count("/") == 1 and n.split("/")[0] in HAND_SIDES
                                                 and n.split("/")[1] in per_hand)]


def validate(arrays: dict) -> Result:
    """Check a ``{key: array}`` mapping against schema v1 and return a ``Result``.

    Raises ``ResultError`` naming the first problem found.
    """
    if "schema_version" not in arrays:
        raise ResultError("not an HMP result file: 'schema_version' is missing")
    try:
        version = int(np.asarray(arrays["schema_version"]))
    except (TypeError, ValueError):
        raise ResultError("'schema_version' is not an integer") from None
    if version > SCHEMA_VERSION:
        raise ResultError(
            f"result schema version {version} is newer than this reader supports ({SCHEMA_VERSION}): "
            "update the HMP Hand Capture add-on"
        )
    if version < 1:
        raise ResultError(f"invalid result schema version {version}")
    dims = {}
    clip = {}
    for name, spec in CLIP_FIELDS.items():
        if name not in arrays:
            raise ResultError(f"result file is missing the field '{name}'")
        arr = np.asarray(arrays[name])
        _check(name, arr, spec, dims)
        clip[name] = arr
    if dims["T"] < 1:
        raise ResultError("result file has no frames")
    _check_ranges(clip)
    if "frame_times" in arrays:
        times = np.asarray(arrays["frame_times"])
        _check("frame_times", times, (("T",), "f"), dims)
        if np.any(np.diff(times) < 0):
            raise ResultError("'frame_times' go backwards")
        clip["frame_times"] = times
    if "hand_size" in arrays:
        size = np.asarray(arrays["hand_size"])
        _check("hand_size", size, ((), "f"), dims)
        if not size > 0:
            raise ResultError(f"'hand_size' must be positive, got {float(size):g}")
        clip["hand_size"] = size
    hands = {}
    sides = [str(s) for s in clip["hands"]]
    if not sides:
        raise ResultError("result file contains no hand")
    for side in sides:
        if side not in HAND_SIDES:
            raise ResultError(f"unknown hand '{side}' (expected one of {HAND_SIDES})")
        if side in hands:
            raise ResultError(f"hand '{side}' is listed twice")
        hand = HandResult()
        hand_dims = {"T": dims["T"]}
        for name, spec in HAND_FIELDS.items():
            key = f"{side}/{name}"
            if key not in arrays:
                raise ResultError(f"result file is missing the field '{key}'")
            arr = np.asarray(arrays[key])
            _check(key, arr, spec, hand_dims)
            hand[name] = arr
        mesh_present = [f"{side}/{name}" in arrays for name in MESH_FIELDS]
        if any(mesh_present) and not all(mesh_present):
            missing = [n for n, p in zip(MESH_FIELDS, mesh_present) if not p]
            raise ResultError(f"hand '{side}' has a partial mesh: missing {missing}")
        if all(mesh_present):
            for name, spec in MESH_FIELDS.items():
                key = f"{side}/{name}"
                arr = np.asarray(arrays[key])
                _check(key, arr, spec, hand_dims)
                hand[name] = arr
            faces = hand["faces"]
            if faces.size and (faces.min() < 0 or faces.max() >= hand_dims["V"]):
                raise ResultError(f"'{side}/faces' index vertices out of range")
        for name in KEYPOINT_COUNTS:
            if f"{side}/{name}" in arrays:
                hand[name] = np.asarray(arrays[f"{side}/{name}"])
                _check(f"{side}/{name}", hand[name], ((), "i"), hand_dims)
                if hand[name] < 0:
                    raise ResultError(f"'{side}/{name}' is negative")
        if not hand["valid"].any():
            raise ResultError(f"hand '{side}' has no valid frame")
        unknown = sorted(set(np.unique(hand["keypoint_source"]).tolist()) - set(SOURCE_NAMES))
        if unknown:
            raise ResultError(f"'{side}/keypoint_source' holds unknown codes {unknown[:5]} "
                              f"(known: {sorted(SOURCE_NAMES)})")
        conf = hand["confidence"]
        if conf.size and (conf.min() < 0 or conf.max() > 1):
            raise ResultError(f"'{side}/confidence' is outside [0, 1]")
        hands[side] = hand
    return Result(clip, hands)


def read(path: str | os.PathLike) -> Result:
    """Read and validate a result file. Raises ``ResultError`` with a readable message."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ResultError(f"result file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ResultError(f"not an HMP result file (expected a .npz archive): {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in known_keys(data.files)}  # unknown entries: skipped unread
    except ValueError as exc:  # inside a valid archive, only object arrays (pickle) fail like this
        raise ResultError(f"result file {path} holds pickled objects, which are refused: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError, ...
        raise ResultError(f"cannot read result file {path}: {exc}") from None
    return validate(arrays)


def write(path: str | os.PathLike, result: Result | dict) -> str:
    """Validate then write ``result`` (a ``Result`` or a ``{key: array}`` dict) atomically.

    The file appears at ``path`` only once complete: a failure leaves no partial result.
    """
    arrays = result.to_arrays() if isinstance(result, Result) else {k: np.asarray(v) for k, v in result.items()}
    validate(arrays)  # never write what we would refuse to read
    path = os.fspath(path)
    with atomic_path(path, TEMP_PREFIX, ".npz") as tmp:  # also removes the temp files of killed writers
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path
