"""Stable hand identities over a clip.

Per frame MediaPipe reports up to two hands with a handedness label that flips now and then. We
link detections into tracklets frame to frame (palm centre nearest to where the tracklet was
heading, within a fraction of the hand's size, labels that contradict the tracklet's recent ones
costing extra: two crossing hands keep their tracks; Hungarian assignment), give each tracklet one
side by a score-weighted vote of its frames' labels, and per side keep, frame by frame, the
detection of the strongest tracklet of that side. So a left hand never turns into the right one
mid-clip, and a short spurious detection loses to the long track of a real hand.
"""

import numpy as np

PALM = [0, 5, 9, 13, 17]
MAX_MISSING = 5  # frames a tracklet may miss and still be continued
LINK_DISTANCE = 0.75  # in hand sizes (wrist to middle MCP)
LABEL_PENALTY = 0.5  # hand sizes, times the detection's handedness score
DUPLICATE = 0.3  # hand sizes: two detections this close are one hand
MAX_SCALE_JUMP = 1.6  # a tracklet's hand size changes less than this between detections


def _centre_and_size(kp):
    c = kp[PALM].mean(0)
    return c, max(np.linalg.norm(kp[9] - kp[0]), 1.0)


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


def distinct(dets):
    """Drop a detection that lies on another one (MediaPipe reports a hand twice when the other hand
    hides behind it): mean keypoint distance under DUPLICATE hand sizes; the better-scored one stays."""
    keep = []
    for det in sorted(dets, key=lambda d: -d.score):
        _, size = _centre_and_size(det.keypoints_2d)
        if all(np.linalg.norm(det.keypoints_2d - k.keypoints_2d, axis=1).mean() > DUPLICATE * size for k in keep):
            keep.append(det)
    return keep


def link(frames):
    """frames: list over frames of lists of Detection. Returns tracklets: lists of (row, detection).

    Cost of continuing a tracklet with a detection: the distance (in hand sizes) from where the
    tracklet was heading, plus a penalty when the detection's label contradicts the tracklet's
    recent confident labels; Hungarian assignment per frame."""
    from scipy.optimize import linear_sum_assignment

    tracklets, active = [], []  # active: indices into tracklets
    for row, dets in enumerate(frames):
        dets = distinct(dets)
        active = [t for t in active if row - tracklets[t][-1][0] <= MAX_MISSING]
        cost = np.full((len(active), len(dets)), np.inf)
        for a, t in enumerate(active):
            c0, s0 = _predicted(tracklets[t], row)
            for d, det in enumerate(dets):
                c1, s1 = _centre_and_size(det.keypoints_2d)
                dist = np.linalg.norm(c1 - c0) / max(s0, s1)
                if not 1 / MAX_SCALE_JUMP < s1 / s0 < MAX_SCALE_JUMP:
                    continue  # a partial or spurious detection, not the same hand at the same scale
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


def assign_sides(frames, sides=("right", "left")):
    """Per side, a list over frames of the chosen Detection (or None)."""
    n = len(frames)
    out = {side: [None] * n for side in sides}
    strength = {side: np.full(n, -np.inf) for side in sides}
    for tracklet in link(frames):
        side, margin = tracklet_side(tracklet)
        if side not in out:
            continue
        weight = len(tracklet) + margin  # long, confidently labelled tracklets win
        for row, det in tracklet:
            if weight > strength[side][row]:
                strength[side][row] = weight
                out[side][row] = det
    return out
