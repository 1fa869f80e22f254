"""One hand, one track (engine.keypoints.tracks) on synthetic detections: a hand's identity follows
the continuity of its position and size, not MediaPipe's per-frame handedness label; a second hand
exists only where two hands are seen at once, or where a clip-level vote says so with margin."""

import numpy as np
import pytest

from engine.keypoints import tracks as T
from engine.keypoints.detector import Detection


def hand(x, y, size=100.0):
    """21 keypoints (MediaPipe order) of an upright open hand whose palm is ``size`` px long,
    centred near (x, y)."""
    kp = [(0.0, 0.6)]  # wrist
    kp += [(-0.3 - 0.1 * k, 0.4 - 0.2 * k) for k in range(4)]  # thumb
    for dx in (-0.3, -0.1, 0.1, 0.3):  # index, middle, ring, little: MCP, PIP, DIP, tip
        kp += [(dx, -0.4 - 0.25 * k) for k in range(4)]
    return np.array(kp) * size + [x, y]


def det(x, y, side="right", score=0.95, size=100.0):
    return Detection(side, score, hand(x, y, size), np.zeros((21, 3)))


def kept(out, side):
    return [i for i, d in enumerate(out[side]) if d is not None]


def run(frames):
    stats = T.new_stats()
    return T.assign_sides(frames, stats=stats), stats


def test_a_broken_chain_with_flipped_labels_stays_one_hand():
    # one right hand moving slowly; MediaPipe loses it for 10 frames (> MAX_MISSING: the chain
    # breaks), then finds it again near where it was, 7 labels in 10 now flipped to left
    frames = [[det(300 + 2 * i, 300)] for i in range(30)] + [[] for _ in range(10)]
    frames += [[det(380 + 2 * i, 300, "left" if i % 10 < 7 else "right")] for i in range(30)]
    assert len(T.link(frames)) == 2  # two pieces ...
    out, stats = run(frames)
    # ... one hand: every frame kept, on one side
    assert kept(out, "right") == [i for i, f in enumerate(frames) if f] and kept(out, "left") == []
    assert stats["right"]["relabelled"] == 21 and stats["left"]["other_side"] == 21
    assert stats["right"]["swapped"] == stats["right"]["extra_hand"] == 0


def test_a_size_jump_with_flipped_labels_stays_one_hand():
    # a fist turning end-on: the palm measures 1.8x smaller from one frame to the next (the chain
    # breaks on the size jump), and the labels of the end-on fist are mostly left
    frames = [[det(300, 300, size=150.0)] for _ in range(20)]
    frames += [[det(310, 300, "left" if i % 4 else "right", score=0.8, size=85.0)] for i in range(25)]
    assert len(T.link(frames)) == 2
    out, _ = run(frames)
    assert len(kept(out, "right")) == 45 and kept(out, "left") == []


def test_a_lone_piece_far_away_joins_the_main_hand_unless_its_labels_say_otherwise_with_margin():
    first = [[det(200 + i, 300)] for i in range(40)]
    gap = [[] for _ in range(15)]
    # it comes back elsewhere (too far to be re-joined by position), its labels mostly left but
    # not overwhelmingly: still the one hand
    mixed = [[det(900, 500, "left" if i % 3 else "right")] for i in range(20)]
    out, _ = run(first + gap + mixed)
    assert len(kept(out, "right")) == 60 and kept(out, "left") == []
    # every label of the lone piece confidently left: the clip-level vote says a left hand
    left = [[det(900, 500, "left", score=0.97)] for i in range(20)]
    out, stats = run(first + gap + left)
    assert kept(out, "right") == list(range(40)) and kept(out, "left") == list(range(55, 75))
    assert stats["left"]["relabelled"] == stats["right"]["relabelled"] == 0


def test_two_hands_seen_at_once_are_two_hands_through_breaks_and_label_flips():
    # a right hand on the left of the picture and a left hand on the right, both seen in every
    # frame; the left hand is lost for 8 frames and comes back with its labels mostly flipped
    frames = []
    for i in range(60):
        f = [det(200, 300 + i, "right")]
        if not 20 <= i < 28:
            f.append(det(700, 300 - i, "right" if i >= 28 and i % 5 else "left"))
        frames.append(f)
    out, stats = run(frames)
    assert len(kept(out, "right")) == 60 and len(kept(out, "left")) == 52
    assert all(d.keypoints_2d[0, 0] < 450 for d in out["right"])  # each hand stays on its own side
    assert all(d.keypoints_2d[0, 0] > 450 for d in out["left"] if d is not None)
    assert stats["left"]["relabelled"] == 26  # the flipped labels kept as the left hand


