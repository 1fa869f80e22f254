"""The keypoint front end's data types (a leaf: numpy and engine.contract.result only).

``KeypointOptions`` (what detection is asked for, part of the cache key) and ``HandTrack`` (one
hand's keypoints over a clip), shared by detection (``engine.keypoints``), the cache
(``engine.keypoints.cache``) and external keypoints (``engine.keypoints.external``); re-exported
from ``engine.keypoints``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.contract import result as R

# augmented views per frame at most: memory and time grow with the views (the authors use 11)
MAX_VIEWS = 32


@dataclass
class KeypointOptions:
    views: int = 4  # augmented views per frame for per-joint confidence; 0: MediaPipe trusted fully
    gamma: float = None  # confidence scale in crop px (None: confidence.DEFAULT_GAMMA)
    use_cache: bool = True
    start: int = 0
    end: int = None
    retry_gaps: bool = True  # landmark model on the predicted crop where detection failed

    def cache_key(self) -> dict:
        return {"views": self.views, "gamma": self.gamma, "start": self.start, "end": self.end,
                "retry_gaps": self.retry_gaps, "version": 7}


# HandTrack.stats, frames per side: what plain MediaPipe (same settings) found and what the front end kept
STAT_NAMES = (
    "mediapipe_frames",  # frames with a hand MediaPipe's own per-frame label puts on this side
    "mediapipe_any_frames",  # frames with any hand (the clip's; the same for both sides)
    "kept_frames",  # frames kept as MediaPipe detections (source SOURCE_MEDIAPIPE)
    "filled_frames",  # frames recovered on the crop predicted from the neighbours (SOURCE_TRACKED_CROP)
    "duplicate_frames",  # detections set aside: a second copy of this hand in the same frame
    "nested_frames",  # detections set aside: a part of this hand read as a small hand (inside it)
    "other_side_frames",  # frames labelled this side whose hand the clip-level identity gave the other side
    "swapped_frames",  # detections placed here because the other hand held this side in that frame
    "relabelled_frames",  # kept frames whose own label said the other side (the hand's identity overruled a flip)
    "extra_hand_frames",  # detections set aside: a third distinct hand where two were kept
    "low_confidence_frames",  # kept frames whose views disagreed on every joint: confidence raised to MIN_CONFIDENCE
)
MIN_CONFIDENCE = 0.1  # a kept MediaPipe frame never has zero confidence on every joint (the fit would drop it)


@dataclass
class HandTrack:
    keypoints_2d: np.ndarray  # (T,21,2) px
    confidence: np.ndarray  # (T,21) in [0,1]
    source: np.ndarray  # (T,) uint8, engine.contract.result.SOURCE_*
    world_landmarks: np.ndarray  # (T,21,3) m, NaN where absent
    frame_ids: np.ndarray  # (T,)
    handedness: np.ndarray = field(default=None)  # (T,) MediaPipe's probability that it is this side's hand, NaN where absent
    frame_times: np.ndarray = field(default=None)  # (T,) seconds (the container's timestamps)
    stats: dict = field(default=None)  # name in STAT_NAMES -> int (None: external keypoints)

    @classmethod
    def empty(cls, frame_ids: np.ndarray) -> "HandTrack":
        T = len(frame_ids)
        return cls(np.zeros((T, 21, 2)), np.zeros((T, 21)), np.zeros(T, np.uint8), np.full((T, 21, 3), np.nan),
                   np.asarray(frame_ids, np.int64), np.full(T, np.nan), np.full(T, np.nan))

    @property
    def detected(self) -> np.ndarray:
        return self.source != R.SOURCE_NONE

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}/{k}": getattr(self, k) for k in
               ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness", "frame_times")}
        for name, value in (self.stats or {}).items():
            out[f"{prefix}/stats/{name}"] = np.array(int(value), dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> "HandTrack":
        track = cls(*(np.asarray(arrays[f"{prefix}/{k}"]) for k in
                      ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness",
                       "frame_times")))
        stats = {name: int(arrays[f"{prefix}/stats/{name}"]) for name in STAT_NAMES
                 if f"{prefix}/stats/{name}" in arrays}
        track.stats = stats or None
        return track
