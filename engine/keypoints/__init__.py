"""The keypoint front end (docs/method.md section 2).

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
from typing import TYPE_CHECKING

import numpy as np

from engine.contract import result as R
from engine.keypoints import cache as cache_mod
from engine.keypoints import external
from engine.keypoints.types import MAX_VIEWS, MIN_CONFIDENCE, STAT_NAMES, HandTrack, KeypointOptions

if TYPE_CHECKING:
    from engine.contract.progress import Reporter
    from engine.video import Video

__all__ = ["MAX_VIEWS", "MIN_CONFIDENCE", "STAT_NAMES", "HandTrack", "KeypointOptions", "detect_hands",
           "frames_summary", "load_external_keypoints"]

# MediaPipe's C++ logging (glog/absl) writes start-up chatter to stderr: keep warnings and errors only
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def detect_hands(video: "Video", sides: tuple[str, ...] = ("right",), options: KeypointOptions | None = None,
                 reporter: "Reporter | None" = None) -> dict[str, HandTrack]:
    """Detect, identify and score the hands of ``video`` (an engine.video.Video). See module doc."""
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
    # Plain MediaPipe's settings whatever the sides asked for: with max_num_hands=1 MediaPipe stops
    # looking for a hand while it tracks one, so a frame where tracking fails is lost, where with two
    # it is found again in the same frame (the one-hand setting was faster and lost those frames).
    frame_ids, per_frame, times = _detect_pass(video, options, 2, reporter)
    counts = new_stats()
    chosen = assign_sides(per_frame, sides=R.HAND_SIDES, stats=counts)
    any_frames = sum(1 for dets in per_frame if dets)
    tracks = {}
    for side in R.HAND_SIDES:
        track = HandTrack.empty(frame_ids)
        track.frame_times = np.asarray(times, dtype=np.float64)
        for row, det in enumerate(chosen[side]):
            if det is None:
                continue
            track.keypoints_2d[row] = det.keypoints_2d
            track.world_landmarks[row] = det.world
            # MediaPipe's probability that this detection is this side's hand (its label's score, or
            # one minus it where the clip-level identity overruled the label)
            track.handedness[row] = det.score if det.side == side else 1.0 - det.score
            track.source[row] = R.SOURCE_MEDIAPIPE
            track.confidence[row] = 1.0  # views=0: MediaPipe is trusted fully where it detects (as the authors' code does)
        c = counts[side]
        track.stats = {"mediapipe_frames": c["mediapipe_frames"], "mediapipe_any_frames": any_frames,
                       "kept_frames": int(track.detected.sum()), "filled_frames": 0,
                       "duplicate_frames": c["duplicate"], "nested_frames": c["nested"],
                       "other_side_frames": c["other_side"], "relabelled_frames": c["relabelled"],
                       "swapped_frames": c["swapped"], "extra_hand_frames": c["extra_hand"],
                       "low_confidence_frames": 0}
        tracks[side] = track
    if options.views > 0 or options.retry_gaps:
        from engine.keypoints.confidence import views_and_gaps

        # the hands asked for only (the cache key holds the sides): their views, batched per frame,
        # and their missed frames retried, in one more decode of the clip
        filled = views_and_gaps(video, tracks, sides, views=options.views, gamma=options.gamma,
                                retry=options.retry_gaps)
        for side, n in filled.items():
            tracks[side].stats["filled_frames"] = n
    for side in sides:
        track = tracks[side]
        kept = track.source == R.SOURCE_MEDIAPIPE
        low = kept & (track.confidence.max(1) < MIN_CONFIDENCE)
        # views disagreeing is doubt, not proof the hand is not there
        track.confidence[low] = np.maximum(track.confidence[low], MIN_CONFIDENCE)
        track.stats["low_confidence_frames"] = int(low.sum())
    if key is not None:
        cache_mod.save(key, tracks)
    return {side: tracks[side] for side in sides}


def _detect_pass(video, options, max_hands, reporter):
    from engine.keypoints.detector import HandDetector

    frame_ids, per_frame, times = [], [], []
    with HandDetector(max_hands=max_hands, tracking=True) as detector:
        for frame_id, rgb, t in video.frames(start=options.start, end=options.end, with_time=True):
            times.append(t)
            per_frame.append(detector(rgb, t))
            frame_ids.append(frame_id)
            if reporter is not None:
                reporter.advance()
    return frame_ids, per_frame, times


def frames_summary(side: str, track: HandTrack, interpolated: int | None = None) -> str | None:
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
                                                ("relabelled_frames", "labelled as the other hand kept here"),
                                                ("extra_hand_frames", "third hands set aside"),
                                                ("low_confidence_frames", "with every joint in doubt (kept)"))
             if st.get(k)]
    return line + (f"; {', '.join(notes)}" if notes else "")


def load_external_keypoints(path: str | os.PathLike, video: "Video", sides: tuple[str, ...] = ("right",),
                            start: int = 0, end: int | None = None) -> dict[str, HandTrack]:
    """Another detector's keypoints file -> tracks as ``detect_hands`` gives them (``external``)."""
    return external.load(path, video, sides=sides, start=start, end=end)
