"""The keypoint front end on real footage with real MediaPipe: detector integration, confidence
from augmented views, identities, gap retries, the cache and external keypoints."""

import io
import json

import cv2
import numpy as np
import pytest

from engine.contract import result as R
from engine.util.errors import EngineError
from engine.keypoints import (MIN_CONFIDENCE, HandTrack, KeypointOptions, detect_hands, frames_summary,
                              load_external_keypoints)
from engine.keypoints import confidence as C
from engine.keypoints import tracks as T
from engine.keypoints.detector import LABEL_TO_SIDE, Detection, HandDetector
from engine.contract.progress import Reporter
from engine.video import open_video

DATA = __import__("pathlib").Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def short():
    return open_video(DATA / "hand_short.mp4")


@pytest.fixture(scope="module")
def short_tracks(short):
    return detect_hands(short, sides=("right",), options=KeypointOptions(views=0, use_cache=False))


def frame(video, i):
    for _, rgb in video.frames(i, i + 1):
        return rgb


def test_detections_match_mediapipe_reference_on_a_portrait_clip():
    video = open_video(DATA / "asl_hand_50.mp4")
    assert (video.width, video.height, video.fps, video.num_frames) == (620, 1080, 25.0, 50)
    tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(views=0, use_cache=False))
    expected = np.load(DATA / "asl_hand_50_expected.npz")
    right = tracks["right"]
    assert right.detected.all() and not tracks["left"].detected.any()
    err = np.linalg.norm(right.keypoints_2d - expected["keypoints"][..., :2], axis=-1)
    assert err.mean() < 5.0 and err.max() < 26.0  # upstream tests accept 26 px
    world_err = np.linalg.norm(right.world_landmarks - expected["world"], axis=-1)
    assert np.median(world_err) < 0.015


def test_augmentation_back_mapping_is_exact():
    rng = np.random.default_rng(0)
    kp = rng.uniform(100, 300, (21, 2))
    for view in C.augmentations(8, seed=3) + [{"rotation": 0.0, "scale": 1.0, "shift": np.zeros(2), "flip": True,
                                                "brightness": 1.0}]:
        M = C.view_affine(kp, view)
        pts = rng.uniform(0, 500, (50, 2))
        back = C.apply_affine(C.invert_affine(M), C.apply_affine(M, pts))
        assert np.allclose(back, pts, atol=1e-9)
    # the base crop puts the hand upright and centred: wrist below the middle MCP, inside the crop
    M, _ = C.base_crop(kp)
    crop_kp = C.apply_affine(M, kp)
    assert crop_kp[0, 1] > crop_kp[9, 1] and np.all((crop_kp > 0) & (crop_kp < C.CROP))
    assert np.allclose(C.alpha_from_sigma(np.array([0.0, 4.0, 8.0, 20.0]), 8.0), [1.0, 0.5, 0.0, 0.0])


def test_confidence_is_high_on_a_clean_hand_and_drops_where_it_is_hidden(short, short_tracks):
    est = C.ConfidenceEstimator(views=8)
    rgb = frame(short, 30)
    kp = short_tracks["right"].keypoints_2d[30]
    clean, _ = est.spread(rgb, kp)
    hidden = rgb.copy()
    tip = kp[8]  # index fingertip and its last segment behind a flat grey card
    r = int(0.6 * np.linalg.norm(kp[8] - kp[6]))
    cv2.rectangle(hidden, tuple((tip - r).astype(int)), tuple((tip + r).astype(int)), (120, 120, 120), -1)
    occluded, _ = est.spread(hidden, kp)
    alpha_clean, alpha_hidden = C.alpha_from_sigma(clean, est.gamma), C.alpha_from_sigma(occluded, est.gamma)
    assert np.median(alpha_clean) > 0.5
    assert alpha_hidden[8] < alpha_clean[8] - 0.2, (alpha_clean[8], alpha_hidden[8])


