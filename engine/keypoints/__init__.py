"""The keypoint front end (HMP_METHOD.md section 2).

    tracks = detect_hands(video, sides=("right",), options=KeypointOptions(...), reporter=None)
    tracks["right"]: HandTrack (keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8,
                     world_landmarks (T,21,3) m with NaN where absent, frame_ids (T,))

MediaPipe Hands in tracking mode on every frame with plain MediaPipe's settings (two hands, the
default thresholds, whatever ``sides`` asks for), stable identities per hand over the clip
(``tracks``: every distinct hand MediaPipe reports is kept on one side), per-joint confidence from
augmented views (``confidence``), a second chance for missed frames on the crop predicted from the
neighbours (``confidence.retry_gaps``), and a cache of the whole result keyed on the video's
content and the options (``cache``). External keypoints: ``load_external_keypoints``
(``external``).

``HandTrack.stats`` counts, per side, the frames MediaPipe found and what became of them (see
``STAT_NAMES``); ``frames_summary`` words them for the capture's log.
"""

import os
from dataclasses import dataclass, field

import numpy as np

from engine import result as R

# MediaPipe's C++ logging (glog/absl) writes start-up chatter to stderr: keep warnings and errors only
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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

    def cache_key(self):
        return {"views": self.views, "gamma": self.gamma, "start": self.start, "end": self.end,
                "retry_gaps": self.retry_gaps, "version": 3}


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
    "extra_hand_frames",  # detections set aside: a third distinct hand where two were kept
    "low_confidence_frames",  # kept frames whose views disagreed on every joint: confidence raised to MIN_CONFIDENCE
)
MIN_CONFIDENCE = 0.1  # a kept MediaPipe frame never has zero confidence on every joint (the fit would drop it)


@dataclass
class HandTrack:
    keypoints_2d: np.ndarray  # (T,21,2) px
    confidence: np.ndarray  # (T,21) in [0,1]
    source: np.ndarray  # (T,) uint8, engine.result.SOURCE_*
    world_landmarks: np.ndarray  # (T,21,3) m, NaN where absent
    frame_ids: np.ndarray  # (T,)
    handedness: np.ndarray = field(default=None)  # (T,) handedness score, NaN where absent
    frame_times: np.ndarray = field(default=None)  # (T,) seconds (the container's timestamps)
    stats: dict = field(default=None)  # name in STAT_NAMES -> int (None: external keypoints)

    @classmethod
    def empty(cls, frame_ids):
        T = len(frame_ids)
        return cls(np.zeros((T, 21, 2)), np.zeros((T, 21)), np.zeros(T, np.uint8), np.full((T, 21, 3), np.nan),
                   np.asarray(frame_ids, np.int64), np.full(T, np.nan), np.full(T, np.nan))

    @property
    def detected(self):
        return self.source != R.SOURCE_NONE

    def to_arrays(self, prefix):
        out = {f"{prefix}/{k}": getattr(self, k) for k in
               ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness", "frame_times")}
        for name, value in (self.stats or {}).items():
            out[f"{prefix}/stats/{name}"] = np.array(int(value), dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix):
        track = cls(*(np.asarray(arrays[f"{prefix}/{k}"]) for k in
                      ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness",
                       "frame_times")))
        stats = {name: int(arrays[f"{prefix}/stats/{name}"]) for name in STAT_NAMES
                 if f"{prefix}/stats/{name}" in arrays}
        track.stats = stats or None
        return track


