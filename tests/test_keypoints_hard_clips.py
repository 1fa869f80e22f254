"""The keypoint front end on hard clips made from the real footage: a hand that enters and leaves,
a hand cut by the image border, and two hands that cross (one passing in front of the other).

The clips are built by ``enter_leave_frames`` and ``crossing_frames`` from the first 40 frames of
``tests/data/hand_short.mp4`` and its detected keypoints; benchmarks/bench_release.py builds the same
clips with them."""

import cv2
import numpy as np
import pytest

from engine.contract import result as R
from engine.keypoints import KeypointOptions, detect_hands
from engine.video import open_video

DATA = __import__("pathlib").Path(__file__).parent / "data"
W, H = 640, 360


def source_frames():
    """The first 40 frames of hand_short.mp4, their detected right hand's keypoints (40,21,2) and
    whether it was detected in each."""
    video = open_video(DATA / "hand_short.mp4")
    frames = [rgb for _, rgb in video.frames(0, 40)]
    track = detect_hands(video, sides=("right",), options=KeypointOptions(views=0, use_cache=False))["right"]
    return frames, track.keypoints_2d[:40], track.detected[:40]


@pytest.fixture(scope="module")
def source():
    frames, kp, detected = source_frames()
    assert detected.all()
    return frames, kp


def write(path, frames, size):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for f in frames:
        w.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    w.release()
    return open_video(path)


def enter_leave_frames(frames, kp):
    """40 frames: no hand (0-7), the hand (8-25), sliding out through the left border with about a
    third of it cut off (26-33), no hand (34-39). Returns the frames and each frame's shift in px
    (None: no hand)."""
    empty = np.full_like(frames[0], 90)
    out, shifts = [], []
    for t in range(40):
        if t < 8 or t >= 34:  # no hand before it enters and after it leaves
            out.append(empty.copy()), shifts.append(None)
            continue
        # frames 26..33: the hand slides out through the left border, about a third of it cut off
        dx = 0 if t < 26 else int((kp[t, :, 0].min() + 0.35 * np.ptp(kp[t, :, 0])) * (t - 25) / 8)
        shifted = np.full_like(frames[t], 90)
        shifted[:, : W - dx] = frames[t][:, dx:]
        out.append(shifted), shifts.append(dx)
    return out, shifts


def test_hand_entering_leaving_and_cut_by_the_border(source, tmp_path):
    frames, kp = source
    out, shifts = enter_leave_frames(frames, kp)
    video = write(tmp_path / "enter_leave.mp4", out, (W, H))
    track = detect_hands(video, sides=("right",), options=KeypointOptions(views=4, use_cache=False))["right"]
    present = np.array([s is not None for s in shifts])
    # no hand where there is none: not detected, and not "recovered" from a neighbouring crop either
    assert not track.detected[~present].any()
    assert (track.source[~present] == R.SOURCE_NONE).all()
    assert track.detected[8:26].mean() > 0.9
    # where it is found (cut frames included), the keypoints are where the hand is
    for t in np.flatnonzero(track.detected):
        truth = kp[t] - [shifts[t], 0]
        visible = truth[:, 0] > 5
        assert np.median(np.linalg.norm(track.keypoints_2d[t][visible] - truth[visible], axis=1)) < 12, t
    assert np.isfinite(track.confidence).all() and ((track.confidence >= 0) & (track.confidence <= 1)).all()


CROSSING_WIDTH = 1280


def crossing_frames(frames, kp):
    """40 frames of a CROSSING_WIDTH x H canvas: a right hand moving left -> right and its mirror image
    (a left hand) moving right -> left; each is pasted as its own hand region, the right one in front
    where they overlap. Returns the frames and per frame (right hand's, left hand's) keypoints."""
    Wc = CROSSING_WIDTH
    pad = 20
    out, where = [], []
    for t in range(40):
        canvas = np.full((H, Wc, 3), 90, np.uint8)
        a = int(np.interp(t, [0, 39], [0, Wc - W]))  # the right hand's frame offset
        b = Wc - W - a  # the mirrored frame's offset
        x0, x1 = int(kp[t, :, 0].min()) - pad, int(kp[t, :, 0].max()) + pad
        y0, y1 = max(0, int(kp[t, :, 1].min()) - pad), min(H, int(kp[t, :, 1].max()) + pad)
        x0, x1 = max(0, x0), min(W, x1)
        mirror = frames[t][:, ::-1]
        canvas[y0:y1, b + W - x1: b + W - x0] = mirror[y0:y1, W - x1: W - x0]
        canvas[y0:y1, a + x0: a + x1] = frames[t][y0:y1, x0:x1]
        out.append(canvas)
        where.append((kp[t] + [a, 0], np.stack([b + W - 1 - kp[t, :, 0], kp[t, :, 1]], -1)))
    return out, where