def test_identity_stays_fixed_with_two_hands(short):
    # a real right hand and its mirror image (a left hand) side by side, over the whole clip
    frames = [np.concatenate([rgb, rgb[:, ::-1]], axis=1) for _, rgb in short.frames(0, 40)]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clip = f"{tmp}/two.mp4"
        w = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1280, 360))
        for f in frames:
            w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        w.release()
        tracks = detect_hands(open_video(clip), sides=("right", "left"), options=KeypointOptions(views=0, use_cache=False))
    right, left = tracks["right"], tracks["left"]
    assert right.detected.mean() > 0.8 and left.detected.mean() > 0.8
    assert (right.keypoints_2d[right.detected, 0, 0] < 640).all()  # the right hand never jumps sides
    assert (left.keypoints_2d[left.detected, 0, 0] > 640).all()


def test_gap_retry_recovers_frames_on_the_predicted_crop(short, short_tracks):
    track = HandTrack(*(np.array(getattr(short_tracks["right"], k), copy=True) for k in
                        ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness")))
    truth = track.keypoints_2d[20:23].copy()
    track.source[20:23] = R.SOURCE_NONE
    track.keypoints_2d[20:23] = 0
    track.world_landmarks[20:23] = np.nan
    recovered = C.retry_gaps(short, track)
    assert recovered == 3 and (track.source[20:23] == R.SOURCE_TRACKED_CROP).all()
    assert np.linalg.norm(track.keypoints_2d[20:23] - truth, axis=-1).mean() < 8.0
    assert np.isfinite(track.world_landmarks[20:23]).all()


def test_gap_retry_holds_one_gap_of_frames_at_a_time(short, short_tracks):
    """Two gaps far apart: one read of the clip from the first gap to the last (not one read per gap,
    each from frame 0), each gap's frames held only until it is passed (memory bounded by a gap, not
    the clip), and both are recovered as before."""
    track = HandTrack(*(np.array(getattr(short_tracks["right"], k), copy=True) for k in
                        ("keypoints_2d", "confidence", "source", "world_landmarks", "frame_ids", "handedness")))
    for gap in (slice(5, 8), slice(45, 48)):
        track.source[gap] = R.SOURCE_NONE
        track.keypoints_2d[gap] = 0
        track.world_landmarks[gap] = np.nan
    reads = []
    frames = short.frames

    def recording_frames(start=0, end=None, **kw):  # the real reader, its spans written down
        reads.append((start, end))
        return frames(start=start, end=end, **kw)

    short.frames = recording_frames
    try:
        recovered = C.retry_gaps(short, track)
    finally:
        del short.frames
    assert recovered == 6
    assert reads == [(5, 48)]  # before issue 22: one read per gap, each decoding the clip from frame 0


def test_cache_hit_skips_detection(short, tmp_path, monkeypatch):
    monkeypatch.setenv("HMP_CACHE_DIR", str(tmp_path))
    opts = KeypointOptions(views=0, end=10)
    first = detect_hands(short, options=opts)
    log = io.StringIO()
    second = detect_hands(short, options=opts, reporter=Reporter("jsonl", stream=log))
    assert "read from the cache" in log.getvalue()
    assert np.array_equal(first["right"].keypoints_2d, second["right"].keypoints_2d)
    # the hand is in view in every frame of the clip (tests/data/SOURCE.md): each frame asked for is kept
    assert second["right"].stats == first["right"].stats and first["right"].stats["kept_frames"] == opts.end
    log = io.StringIO()
    detect_hands(short, options=KeypointOptions(views=0, end=12), reporter=Reporter("jsonl", stream=log))
    assert "read from the cache" not in log.getvalue()  # other options: detected again


def test_external_keypoints_json_and_npz(short, tmp_path):
    kp = np.random.default_rng(0).uniform(50, 300, (21, 2))
    doc = {"format": "hmp-keypoints", "version": 1,
           "frames": [{"frame": 3, "hands": [{"side": "right", "keypoints": kp.tolist(), "scores": [0.5] * 21}]}]}
    (tmp_path / "k.json").write_text(json.dumps(doc))
    tracks = load_external_keypoints(tmp_path / "k.json", short, sides=("right", "left"))
    right = tracks["right"]
    assert right.source[3] == R.SOURCE_EXTERNAL and np.allclose(right.keypoints_2d[3], kp)
    assert right.confidence[3].tolist() == [0.5] * 21 and right.detected.sum() == 1
    assert not tracks["left"].detected.any()
    arr = np.full((2, 21, 2), np.nan)
    arr[1] = kp
    np.savez(tmp_path / "k.npz", frame_ids=np.array([5, 6]), **{"right/keypoints_2d": arr, "right/scores": np.ones((2, 21))})
    right = load_external_keypoints(tmp_path / "k.npz", short)["right"]
    assert right.detected.tolist().count(True) == 1 and right.source[6] == R.SOURCE_EXTERNAL


@pytest.mark.parametrize("content,message", [
    ("{not json", "cannot read keypoints file"),
    ('{"format": "other"}', "not in the hmp-keypoints JSON format"),
    ('{"format": "hmp-keypoints", "frames": [{"frame": 0, "hands": [{"side": "right", "keypoints": [[1, 2]]}]}]}',
     "malformed"),
    ('{"format": "hmp-keypoints", "frames": [{"frame": 9999, "hands": []}, {"frame": 9999, "hands": '
     '[{"side": "right", "keypoints": ' + json.dumps([[1, 2]] * 21) + "}]}]}", "outside the video"),
])
def test_corrupt_external_keypoints_are_clear_errors(short, tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(EngineError, match=message):
        load_external_keypoints(tmp_path / "bad.json", short)


def test_video_errors_and_intrinsics(tmp_path):
    from engine.video import guess_intrinsics

    with pytest.raises(EngineError, match="not found"):
        open_video(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        open_video(tmp_path / "empty.mp4")
    with pytest.raises(EngineError, match="folder"):
        open_video(tmp_path)
    K = guess_intrinsics(1280, 720)
    assert K[0, 2] == 640 and K[1, 2] == 360 and K[0, 0] == pytest.approx(640 / np.tan(np.radians(30)))
    assert guess_intrinsics(720, 1280)[0, 0] == K[0, 0]  # portrait: the same camera turned
    with pytest.raises(EngineError, match="--fov"):
        guess_intrinsics(100, 100, fov_deg=0)


def plain_mediapipe(video):
    """Per frame the hands plain MediaPipe reports: its Tasks ``HandLandmarker`` on the shipped model
    bundle, called directly (VIDEO mode at the frames' own times, two hands, default thresholds): a
    list of their labels as sides."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from engine.keypoints.detector import MODEL_BUNDLE

    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(MODEL_BUNDLE)),
                                           running_mode=vision.RunningMode.VIDEO, num_hands=2)
    rows = []
    with vision.HandLandmarker.create_from_options(options) as hands:
        for i, (_, rgb) in enumerate(video.frames()):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            res = hands.detect_for_video(image, int(round(i * 1000 / video.fps)))
            rows.append([LABEL_TO_SIDE[h[0].category_name] for h in res.handedness])
    return rows


@pytest.mark.parametrize("clip, sides", [("hand_short.mp4", ("right",)), ("squats_two_hands.mp4", ("right", "left"))])
def test_every_hand_plain_mediapipe_finds_is_kept(clip, sides):
    # one hand asked for on a one-hand clip (the default capture), and both on a real two-hand clip
    video = open_video(DATA / clip)
    plain = plain_mediapipe(video)
    tracks = detect_hands(video, sides=sides, options=KeypointOptions(views=0, use_cache=False, retry_gaps=False))
    kept = np.sum([tracks[s].source == R.SOURCE_MEDIAPIPE for s in sides], axis=0)  # (T,) hands kept a frame
    found = np.array([len(r) for r in plain])
    stats = {s: tracks[s].stats for s in sides}
    set_aside = sum(st["duplicate_frames"] + st["nested_frames"] + st["extra_hand_frames"] for st in stats.values())
    for s in sides:
        assert stats[s]["mediapipe_frames"] == sum(s in r for r in plain)  # the counts are plain MediaPipe's
        assert stats[s]["mediapipe_any_frames"] == int((found > 0).sum())
        assert stats[s]["kept_frames"] == int((tracks[s].source == R.SOURCE_MEDIAPIPE).sum())
    # every frame plain MediaPipe finds a hand in keeps one, and every hand it reports is kept but
    # those shown to be a copy or a part of the other (plain MediaPipe reports 3 hands in 2 frames of
    # the two-hand clip, max_num_hands=2 notwithstanding: one of them lies on another)
    assert ((kept > 0) == (found > 0)).all()
    # only a hand lying on (or inside) another one of the same frame is set aside: never more per
    # frame than the hands reported there beyond one
    assert kept.sum() == found.sum() - set_aside and set_aside <= np.maximum(found - 1, 0).sum()
    if len(sides) == 2:
        # where plain MediaPipe sees two hands at once, both are kept, one on each side
        assert (kept == 2).sum() >= (found >= 2).sum() - set_aside > 0
    else:
        assert stats["right"]["kept_frames"] == len(plain) >= stats["right"]["mediapipe_frames"]
    assert "MediaPipe found" in frames_summary(sides[0], tracks[sides[0]])


def test_views_in_doubt_on_every_joint_keep_the_frame(short):
    # gamma far under any spread: every joint's alpha is 0; the frames stay MediaPipe's, with a floor
    tracks = detect_hands(short, options=KeypointOptions(views=2, gamma=1e-3, use_cache=False, end=6,
                                                         retry_gaps=False))
    right = tracks["right"]
    assert (right.source == R.SOURCE_MEDIAPIPE).all()
    assert np.allclose(right.confidence, MIN_CONFIDENCE) and right.stats["low_confidence_frames"] == 6


def test_a_hand_reported_twice_or_in_part_is_still_set_aside(short_tracks):
    # real detections: the hand of frame 10, then the same hand again in one frame (a copy a few
    # pixels off), then a small hand made of its fingers inside it: one hand kept, two set aside
    track = short_tracks["right"]
    kp = track.keypoints_2d[10]

    def det(points, side="right", score=0.9):
        return Detection(side, score, points, track.world_landmarks[10])

    centre = kp[[0, 5, 9, 13, 17]].mean(0)
    part = centre + (kp - centre) * 0.3 + (kp[8] - centre) * 0.5
    frames = [[det(kp)] for _ in range(5)] + [[det(kp + 3.0, "left", 0.8), det(kp)], [det(kp), det(part, score=0.7)]]
    stats = T.new_stats()
    out = T.assign_sides(frames, stats=stats)
    assert all(d is not None for d in out["right"]) and all(d is None for d in out["left"])
    assert stats["right"]["duplicate"] == 1 and stats["right"]["nested"] == 1
    # two distinct hands in one frame, both labelled right: both kept, the weaker one as the left hand
    other = kp + [250.0, 0.0]
    frames = [[det(kp), det(other, score=0.6)] for _ in range(4)]
    stats = T.new_stats()
    out = T.assign_sides(frames, stats=stats)
    assert all(d.keypoints_2d is kp for d in out["right"]) and all(d.keypoints_2d is other for d in out["left"])
    assert stats["left"]["assigned_frames"] == 4


def test_the_shipped_model_bundle_holds_the_recorded_models():
    """The Tasks bundle in the repository is what tools/make_hand_landmarker_bundle.py builds: the
    two models with their recorded SHA-256, stored uncompressed (MediaPipe refuses a deflated one)."""
    import hashlib
    import importlib.util
    import zipfile

    from engine.keypoints.detector import LANDMARK_MEMBER, MODEL_BUNDLE, landmark_model_bytes

    spec = importlib.util.spec_from_file_location("bundle_tool", DATA.parents[1] / "tools" / "make_hand_landmarker_bundle.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with zipfile.ZipFile(MODEL_BUNDLE) as z:
        assert sorted(z.namelist()) == sorted(tool.MEMBERS)
        for member, (_, sha256) in tool.MEMBERS.items():
            assert z.getinfo(member).compress_type == zipfile.ZIP_STORED
            assert hashlib.sha256(z.read(member)).hexdigest() == sha256
    assert hashlib.sha256(landmark_model_bytes()).hexdigest() == tool.MEMBERS[LANDMARK_MEMBER][1]


def test_a_missing_model_bundle_is_one_clear_error(tmp_path, monkeypatch):
    from engine.keypoints import detector

    monkeypatch.setattr(detector, "MODEL_BUNDLE", tmp_path / "hand_landmarker.task")
    with pytest.raises(EngineError, match="hand model bundle is missing or damaged .*make_hand_landmarker_bundle"):
        HandDetector()
    (tmp_path / "hand_landmarker.task").write_bytes(b"not a zip")
    with pytest.raises(EngineError, match="missing or damaged"):
        C.LandmarkNet()


def test_video_mode_timestamps_follow_the_frames_and_always_increase(short):
    with HandDetector(max_hands=1) as det:
        # the frames' own times in ms; a repeated, reversed or missing time goes 1 ms past the last
        assert [det.timestamp_ms(t) for t in (0.0, 0.0333, 0.0333, 0.02, None, float("nan"), 0.5)] == \
            [0, 33, 34, 35, 36, 37, 500]
        # and MediaPipe accepts them: the same frame pushed twice at one time still gives an answer
        rgb = frame(short, 0)
        assert len(det(rgb, 1.0)) == 1 and len(det(rgb, 1.0)) == 1


def test_image_mode_finds_the_hand_without_tracking(short):
    with HandDetector(max_hands=2, tracking=False) as det:
        dets = det(frame(short, 5))
    assert len(dets) == 1 and dets[0].side == "right" and 0.5 < dets[0].score <= 1.0
    assert dets[0].keypoints_2d.shape == (21, 2) and dets[0].world.shape == (21, 3)
    # world landmarks are metres around the hand: a hand spans about 10-25 cm
    assert 0.08 < np.ptp(dets[0].world, axis=0).max() < 0.3


def test_views_run_only_for_the_hands_asked_for_one_batch_per_frame():
    """Issue 22: the confidence views run on the hands that will be fitted, every hand of a frame in one
    batch, and only where a detection is uncertain (anchors plus the frames between two anchors that
    disagree): a real run on the real two-hand clip, the landmark network's runs counted."""
    from engine.video import open_video

    video = open_video(str(DATA / "squats_two_hands.mp4"))
    counts = {}
    for sides in (("right",), ("right", "left")):
        C.LandmarkNet.runs = C.LandmarkNet.crops = 0
        tracks = detect_hands(video, sides=sides, options=KeypointOptions(views=4, use_cache=False, retry_gaps=False))
        kept = {side: int(tracks[side].detected.sum()) for side in sides}
        counts[sides] = (C.LandmarkNet.runs, C.LandmarkNet.crops, kept)
    runs1, crops1, kept1 = counts[("right",)]
    runs2, crops2, kept2 = counts[("right", "left")]
    # frames are held only between two anchors of a hand (never the clip's)
    assert 0 < C.HELD_MAX["views"] < 2 * C.VIEW_STRIDE and C.HELD_MAX["gaps"] == 0
    assert crops1 % 5 == 0 and crops2 % 5 == 0  # the plain crop and 4 views per hand and frame
    assert 0 < crops1 <= 5 * kept1["right"] and crops1 < crops2 <= 5 * (kept2["right"] + kept2["left"])
    assert runs1 == crops1 // 5  # one hand: one batch per frame with views
    assert runs2 < crops2 // 5  # two hands: frames where both need views share one batch
    assert runs2 <= kept2["right"] + kept2["left"]
    # and only where uncertain: fewer frames than detections have views computed
    assert crops1 // 5 < kept1["right"]
    conf = tracks["right"].confidence[tracks["right"].detected]
    assert ((conf > 0) & (conf <= 1)).any(1).all()  # every kept frame has a confidence (computed or interpolated)


def test_interpolated_views_stay_near_the_views_of_every_frame(short):
    """The views on anchor frames only (interpolated between anchors that agree) against the views on
    every frame (stride 1, the rule before issue 22): same keypoints, alpha within the calibration."""
    from engine.keypoints import confidence as conf_mod

    every = detect_hands(short, options=KeypointOptions(views=4, use_cache=False, retry_gaps=False))["right"]
    stride = conf_mod.VIEW_STRIDE
    try:
        conf_mod.VIEW_STRIDE = 1
        full = detect_hands(short, options=KeypointOptions(views=4, use_cache=False, retry_gaps=False))["right"]
    finally:
        conf_mod.VIEW_STRIDE = stride
    assert np.array_equal(every.keypoints_2d, full.keypoints_2d)
    kept = full.detected
    err = np.abs(every.confidence - full.confidence)[kept]
    assert err.mean() < 0.05 and np.percentile(err, 90) < 0.15
    assert np.array_equal(every.confidence[::stride][kept[::stride]], full.confidence[::stride][kept[::stride]])