def test_a_hand_reported_twice_over_several_frames_is_one_hand():
    # MediaPipe's palm detector finds the tracked hand again: a second detection on the same palm
    # (another skeleton: too far from the first to be a duplicate frame by frame, score 1.0), in a
    # few frames: set aside as a copy, not made into a second hand
    frames = []
    for i in range(40):
        f = [det(300, 300, score=0.95)]
        if i in (10, 12, 15, 17):
            copy = det(300, 320, score=1.0)  # its palm 0.2 hand sizes off, its fingers curled
            copy.keypoints_2d[[3, 4, 7, 8, 11, 12, 15, 16, 19, 20]] += [0.0, 80.0]
            f.append(copy)
        frames.append(f)
    out, stats = run(frames)
    assert len(kept(out, "right")) == 40 and kept(out, "left") == []
    assert all(d.score == 0.95 for d in out["right"])  # the hand that was being tracked stays
    assert stats["right"]["duplicate"] == 4


def test_the_vote_is_weighted_by_the_handedness_score():
    # 12 frames of unsure left labels (score 0.55) against 6 confident right ones (0.95): right
    frames = [[det(300, 300, "left", score=0.55)] for _ in range(12)]
    frames += [[det(300, 300, "right", score=0.95)] for _ in range(6)]
    out, _ = run(frames)
    assert len(kept(out, "right")) == 18
    assert T.label_weight(Detection("left", 0.5, None, None)) == pytest.approx(0.0, abs=1e-2)


def test_the_capture_takes_no_second_hand_from_a_handful_of_frames():
    import io
    import json
    from types import SimpleNamespace

    from engine.capture import MIN_SECOND_HAND_FRAMES, CaptureOptions, hands_found
    from engine.contract import result as R
    from engine.contract.progress import Reporter
    from engine.keypoints import HandTrack

    def track(frames):
        t = HandTrack.empty(np.arange(60))
        t.source[list(frames)] = R.SOURCE_MEDIAPIPE
        t.stats = {"kept_frames": len(frames)}
        return t

    video = SimpleNamespace(path="clip.mp4", num_frames=60)
    few = range(10, 10 + MIN_SECOND_HAND_FRAMES - 1)
    log = io.StringIO()
    found, frame_ids, _ = hands_found({"right": track(range(60)), "left": track(few)}, video,
                                      CaptureOptions(hands="both"), Reporter("jsonl", stream=log))
    assert list(found) == ["right"] and len(frame_ids) == 60
    warnings = [json.loads(line)["message"] for line in log.getvalue().splitlines()]
    assert warnings == [f"the left hand is seen in only {MIN_SECOND_HAND_FRAMES - 1} frames (the right hand in 60): "
                        "only the right hand is captured"]
    # a second hand seen in enough frames is captured, and so is a lone hand asked for alone
    found, _, _ = hands_found({"right": track(range(60)), "left": track(range(10, 10 + MIN_SECOND_HAND_FRAMES))},
                              video, CaptureOptions(hands="both"), Reporter("quiet"))
    assert list(found) == ["right", "left"]
    found, _, _ = hands_found({"left": track(few)}, video, CaptureOptions(hands="left"), Reporter("quiet"))
    assert list(found) == ["left"]


def test_in_a_two_hand_clip_a_piece_is_not_joined_across_another_hand():
    # two hands seen at once (frames 0-9); both are lost, and the right hand comes back 10 frames
    # later where the left one was last seen (at 5 fps hands go far between frames): where a hand
    # went is not told by where another was, so the piece keeps its own (confident) labels
    frames = [[det(200, 300, "right"), det(600, 300, "left")] for _ in range(10)] + [[] for _ in range(10)]
    frames += [[det(590, 300, "right")] for _ in range(8)]
    out, stats = run(frames)
    assert kept(out, "right") == list(range(10)) + list(range(20, 28)) and kept(out, "left") == list(range(10))
    assert stats["right"]["relabelled"] == stats["left"]["relabelled"] == 0