def test_two_hands_crossing_keep_their_identity(source, tmp_path):
    frames, kp = source
    out, where = crossing_frames(frames, kp)
    video = write(tmp_path / "crossing.mp4", out, (CROSSING_WIDTH, H))
    tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(views=0, use_cache=False))
    right, left = tracks["right"], tracks["left"]
    assert right.detected.mean() > 0.6 and left.detected.mean() > 0.6
    for track, own in ((right, 0), (left, 1)):
        for t in np.flatnonzero(track.detected):
            d_own = np.linalg.norm(track.keypoints_2d[t] - where[t][own], axis=1).mean()
            d_other = np.linalg.norm(track.keypoints_2d[t] - where[t][1 - own], axis=1).mean()
            # each track stays on its own hand (the other hand may be hidden behind it mid-crossing)
            assert d_own < d_other or d_own < 15, (t, own, d_own, d_other)


# Real clips of hard poses, one hand each (tests/data/SOURCE.md): a fist seen end-on turning into a
# thumbs-up at the camera (MediaPipe reports that hand twice in 6 frames), a fist and pinches, and
# the fists of the ASL alphabet.
ONE_HAND_CLIPS = ["thumbs_up_fist.mp4", "pinch_fist.mp4", "asl_fists.mp4"]


@pytest.mark.parametrize("clip", ONE_HAND_CLIPS)
def test_one_hand_clips_give_one_hand_with_every_frame_mediapipe_found(clip):
    from tests.test_keypoints import plain_mediapipe

    video = open_video(DATA / clip)
    found = np.array([len(hands) > 0 for hands in plain_mediapipe(video)])
    assert found.mean() > 0.85  # the clip is one MediaPipe handles
    # --hands both and --hands right: the sides are decided on both hands in either case, and
    # --hands right gets the right one of them (gap retries off: MediaPipe's own frames only)
    tracks = detect_hands(video, sides=("right", "left"),
                          options=KeypointOptions(views=0, use_cache=False, retry_gaps=False))
    right, left = tracks["right"], tracks["left"]
    assert not left.detected.any() and left.stats["kept_frames"] == 0  # one hand: no second hand
    # every frame plain MediaPipe finds the hand in keeps it, and only those
    assert np.array_equal(right.source == R.SOURCE_MEDIAPIPE, found)
    assert right.stats["kept_frames"] == found.sum() == right.stats["mediapipe_any_frames"]
    # the counts add up: frames labelled right, plus those labelled left kept as this hand
    assert right.stats["kept_frames"] == (right.stats["mediapipe_frames"] - right.stats["other_side_frames"]
                                          + right.stats["relabelled_frames"])


def test_two_real_hands_side_by_side_are_two_hands(tmp_path):
    # the thumbs-up clip's fist and thumbs-up (frames 60-129) beside its mirror image (a left hand)
    frames = [np.concatenate([rgb, rgb[:, ::-1]], axis=1)
              for _, rgb in open_video(DATA / "thumbs_up_fist.mp4").frames(60, 130)]
    video = write(tmp_path / "two.mp4", frames, (1280, 720))
    tracks = detect_hands(video, sides=("right", "left"),
                          options=KeypointOptions(views=0, use_cache=False, retry_gaps=False))
    right, left = tracks["right"], tracks["left"]
    assert right.detected.mean() > 0.9 and left.detected.mean() > 0.9
    assert (right.keypoints_2d[right.detected, :, 0] < 640).all()  # each hand keeps its own half
    assert (left.keypoints_2d[left.detected, :, 0] > 640).all()


def test_the_real_two_hand_clip_keeps_each_hand_on_its_labels_side():
    # squats at 5 fps: the hands meet at the chest and part, far apart between frames; the pieces
    # of the two hands are not strung together by where the other hand was last seen
    video = open_video(DATA / "squats_two_hands.mp4")
    tracks = detect_hands(video, sides=("right", "left"),
                          options=KeypointOptions(views=0, use_cache=False, retry_gaps=False))
    for side in ("right", "left"):
        st = tracks[side].stats
        assert st["kept_frames"] > 20 and st["relabelled_frames"] <= 0.1 * st["kept_frames"], (side, st)
