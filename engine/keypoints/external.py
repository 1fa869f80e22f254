"""2D keypoints from another detector (``--keypoints FILE``) in place of MediaPipe.

Two formats, 21 points per hand in MediaPipe order (wrist, thumb CMC..tip, index MCP..tip, middle,
ring, pinky), pixels of the (upright) video frame, a score in [0, 1] per point:

JSON::

    {"format": "hmp-keypoints", "version": 1,
     "frames": [{"frame": 0, "hands": [{"side": "right", "keypoints": [[u, v], ... 21],
                                         "scores": [s, ... 21]}]}, ...]}

NPZ (no pickle): ``frame_ids (T,)`` and per side ``right/keypoints_2d (T,21,2)``,
``right/scores (T,21)``; rows of NaN mean "not detected".

Frames the file does not mention have no keypoints. There are no 3D landmarks, so the per-frame
estimate fits these frames in 2D (engine.fit.init).
"""

import json
import os

import numpy as np

from engine import result as R
from engine.errors import EngineError


def _frames_from_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"cannot read keypoints file {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "hmp-keypoints" or not isinstance(doc.get("frames"), list):
        raise EngineError(f"keypoints file {path} is not in the hmp-keypoints JSON format (see engine/keypoints/external.py)")
    out = {}
    for k, frame in enumerate(doc["frames"]):
        try:
            fid = int(frame["frame"])
            for hand in frame.get("hands", []):
                kp = np.asarray(hand["keypoints"], dtype=np.float64)
                sc = np.asarray(hand.get("scores", np.ones(21)), dtype=np.float64)
                if kp.shape != (21, 2) or sc.shape != (21,) or hand["side"] not in R.HAND_SIDES:
                    raise ValueError(f"expected side right|left, 21x2 keypoints and 21 scores, got "
                                     f"{hand.get('side')!r}, {kp.shape}, {sc.shape}")
                out[(hand["side"], fid)] = (kp, sc)
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"keypoints file {path}: frame entry {k} is malformed ({exc})") from None
    return out


def _frames_from_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise EngineError(f"cannot read keypoints file {path}: {exc}") from None
    if "frame_ids" not in arrays:
        raise EngineError(f"keypoints file {path} has no 'frame_ids'")
    fids = arrays["frame_ids"].astype(np.int64)
    out = {}
    for side in R.HAND_SIDES:
        if f"{side}/keypoints_2d" not in arrays:
            continue
        kp = arrays[f"{side}/keypoints_2d"].astype(np.float64)
        sc = arrays.get(f"{side}/scores", np.ones(kp.shape[:2])).astype(np.float64)
        if kp.shape != (len(fids), 21, 2) or sc.shape != (len(fids), 21):
            raise EngineError(f"keypoints file {path}: '{side}/keypoints_2d' must be (T,21,2) and scores (T,21) "
                              f"with T={len(fids)}, got {kp.shape} and {sc.shape}")
        for i, fid in enumerate(fids):
            if np.isfinite(kp[i]).all():
                out[(side, int(fid))] = (kp[i], sc[i])
    return out


def load(path, video, sides=("right",), start=0, end=None):
    from engine.keypoints import HandTrack

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EngineError(f"keypoints file not found: {path}")
    entries = _frames_from_npz(path) if path.lower().endswith(".npz") else _frames_from_json(path)
    end = video.num_frames if end is None else min(end, video.num_frames)
    frame_ids = np.arange(start, end)
    tracks = {}
    for side in sides:
        track = HandTrack.empty(frame_ids)
        track.frame_times = frame_ids / float(video.fps)
        for row, fid in enumerate(frame_ids):
            if (side, int(fid)) in entries:
                kp, sc = entries[(side, int(fid))]
                if not (np.isfinite(kp).all() and np.isfinite(sc).all()):
                    continue
                track.keypoints_2d[row] = kp
                track.confidence[row] = np.clip(sc, 0.0, 1.0)
                track.source[row] = R.SOURCE_EXTERNAL
        tracks[side] = track
    outside = [f for (_, f) in entries if not 0 <= f < video.num_frames]
    if outside:
        raise EngineError(f"keypoints file {path} names frames outside the video (0..{video.num_frames - 1}): "
                          f"{sorted(outside)[:5]}")
    return tracks
