"""The keypoint front end (HMP_METHOD.md section 2).

    tracks = detect_hands(video, sides=("right",), options=KeypointOptions(...), reporter=None)
    tracks["right"]: HandTrack (keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8,
                     world_landmarks (T,21,3) m with NaN where absent, frame_ids (T,))

MediaPipe Hands in tracking mode on every frame, stable identities per hand over the clip
(``tracks``), per-joint confidence from augmented views (``confidence``), a second chance for
missed frames on the crop predicted from the neighbours (``confidence.retry_gaps``), and a cache of
the whole result keyed on the video's content and the options (``cache``). External keypoints:
``load_external_keypoints`` (``external``).
"""

import os
from dataclasses import dataclass, field

import numpy as np

from engine import result as R

# MediaPipe's C++ logging (glog/absl) writes start-up chatter to stderr: keep warnings and errors only
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
                "retry_gaps": self.retry_gaps, "version": 2}


@dataclass
class HandTrack:
    keypoints_2d: np.ndarray  # (T,21,2) px
    confidence: np.ndarray  # (T,21) in [0,1]
    source: np.ndarray  # (T,) uint8, engine.result.SOURCE_*
    world_landmarks: np.ndarray  # (T,21,3) m, NaN where absent
    frame_ids: np.ndarray  # (T,)
    handedness: np.ndarray = field(default=None)  # (T,) handedness score, NaN where absent
    frame_times: np.ndarray = field(default=None)  # (T,) seconds (the container's timestamps)

    @classmethod
    def empty(cls, frame_ids):
        T = len(frame_ids)
        return cls(np.zeros((T, 21, 2)), np.zeros((T, 21)), np.zeros(T, np.uint8), np.full((T, 21, 3), np.nan),
                   np.asarray(frame_ids, np.int64), np.full(T, np.nan), np.full(T, np.nan))

    @property
    def detected(self):
        return self.source != R.SOURCE_NONE

    def to_arrays(self, prefix):
        return {f"{prefix}/{k}": getattr(self, k) for k in
                ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness", "frame_times")}

    @classmethod
    def from_arrays(cls, arrays, prefix):
        return cls(*(np.asarray(arrays[f"{prefix}/{k}"]) for k in
                     ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness",
                      "frame_times")))


def detect_hands(video, sides=("right",), options=None, reporter=None):
    """Detect, identify and score the hands of ``video`` (an engine.video.Video). See module doc."""
    from engine.keypoints import cache as cache_mod
    from engine.keypoints.tracks import assign_sides

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
    # One hand wanted: track one hand (MediaPipe skips palm detection while it tracks max_num_hands
    # hands, about 3x faster). If that hand turns out to be mostly the other side (a two-handed clip),
    # detect again tracking two.
    max_hands = 2 if len(sides) > 1 else 1
    frame_ids, per_frame, times = _detect_pass(video, options, max_hands, conf_views, reporter)
    if max_hands == 1:
        seen = sum(1 for dets in per_frame if dets)
        wanted = sum(1 for dets in per_frame for d in dets if d.side == sides[0])
        if seen and wanted < 0.5 * seen:
            if reporter is not None:
                reporter.log(f"the tracked hand is mostly not the {sides[0]} one: detecting again with two hands")
                reporter.stage("detect", "Detecting hands (two)", total=total)
            frame_ids, per_frame, times = _detect_pass(video, options, 2, conf_views, reporter)
    chosen = assign_sides(per_frame, sides=("right", "left"))
    tracks = {}
    for side in ("right", "left"):
        track = HandTrack.empty(frame_ids)
        track.frame_times = np.asarray(times, dtype=np.float64)
        for row, det in enumerate(chosen[side]):
            if det is None:
                continue
            track.keypoints_2d[row] = det.keypoints_2d
            track.world_landmarks[row] = det.world
            track.handedness[row] = det.score
            track.source[row] = R.SOURCE_MEDIAPIPE
            # views=0: MediaPipe is trusted fully where it detects (as the authors' code does)
            track.confidence[row] = det.confidence if det.confidence is not None else 1.0
        tracks[side] = track
    if options.retry_gaps:
        from engine.keypoints.confidence import retry_gaps

        for side in sides:  # the hands asked for (the cache key holds the sides)
            retry_gaps(video, tracks[side], estimator=conf_views,
                       others=[track for other, track in tracks.items() if other != side])
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


def load_external_keypoints(path, video, sides=("right",), start=0, end=None):
    from engine.keypoints.external import load

    return load(path, video, sides=sides, start=start, end=end)