def detect_hands(video, sides=("right",), options=None, reporter=None):
    """Detect, identify and score the hands of ``video`` (an engine.video.Video). See module doc."""
    from engine.keypoints import cache as cache_mod
    from engine.keypoints.tracks import assign_sides, new_stats

    options = options or KeypointOptions()
    end = video.num_frames if options.end is None else min(options.end, video.num_frames)
    total = max(0, end - options.start)
    if reporter is not None:
        reporter.stage("detect", "Detecting hands", total=total)
    key = cache_mod.key_for(video.path, options, sides) if options.use_cache else None
    if key is not None:
        cached = cache_mod.load(key)
        if cached is not None:
            if reporter is not None:
                reporter.advance(total)
                reporter.log("detections read from the cache (use --no-cache to detect again)")
            return {side: cached[side] for side in sides}
    conf_views = None
    if options.views > 0:
        from engine.keypoints.confidence import ConfidenceEstimator

        conf_views = ConfidenceEstimator(views=options.views, gamma=options.gamma)
    # Plain MediaPipe's settings whatever the sides asked for: with max_num_hands=1 MediaPipe stops
    # looking for a hand while it tracks one, so a frame where tracking fails is lost, where with two
    # it is found again in the same frame (the one-hand setting was faster and lost those frames).
    frame_ids, per_frame, times = _detect_pass(video, options, 2, conf_views, reporter)
    counts = new_stats()
    chosen = assign_sides(per_frame, sides=("right", "left"), stats=counts)
    any_frames = sum(1 for dets in per_frame if dets)
    tracks = {}
    for side in ("right", "left"):
        track = HandTrack.empty(frame_ids)
        track.frame_times = np.asarray(times, dtype=np.float64)
        low = 0
        for row, det in enumerate(chosen[side]):
            if det is None:
                continue
            track.keypoints_2d[row] = det.keypoints_2d
            track.world_landmarks[row] = det.world
            track.handedness[row] = det.score
            track.source[row] = R.SOURCE_MEDIAPIPE
            # views=0: MediaPipe is trusted fully where it detects (as the authors' code does)
            conf = det.confidence if det.confidence is not None else np.ones(21)
            if conf.max() < MIN_CONFIDENCE:  # views disagreeing is doubt, not proof the hand is not there
                conf = np.maximum(conf, MIN_CONFIDENCE)
                low += 1
            track.confidence[row] = conf
        c = counts[side]
        track.stats = {"mediapipe_frames": c["mediapipe_frames"], "mediapipe_any_frames": any_frames,
                       "kept_frames": int(track.detected.sum()), "filled_frames": 0,
                       "duplicate_frames": c["duplicate"], "nested_frames": c["nested"],
                       "other_side_frames": c["other_side"],
                       "swapped_frames": c["swapped"], "extra_hand_frames": c["extra_hand"],
                       "low_confidence_frames": low}
        tracks[side] = track
    if options.retry_gaps:
        from engine.keypoints.confidence import retry_gaps

        for side in sides:  # the hands asked for (the cache key holds the sides)
            tracks[side].stats["filled_frames"] = retry_gaps(
                video, tracks[side], estimator=conf_views, others=[track for other, track in tracks.items() if other != side])
    if key is not None:
        cache_mod.save(key, tracks)
    return {side: tracks[side] for side in sides}


def _detect_pass(video, options, max_hands, conf_views, reporter):
    from engine.keypoints.detector import HandDetector

    frame_ids, per_frame, times = [], [], []
    with HandDetector(max_hands=max_hands, tracking=True) as detector:
        for frame_id, rgb, t in video.frames(start=options.start, end=options.end, with_time=True):
            times.append(t)
            dets = detector(rgb)
            if conf_views is not None:
                for det in dets:
                    det.confidence = conf_views(rgb, det)
            frame_ids.append(frame_id)
            per_frame.append(dets)
            if reporter is not None:
                reporter.advance()
    return frame_ids, per_frame, times


def frames_summary(side, track, interpolated=None):
    """One line for the capture's log: what MediaPipe found for this hand and what was kept, or None
    (external keypoints carry no counts)."""
    st = track.stats
    if not st:
        return None
    line = (f"{side} hand: MediaPipe found {st['mediapipe_frames']} frames labelled {side} "
            f"({st['mediapipe_any_frames']} with any hand), kept {st['kept_frames']}, "
            f"filled {st['filled_frames']} on the tracked crop")
    if interpolated is not None:
        line += f" + {interpolated} interpolated"
    notes = [f"{st[k]} {what}" for k, what in (("other_side_frames", "given to the other hand"),
                                                ("duplicate_frames", "duplicates set aside"),
                                                ("nested_frames", "parts of the hand seen as a hand set aside"),
                                                ("swapped_frames", "taken over from the other hand"),
                                                ("extra_hand_frames", "third hands set aside"),
                                                ("low_confidence_frames", "with every joint in doubt (kept)"))
             if st.get(k)]
    return line + (f"; {', '.join(notes)}" if notes else "")


def load_external_keypoints(path, video, sides=("right",), start=0, end=None):
    from engine.keypoints.external import load

    return load(path, video, sides=sides, start=start, end=end)
