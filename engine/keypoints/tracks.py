"""One hand, one track: stable hand identities over a clip, keeping every hand MediaPipe reports.

Per frame MediaPipe reports up to two hands, each with a handedness label that flips now and then
(a fist or a thumbs-up seen end-on), and now and then the same hand twice (its palm detector finds a
tracked hand again, with another skeleton). Identity follows the continuity of position, size and
appearance, not the label:

1. ``link``: detections are linked into tracklets frame to frame (palm centre nearest to where the
   tracklet was heading, within a fraction of the hand's size, at about the same size; labels that
   contradict the tracklet's recent confident ones cost extra, so two crossing hands keep their
   tracklets; Hungarian assignment). Of two detections lying on each other in one frame
   (``distinct``), the one that continues a tracklet stays.
2. ``copies``: a tracklet whose palm lies on a longer tracklet's in every frame it has is that hand
   reported twice: set aside (counted as duplicates).
3. ``join``: the pieces of a broken chain (more than MAX_MISSING frames missed, a size jump, a far
   jump) are re-joined into hands before sides are decided: a piece that starts near where, and at
   about the size, another ended, with no frame in common, continues it (the nearest such). In a
   clip where two distinct hands are seen at once (in TWO_HANDS_SEEN frames or more), only where no
   other hand is seen in between: hands meet and part, and at a low frame rate a hand goes far
   between frames, so where one hand was last seen says little about which hand comes back there.
4. Sides: each hand's side is the vote of its frames' labels, each weighted by its handedness
   score's margin (``label_weight``). Strongest hands first; a hand seen in the same frames as a
   stronger one is the other side (two distinct hands in one frame are a right and a left one), and
   in a frame where its side is taken its detection goes to the other side. In a clip where two
   hands are never seen at once, a hand (a piece not re-joined) takes the side of the main
   (strongest) hand unless its vote is overwhelmingly the other side (``OVERWHELMING``,
   ``MIN_OWN_VOTE``: a left hand after the right one left the picture). So in a one-hand clip a
   label flip never moves the hand to the other side, and a second hand exists only where two hands
   are seen at once or where a clip-level vote says so with margin; in a two-hand clip a piece that
   continuity cannot place goes by its own weighted vote.

Every distinct detection MediaPipe reports is kept, on one side or the other. A detection is set
aside only on positive evidence that it is wrong: it lies on another detection of the same frame, or
its whole tracklet lies on another hand (MediaPipe reports a hand twice), it is a small part of one,
or it is a third hand. ``assign_sides`` counts, per side, what it received and what it set aside
(``stats``).
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from engine.contract import joints as J
from engine.contract.choices import SIDES

if TYPE_CHECKING:  # for the hints only: the detector's module loads MediaPipe's wrappers
    from engine.keypoints.detector import Detection

# a tracklet: (frame row, that frame's detection) in frame order; a hand: its tracklets in time order
Tracklet = list[tuple[int, "Detection"]]

PALM = J.PALM_MEDIAPIPE  # the wrist and the four knuckles
MAX_MISSING = 5  # frames a tracklet may miss and still be continued
LINK_DISTANCE = 0.75  # in hand sizes
LABEL_PENALTY = 0.5  # hand sizes, times the detection's handedness score
DUPLICATE = 0.3  # hand sizes: two detections this close are one hand
MAX_SCALE_JUMP = 1.6  # a tracklet's hand size changes less than this between detections
NESTED = 0.8  # a detection this much inside a hand MAX_SCALE_JUMP times its size is part of that hand
COPY = 0.5  # hand sizes between palm centres: a tracklet this close to a longer one in all its frames is a copy
REJOIN = 1.0  # hand sizes a piece may start from where another ended and continue it ...
REJOIN_PER_FRAME = 0.1  # ... plus this much per frame between them
REJOIN_SCALE = MAX_SCALE_JUMP ** 2  # size ratio across a break (a fist turning end-on foreshortens the palm)
TWO_HANDS_SEEN = 5  # frames with two distinct hands at once that make a clip a two-hand clip
OVERWHELMING = 0.9  # share of a lone hand's weighted vote the other side needs to make it a hand of its own ...
MIN_OWN_VOTE = 5.0  # ... and its margin (about this many confident frames)
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


def distinct(dets: list["Detection"], dropped: list | None = None,
             key: Callable[["Detection"], object] | None = None) -> list["Detection"]:
    """Drop a detection that is another one seen twice: it lies on it (mean keypoint distance under
    DUPLICATE hand sizes: MediaPipe reports a hand twice when the other hand hides behind it), or it
    is part of it (less than 1/MAX_SCALE_JUMP its size, its box NESTED inside the other's: MediaPipe
    read a few fingers of that hand as a small hand). Of two copies the first in ``key`` order
    stays (default: the better-scored; ``link`` puts first the one continuing a tracklet); of a hand
    and its part, the larger one. ``dropped``: a list that receives (kept detection, dropped
    detection, reason) triples, reason "duplicate" or "nested"."""
    keep = []
    for det in sorted(dets, key=key or (lambda d: -d.score)):
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


def link(frames: list[list["Detection"]], duplicates: list | None = None) -> list[Tracklet]:
    """frames: list over frames of lists of Detection. Returns tracklets: lists of (row, detection).

    Cost of continuing a tracklet with a detection: the distance (in hand sizes) from where the
    tracklet was heading, plus a penalty when the detection's label contradicts the tracklet's
    recent confident labels; Hungarian assignment per frame. Of two copies of a hand in one frame
    (``distinct``), the one continuing a tracklet at the lower cost stays. ``duplicates``: a list
    that receives (row, kept detection, dropped detection, reason) for every detection ``distinct``
    set aside."""
    from scipy.optimize import linear_sum_assignment

    tracklets, active = [], []  # active: indices into tracklets
    for row, dets in enumerate(frames):
        active = [t for t in active if row - tracklets[t][-1][0] <= MAX_MISSING]
        heading = [(*_predicted(tracklets[t], row), row - tracklets[t][-1][0]) for t in active]

        def cost(a, det):
            c0, s0, gap = heading[a]
            c1, s1 = _centre_and_size(det.keypoints_2d)
            if not 1 / MAX_SCALE_JUMP < s1 / s0 < MAX_SCALE_JUMP:
                return np.inf  # not the same hand at the same scale: it starts a tracklet of its own
            dist = np.linalg.norm(c1 - c0) / max(s0, s1)
            if dist >= LINK_DISTANCE * (1 + 0.5 * (gap - 1)):
                return np.inf
            return dist + _label_penalty(tracklets[active[a]], det)

        dropped = []
        dets = distinct(dets, dropped, key=lambda d: (min((cost(a, d) for a in range(len(active))), default=np.inf),
                                                      -d.score))
        if duplicates is not None:
            duplicates.extend((row, kept, det, reason) for kept, det, reason in dropped)
        costs = np.array([[cost(a, det) for det in dets] for a in range(len(active))]).reshape(len(active), len(dets))
        used = set()
        if len(active) and len(dets):
            big = 1e6
            r, c = linear_sum_assignment(np.where(np.isfinite(costs), costs, big))
            for a, d in zip(r, c):
                if costs[a, d] < big:
                    tracklets[active[a]].append((row, dets[d]))
                    used.add(d)
        for d, det in enumerate(dets):
            if d not in used:
                tracklets.append([(row, det)])
                active.append(len(tracklets) - 1)
    return tracklets


def _same_place(a, b):
    """Two detections whose palms lie within COPY hand sizes of each other, at about the same size."""
    ca, sa = _centre_and_size(a.keypoints_2d)
    cb, sb = _centre_and_size(b.keypoints_2d)
    return 1 / MAX_SCALE_JUMP < sa / sb < MAX_SCALE_JUMP and np.linalg.norm(ca - cb) <= COPY * max(sa, sb)


def copies(tracklets: list[Tracklet]) -> tuple[list[Tracklet], list[tuple[int, "Detection", "Detection"]]]:
    """Split off the tracklets that are another hand reported twice: in every frame it has, its palm
    lies on that of a tracklet at least as long (``_same_place``). Two real hands are apart in some
    frame of each one's tracklet (a hand hidden behind the other one mid-crossing may lose the
    frames it spends wholly behind it). -> (the other tracklets, [(row, host detection, copy)])."""
    at = {}  # row -> [(tracklet index, detection)]
    for i, t in enumerate(tracklets):
        for row, det in t:
            at.setdefault(row, []).append((i, det))
    removed, pairs = set(), []
    for i in sorted(range(len(tracklets)), key=lambda i: len(tracklets[i])):
        hosts = []
        for row, det in tracklets[i]:
            host = next((d for j, d in at[row] if j != i and j not in removed
                         and len(tracklets[j]) >= len(tracklets[i]) and _same_place(det, d)), None)
            if host is None:
                break
            hosts.append((row, host, det))
        else:
            removed.add(i)
            pairs.extend(hosts)
    return [t for i, t in enumerate(tracklets) if i not in removed], pairs


def join(tracklets: list[Tracklet], alone_between: bool = False) -> list[list[Tracklet]]:
    """Re-join the pieces of broken chains: -> hands, each a list of tracklets in time order with no
    frame in common. A piece continues the hand whose last detection (before the piece starts) lies
    nearest its first one, within REJOIN (+ REJOIN_PER_FRAME per frame between them) hand sizes and
    REJOIN_SCALE in size; a hand seen in the same frames as the piece is another hand.
    ``alone_between``: join only where no other hand is seen from the end of the one to the start
    of the other (in a clip with two hands, where a hand went is not told by where it was)."""
    at = {}  # row -> indices of the tracklets seen in it
    for i, t in enumerate(tracklets):
        for row, _ in t:
            at.setdefault(row, set()).add(i)
    hands = []  # each: [tracklet indices]
    for i in sorted(range(len(tracklets)), key=lambda i: tracklets[i][0][0]):
        start = tracklets[i][0][0]
        c1, s1 = _centre_and_size(tracklets[i][0][1].keypoints_2d)
        best, best_cost = None, np.inf
        for hand in hands:
            end, last = tracklets[hand[-1]][-1]
            if end >= start:
                continue
            if alone_between and any(at.get(row, set()) - {hand[-1], i} for row in range(end, start + 1)):
                continue
            c0, s0 = _centre_and_size(last.keypoints_2d)
            if not 1 / REJOIN_SCALE < s1 / s0 < REJOIN_SCALE:
                continue
            dist = np.linalg.norm(c1 - c0) / max(s0, s1)
            if dist > REJOIN + REJOIN_PER_FRAME * (start - end - 1):
                continue
            cost = dist + abs(np.log(s1 / s0))
            if cost < best_cost:
                best, best_cost = hand, cost
        if best is None:
            hands.append([i])
        else:
            best.append(i)
    return [[tracklets[i] for i in hand] for hand in hands]


def label_weight(det: "Detection") -> float:
    """A frame's label in a vote weighs its handedness score's margin over the other label
    (MediaPipe's score is the label's probability, 0.5 and up: 2 * score - 1; a coin toss weighs
    nothing), plus a thousandth so that a tracklet of coin tosses still votes by its frames."""
    return max(2.0 * float(det.score) - 1.0, 0.0) + 1e-3


def votes(dets: Iterable["Detection"]) -> dict[str, float]:
    """Weighted label votes {"right": w, "left": w} of detections (``label_weight``)."""
    out = {"right": 0.0, "left": 0.0}
    for det in dets:
        out[det.side] += label_weight(det)
    return out


def tracklet_side(tracklet: Tracklet) -> tuple[str, float]:
    """The side a tracklet's (or a hand's) frames vote for (``votes``) and the margin of the vote."""
    v = votes(det for _, det in tracklet)
    side = max(v, key=v.get)
    return side, v[side] - v[OTHER[side]]


def new_stats() -> dict[str, dict[str, int]]:
    """Per-side counters (frames): ``mediapipe_frames`` MediaPipe's own answer (frames with a hand
    its per-frame label puts on this side), ``assigned_frames`` frames this side received,
    ``duplicate`` / ``nested`` detections set aside as a copy / a part of this side's detection in the
    same frame (``distinct``, ``copies``),
    ``swapped`` detections placed here because a stronger hand of this side's label held that frame,
    ``other_side`` frames MediaPipe labelled this side whose hand was kept as the other one (the
    clip-level identity overruled the label), ``relabelled`` frames kept here whose own label said
    the other side (the same overruling, seen from the side that kept them), ``extra_hand`` a third
    distinct hand in a frame."""
    return {side: {"mediapipe_frames": 0, "assigned_frames": 0, "duplicate": 0, "nested": 0, "swapped": 0,
                   "other_side": 0, "relabelled": 0, "extra_hand": 0} for side in SIDES}


def assign_sides(frames: list[list["Detection"]], sides: tuple = SIDES,
                 stats: dict | None = None) -> dict[str, list["Detection | None"]]:
    """Per side, a list over frames of the chosen Detection (or None). Every distinct detection of
    a frame gets a side (see the module doc). ``stats``: a ``new_stats()`` dict, filled."""
    n = len(frames)
    out = {side: [None] * n for side in SIDES}
    duplicates = []
    tracklets, copied = copies(link(frames, duplicates))
    duplicates += [(row, host, det, "duplicate") for row, host, det in copied]
    seen = np.bincount([row for t in tracklets for row, _ in t], minlength=n)
    two_hands = int((seen >= 2).sum()) >= TWO_HANDS_SEEN  # a clip with two hands: both sides are in it
    hands = [[x for t in pieces for x in t] for pieces in join(tracklets, alone_between=two_hands)]
    rows = [{row for row, _ in hand} for hand in hands]
    alone = [not two_hands and not any(rows[i] & rows[j] for j in range(len(hands)) if j != i)
             for i in range(len(hands))]
    vote = [tracklet_side(hand) for hand in hands]
    order = sorted(range(len(hands)), key=lambda i: -(len(hands[i]) + vote[i][1]))  # long, confident ones first
    main = vote[order[0]][0] if hands else None
    side_of = {}  # id(detection) -> side, for the duplicate counts
    for i in order:
        side, margin = vote[i]
        if alone[i] and side != main:
            v = votes(det for _, det in hands[i])
            if not (v[side] >= OVERWHELMING * (v[side] + v[main]) and margin >= MIN_OWN_VOTE):
                side = main  # a lone hand whose labels do not say otherwise with margin is the main hand again
        taken = sum(out[side][row] is not None for row, _ in hands[i])
        if taken > sum(out[OTHER[side]][row] is not None for row, _ in hands[i]):
            side = OTHER[side]  # it lives beside a stronger hand of its own label: it is the other hand
        for row, det in hands[i]:
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
                stats[here]["relabelled"] += det.side != here
    if stats is not None:
        for dets in frames:
            for side in SIDES:
                stats[side]["mediapipe_frames"] += any(d.side == side for d in dets)
                stats[side]["other_side"] += any(d.side == side for d in dets) and not any(
                    side_of.get(id(d)) == side for d in dets)
        for _, kept, _, reason in duplicates:
            if id(kept) in side_of:  # (a copy of a third hand, itself set aside, is counted with it)
                stats[side_of[id(kept)]][reason] += 1
    return {side: out[side] for side in sides}
