"""Detection cache: re-fitting a clip with other fitting settings does not detect again.

Key: SHA-256 of the video file's bytes, plus the hands asked for, the keypoint options and the versions of the engine and
MediaPipe. Stored as a plain .npz (no pickle) in ``$HMP_CACHE_DIR`` or ``~/.cache/hmp_hand_capture``,
written atomically; an unreadable entry is ignored (and detection runs again).
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from engine.atomic import publish

SIDES = ("right", "left")


def cache_dir():
    root = os.environ.get("HMP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hmp_hand_capture")
    return Path(root) / "detections"


def key_for(video_path, options, sides):
    import mediapipe

    from engine import __version__

    h = hashlib.sha256()
    with open(video_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    h.update(json.dumps({"options": options.cache_key(), "sides": sorted(sides), "engine": __version__,
                         "mediapipe": mediapipe.__version__}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def load(key):
    from engine.keypoints import HandTrack

    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {side: HandTrack.from_arrays(data, side) for side in SIDES}
    except Exception:  # a damaged entry is a miss, never an error
        return None


def save(key, tracks):
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for side in SIDES:
            arrays.update(tracks[side].to_arrays(side))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        publish(tmp, directory / f"{key}.npz")
    except OSError:
        pass  # a read-only home must not fail a capture: the cache is an optimisation
