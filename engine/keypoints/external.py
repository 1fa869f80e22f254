"""2D keypoints from another detector (``--keypoints FILE``) in place of MediaPipe.

Two formats, 21 points per hand in MediaPipe order (wrist, thumb CMC..tip, index MCP..tip, middle,
ring, pinky), pixels of the (upright) video frame, a score in [0, 1] per point:

JSON::

    {"format": "hmp-keypoints", "version": 1,
     "frames": [{"frame": 0, "hands": [{"side": "right", "keypoints": [[u, v], ... 21],
                                         "scores": [s, ... 21]}]}, ...]}

NPZ (no pickle): ``frame_ids (T,)`` and per side ``right/keypoints_2d (T,21,2)``,
``right/scores (T,21)``; rows of NaN mean "not detected".

Frames the file does not mention have no keypoints. Implausible files are refused with what was
expected: coordinates that all lie in 0..1 (normalised, not pixels), hands far outside the frame
(more than one image width or height beyond it), a hand whose 21 points sit within 2 px of each other. There are no 3D landmarks, so the per-frame
estimate fits these frames in 2D (engine.fit.per_frame).
"""

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from engine.contract import result as R
from engine.keypoints.types import HandTrack
from engine.util.errors import EngineError

if TYPE_CHECKING:
    from engine.video import Video


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
            fid = _frame_number(frame["frame"])
            for hand in frame.get("hands", []):
                kp = np.asarray(hand["keypoints"], dtype=np.float64)
                sc = np.asarray(hand.get("scores", np.ones(21)), dtype=np.float64)
                if kp.shape != (21, 2) or sc.shape != (21,) or hand["side"] not in R.HAND_SIDES:
                    raise ValueError(f"expected side right|left, 21x2 keypoints and 21 scores, got "
                                     f"{hand.get('side')!r}, {kp.shape}, {sc.shape}")
                out[(hand["side"], fid)] = (kp, sc)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
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
    raw = arrays["frame_ids"]
    if raw.ndim != 1 or raw.dtype.kind not in "iuf" or (raw.dtype.kind == "f" and not (
            np.isfinite(raw).all() and np.array_equal(raw, np.round(raw)))) or (raw.size and raw.min() < 0):
        raise EngineError(f"keypoints file {path}: 'frame_ids' must be a 1-D array of whole frame numbers >= 0, "
                          f"got {raw.dtype} {raw.shape}")
    fids = raw.astype(np.int64) if raw.dtype.kind != "f" or raw.size == 0 or raw.max() < 2 ** 62 else None
    if fids is None:
        raise EngineError(f"keypoints file {path}: 'frame_ids' holds frame numbers far beyond any video")
    out = {}
    for side in R.HAND_SIDES:
        if f"{side}/keypoints_2d" not in arrays:
            continue
        kp, sc = arrays[f"{side}/keypoints_2d"], arrays.get(f"{side}/scores")
        if kp.dtype.kind not in "iuf" or (sc is not None and sc.dtype.kind not in "iuf"):
            raise EngineError(f"keypoints file {path}: '{side}/keypoints_2d' and '{side}/scores' must be numbers, "
                              f"got {kp.dtype}" + (f" and {sc.dtype}" if sc is not None else ""))
        kp = kp.astype(np.float64)
        sc = (np.ones(kp.shape[:2]) if sc is None else sc).astype(np.float64)
        if kp.shape != (len(fids), 21, 2) or sc.shape != (len(fids), 21):
            raise EngineError(f"keypoints file {path}: '{side}/keypoints_2d' must be (T,21,2) and scores (T,21) "
                              f"with T={len(fids)}, got {kp.shape} and {sc.shape}")
        for i, fid in enumerate(fids):
            if np.isfinite(kp[i]).all():
                out[(side, int(fid))] = (kp[i], sc[i])
    return out


def _frame_number(value):
    """A JSON frame number: a whole number >= 0 (5 or 5.0; not "5", 5.5, true or -1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not (np.isfinite(value) and value == int(value))):
        raise ValueError(f"'frame' must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"'frame' must be 0 or more, got {value!r}")
    return int(value)


MIN_SPREAD_PX = 2.0  # a hand narrower than this in both directions is collapsed onto a point


def check_plausible(path: str, entries: dict, width: int, height: int) -> None:
    """Refuse keypoints that cannot be pixels of this video's hands: normalised 0..1 coordinates, hands
    far outside the frame, all 21 points on one spot. ``entries``: {(side, frame): (kp (21,2), scores)}."""
    points = [(key, kp) for key, (kp, _) in sorted(entries.items()) if np.isfinite(kp).all()]
    if not points:
        return
    every = np.stack([kp for _, kp in points])  # (N,21,2)
    expected = f"expected pixel coordinates of the {width}x{height} video frame (u right, v down)"
    if width > 2 and height > 2 and every.min() >= 0.0 and every.max() <= 1.0:
        raise EngineError(f"keypoints file {path}: every coordinate is between 0 and 1, which looks normalised; "
                          f"{expected}: multiply u by {width} and v by {height}")
    far = [key for key, kp in points if not (np.all((kp[:, 0] >= -width) & (kp[:, 0] <= 2 * width))
                                              and np.all((kp[:, 1] >= -height) & (kp[:, 1] <= 2 * height)))]
    if far:
        (side, frame), kp = far[0], entries[far[0]][0]
        raise EngineError(f"keypoints file {path}: {len(far)} hand(s) lie far outside the image (first: {side} hand, "
                          f"frame {frame}, around u={kp[:, 0].mean():.4g}, v={kp[:, 1].mean():.4g}); {expected}")
    spread = {key: float(np.ptp(kp, axis=0).max()) for key, kp in points}
    flat = [key for key, value in spread.items() if value < MIN_SPREAD_PX]
    if flat:
        side, frame = flat[0]
        raise EngineError(f"keypoints file {path}: {len(flat)} hand(s) have all 21 points within {MIN_SPREAD_PX:g} px "
                          f"of each other (first: {side} hand, frame {frame}, spread {spread[flat[0]]:.3g} px); "
                          f"{expected}, spread over the hand")


def load(path: str | os.PathLike, video: "Video", sides: tuple[str, ...] = ("right",), start: int = 0,
         end: int | None = None) -> dict[str, HandTrack]:
    """The keypoints file at ``path`` (JSON or npz, see the module docstring) -> {side: HandTrack} over
    ``start``..``end``; EngineError for a missing, malformed or implausible file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EngineError(f"keypoints file not found: {path}")
    entries = _frames_from_npz(path) if path.lower().endswith(".npz") else _frames_from_json(path)
    outside = [f for (_, f) in entries if not 0 <= f < video.num_frames]
    if outside:
        raise EngineError(f"keypoints file {path} names frames outside the video (0..{video.num_frames - 1}): "
                          f"{sorted(outside)[:5]}")
    check_plausible(path, entries, video.width, video.height)
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
    return tracks
