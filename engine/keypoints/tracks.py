"""Stable hand identities over a clip.

Per frame MediaPipe reports up to two hands with a handedness label that flips now and then. We
link detections into tracklets frame to frame (nearest palm centre within a fraction of the hand's
size, Hungarian assignment), give each tracklet one side by a score-weighted vote of its frames'
labels, and per side keep, frame by frame, the detection of the strongest tracklet of that side.
So a left hand never turns into the right one mid-clip, and a short spurious detection loses to
the long track of a real hand.
"""

import numpy as np

PALM = [0, 5, 9, 13, 17]
MAX_MISSING = 5  # frames a tracklet may miss and still be continued
LINK_DISTANCE = 0.75  # in hand sizes (wrist to middle MCP)


def _centre_and_size(kp):
    c = kp[PALM].mean(0)
    return c, max(np.linalg.norm(kp[9] - kp[0]), 1.0)


def link(frames):
    """frames: list over frames of lists of Detection. Returns tracklets: lists of (row, detection)."""
    from scipy.optimize import linear_sum_assignment

    tracklets, active = [], []  # active: indices into tracklets
    for row, dets in enumerate(frames):
        active = [t for t in active if row - tracklets[t][-1][0] <= MAX_MISSING]
        cost = np.full((len(active), len(dets)), np.inf)
        for a, t in enumerate(active):
            c0, s0 = _centre_and_size(tracklets[t][-1][1].keypoints_2d)
            for d, det in enumerate(dets):
                c1, s1 = _centre_and_size(det.keypoints_2d)
                dist = np.linalg.norm(c1 - c0) / max(s0, s1)
                if dist < LINK_DISTANCE * (1 + 0.5 * (row - tracklets[t][-1][0] - 1)):
                    cost[a, d] = dist
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
