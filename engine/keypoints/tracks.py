"""Stable hand identities over a clip, keeping every hand MediaPipe reports.

Per frame MediaPipe reports up to two hands with a handedness label that flips now and then. We
link detections into tracklets frame to frame (palm centre nearest to where the tracklet was
heading, within a fraction of the hand's size, labels that contradict the tracklet's recent ones
costing extra: two crossing hands keep their tracks; Hungarian assignment) and give each tracklet
one side by a score-weighted vote of its frames' labels. Strongest tracklets first, each takes its
side in the frames it covers; a tracklet whose side is mostly taken by a stronger one in the same
frames is the other hand (two distinct hands in one frame are a right and a left one), and in a
frame where its side is taken, its detection goes to the other side.

So every distinct detection MediaPipe reports is kept, on one side or the other. A detection is set
aside only on positive evidence that it is wrong: it lies on another detection of the same frame
(MediaPipe reports a hand twice when the other hand hides behind it), it is a small part of one, or
it is a third hand. ``assign_sides`` counts, per side, what it received and what it set aside
(``stats``).
"""

import numpy as np

from engine.choices import SIDES

PALM = [0, 5, 9, 13, 17]
MAX_MISSING = 5  # frames a tracklet may miss and still be continued
LINK_DISTANCE = 0.75  # in hand sizes
LABEL_PENALTY = 0.5  # hand sizes, times the detection's handedness score
DUPLICATE = 0.3  # hand sizes: two detections this close are one hand
MAX_SCALE_JUMP = 1.6  # a tracklet's hand size changes less than this between detections
NESTED = 0.8  # a detection this much inside a hand MAX_SCALE_JUMP times its size is part of that hand
OTHER = {"right": "left", "left": "right"}


def _centre_and_size(kp):
    """Palm centre and hand size: the larger of the palm's length (wrist to middle MCP) and width
    (index to little MCP), so the size holds when the hand points at the camera (a thumbs-up or a
    fist: the length foreshortens) or turns edge-on (the width does)."""
    c = kp[PALM].mean(0)
    return c, max(np.linalg.norm(kp[9] - kp[0]), np.linalg.norm(kp[17] - kp[5]), 1.0)


def _predicted(tracklet, row):
    """Where a tracklet's palm centre should be at ``row``: constant velocity from its last two
    detections (so two hands crossing are told apart by where each was heading), and its size."""
    r1, d1 = tracklet[-1]
    c1, s1 = _centre_and_size(d1.keypoints_2d)
    if len(tracklet) > 1 and r1 - tracklet[-2][0] <= 2:
        r0, d0 = tracklet[-2]
        c0, _ = _centre_and_size(d0.keypoints_2d)
        c1 = c1 + (c1 - c0) / (r1 - r0) * (row - r1)
    return c1, s1


def _label_penalty(tracklet, det):
    """Cost (hand sizes) of giving ``det`` to a tracklet whose frames confidently said the other side."""
    votes = {"right": 0.0, "left": 0.0}
    for _, d in tracklet[-30:]:
        votes[d.side] += d.score
    other = "left" if det.side == "right" else "right"
    return LABEL_PENALTY * det.score if votes[other] - votes[det.side] > 2.0 else 0.0


def _box(kp):
    return np.concatenate([kp.min(0), kp.max(0)])


def _inside(small, big):
    """Fraction of the keypoint box of ``small`` inside that of ``big``."""
    a, b = _box(small), _box(big)
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    return inter / max(np.prod(a[2:] - a[:2]), 1.0)


def distinct(dets, dropped=None):
    """Drop a detection that is another one seen twice: it lies on it (mean keypoint distance under
    DUPLICATE hand sizes: MediaPipe reports a hand twice when the other hand hides behind it), or it
    is part of it (less than 1/MAX_SCALE_JUMP its size, its box NESTED inside the other's: MediaPipe
    read a few fingers of that hand as a small hand). The better-scored (larger) one stays.
    ``dropped``: a list that receives (kept detection, dropped detection, reason) triples, reason
    "duplicate" or "nested"."""
    keep = []
    for det in sorted(dets, key=lambda d: -d.score):
        _, size = _centre_and_size(det.keypoints_2d)
        reason = None
        for k in keep:
            _, size_k = _centre_and_size(k.keypoints_2d)
            if np.linalg.norm(det.keypoints_2d - k.keypoints_2d, axis=1).mean() <= DUPLICATE * size:
                reason = "duplicate"
            elif size * MAX_SCALE_JUMP < size_k and _inside(det.keypoints_2d, k.keypoints_2d) >= NESTED:
                reason = "nested"
            elif size_k * MAX_SCALE_JUMP < size and _inside(k.keypoints_2d, det.keypoints_2d) >= NESTED:
                keep.remove(k)  # the kept one is the part: the larger one stays
                if dropped is not None:
                    dropped.append((det, k, "nested"))
                break
            if reason:
                if dropped is not None:
                    dropped.append((k, det, reason))
                break
        if reason is None:
            keep.append(det)
    return keep


