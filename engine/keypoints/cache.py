"""Detection cache: re-fitting a clip with other fitting settings does not detect again.

Key: SHA-256 of the video file's bytes, plus the hands asked for, the keypoint options and the versions of the engine and
MediaPipe. Stored as a plain .npz (no pickle) in ``$HMP_CACHE_DIR`` or ``~/.cache/hmp_hand_capture``,
written atomically; an unreadable entry, or one that does not pass ``validate`` (shapes, dtypes,
ranges), is ignored (and detection runs again, replacing it).
"""

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.contract import result as R
from engine.keypoints.types import HandTrack
from engine.util.atomic import atomic_path, remove_stale

if TYPE_CHECKING:
    from engine.keypoints.types import KeypointOptions

SIDES = R.HAND_SIDES
TEMP_PREFIX = ".tmp-"  # an entry being written (engine.util.atomic names it after its writer)


def cache_dir() -> Path:
    """$HMP_CACHE_DIR (or ~/.cache/hmp_hand_capture), then detections/."""
    root = os.environ.get("HMP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hmp_hand_capture")
    return Path(root) / "detections"


def key_for(video_path: str | os.PathLike, options: "KeypointOptions", sides: tuple[str, ...]) -> str:
    """The cache key: the video's content, the options, the sides, the engine's and MediaPipe's versions."""
    from engine import __version__
    from engine.keypoints.detector import import_mediapipe

    mediapipe = import_mediapipe()

    h = hashlib.sha256()
    with open(video_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    h.update(json.dumps({"options": options.cache_key(), "sides": sorted(sides), "engine": __version__,
                         "mediapipe": mediapipe.__version__}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def load(key: str) -> dict[str, HandTrack] | None:
    """The cached tracks of ``key``, or None (absent, damaged or malformed: a miss)."""
    path = cache_dir() / f"{key}.npz"
    remove_stale(cache_dir(), TEMP_PREFIX, ".npz")  # left by a capture that was killed while saving
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            tracks = {side: HandTrack.from_arrays(data, side) for side in SIDES}
        validate(tracks)
        return tracks
    except Exception:  # a damaged or malformed entry is a miss (detection runs again and replaces it)
        return None


def validate(tracks: dict[str, HandTrack]) -> None:
    """Check cached tracks as strictly as a result file is checked; ValueError names the first problem."""
    frame_ids = None
    for side in SIDES:
        t = tracks[side]
        ids = np.asarray(t.frame_ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or (ids.size and ids.min() < 0):
            raise ValueError(f"{side}: frame_ids must be (T,) integers >= 0")
        if ids.size > 1 and np.any(np.diff(ids) <= 0):
            raise ValueError(f"{side}: frame_ids must increase")
        if frame_ids is not None and not np.array_equal(ids, frame_ids):
            raise ValueError("the hands' frame_ids differ")
        frame_ids, T = ids, len(ids)
        shapes = {"keypoints_2d": (T, 21, 2), "confidence": (T, 21), "source": (T,), "world_landmarks": (T, 21, 3),
                  "handedness": (T,), "frame_times": (T,)}
        for name, shape in shapes.items():
            arr = np.asarray(getattr(t, name))
            kind_ok = np.issubdtype(arr.dtype, np.integer if name == "source" else np.floating)
            if arr.shape != shape or not kind_ok:
                raise ValueError(f"{side}/{name}: {arr.dtype}{arr.shape}, expected {shape}")
        if not (np.isfinite(t.keypoints_2d).all() and np.isfinite(t.confidence).all()):
            raise ValueError(f"{side}: non-finite keypoints or confidence")
        if t.confidence.size and (t.confidence.min() < 0 or t.confidence.max() > 1):
            raise ValueError(f"{side}: confidence outside [0, 1]")
        if not np.isin(t.source, list(R.SOURCE_NAMES)).all():
            raise ValueError(f"{side}: unknown keypoint source codes")


def save(key: str, tracks: dict[str, HandTrack]) -> None:
    """Store ``tracks`` under ``key`` (atomically; a failure to write only costs the cache)."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for side in SIDES:
            arrays.update(tracks[side].to_arrays(side))
        with atomic_path(directory / f"{key}.npz", TEMP_PREFIX, ".npz") as tmp:  # + a killed save's leftovers
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    except OSError:
        pass  # a read-only home must not fail a capture: the cache is an optimisation