def link(frames, duplicates=None):
    """frames: list over frames of lists of Detection. Returns tracklets: lists of (row, detection).

    Cost of continuing a tracklet with a detection: the distance (in hand sizes) from where the
    tracklet was heading, plus a penalty when the detection's label contradicts the tracklet's
    recent confident labels; Hungarian assignment per frame. ``duplicates``: a list that receives
    (row, kept detection, dropped detection, reason) for every detection ``distinct`` set aside."""
    from scipy.optimize import linear_sum_assignment

    tracklets, active = [], []  # active: indices into tracklets
    for row, dets in enumerate(frames):
        dropped = []
        dets = distinct(dets, dropped)
        if duplicates is not None:
            duplicates.extend((row, kept, det, reason) for kept, det, reason in dropped)
        active = [t for t in active if row - tracklets[t][-1][0] <= MAX_MISSING]
        cost = np.full((len(active), len(dets)), np.inf)
        for a, t in enumerate(active):
            c0, s0 = _predicted(tracklets[t], row)
            for d, det in enumerate(dets):
                c1, s1 = _centre_and_size(det.keypoints_2d)
                dist = np.linalg.norm(c1 - c0) / max(s0, s1)
                if not 1 / MAX_SCALE_JUMP < s1 / s0 < MAX_SCALE_JUMP:
                    continue  # not the same hand at the same scale: it starts a tracklet of its own
                if dist < LINK_DISTANCE * (1 + 0.5 * (row - tracklets[t][-1][0] - 1)):
                    cost[a, d] = dist + _label_penalty(tracklets[t], det)
        used = set()
        if len(active) and len(dets):
            big = 1e6
            r, c = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            for a, d in zip(r, c):
                if cost[a, d] < big:
                    tracklets[active[a]].append((row, dets[d]))
                    used.add(d)
        for d, det in enumerate(dets):
            if d not in used:
                tracklets.append([(row, det)])
                active.append(len(tracklets) - 1)
    return tracklets


def tracklet_side(tracklet):
    """The side a tracklet's frames vote for (score-weighted) and the margin of the vote."""
    votes = {"right": 0.0, "left": 0.0}
    for _, det in tracklet:
        votes[det.side] += det.score
    side = max(votes, key=votes.get)
    return side, votes[side] - votes["left" if side == "right" else "right"]


def new_stats():
    """Per-side counters (frames): ``mediapipe_frames`` MediaPipe's own answer (frames with a hand
    its per-frame label puts on this side), ``assigned_frames`` frames this side received,
    ``duplicate`` / ``nested`` detections set aside as a copy / a part of this side's detection in the
    same frame (``distinct``),
    ``swapped`` detections placed here because a stronger track of this side's label held that frame,
    ``other_side`` frames MediaPipe labelled this side whose hand was kept as the other one (the
    clip-level identity overruled the label), ``extra_hand`` a third distinct hand in a frame."""
    return {side: {"mediapipe_frames": 0, "assigned_frames": 0, "duplicate": 0, "nested": 0, "swapped": 0, "other_side": 0,
                   "extra_hand": 0} for side in SIDES}


def assign_sides(frames, sides=SIDES, stats=None):
    """Per side, a list over frames of the chosen Detection (or None). Every distinct detection of
    a frame gets a side (see the module doc). ``stats``: a ``new_stats()`` dict, filled."""
    n = len(frames)
    out = {side: [None] * n for side in SIDES}
    duplicates = []
    tracklets = link(frames, duplicates)
    order = sorted(tracklets, key=lambda t: -(len(t) + tracklet_side(t)[1]))  # long, confident ones first
    side_of = {}  # id(detection) -> side, for the duplicate counts
    for tracklet in order:
        side, _ = tracklet_side(tracklet)
        taken = sum(out[side][row] is not None for row, _ in tracklet)
        if taken > sum(out[OTHER[side]][row] is not None for row, _ in tracklet):
            side = OTHER[side]  # it lives beside a stronger hand of its own label: it is the other hand
        for row, det in tracklet:
            here = side if out[side][row] is None else OTHER[side]
            if out[here][row] is not None:  # a third distinct hand (MediaPipe now and then reports one more)
                if stats is not None:
                    stats[side]["extra_hand"] += 1
                continue
            out[here][row] = det
            side_of[id(det)] = here
            if stats is not None:
                stats[here]["assigned_frames"] += 1
                stats[here]["swapped"] += here != side
    if stats is not None:
        for dets in frames:
            for side in SIDES:
                stats[side]["mediapipe_frames"] += any(d.side == side for d in dets)
                stats[side]["other_side"] += any(d.side == side for d in dets) and not any(
                    side_of.get(id(d)) == side for d in dets)
        for _, kept, _, reason in duplicates:
            stats[side_of[id(kept)]][reason] += 1
    return {side: out[side] for side in sides}
