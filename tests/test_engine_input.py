"""Bad input the engine must refuse early and clearly (issue 12, items 17-18): external keypoint files that
cannot be pixels of the video's hands, malformed ones, and detection cache entries that load but are wrong."""

import json

import numpy as np
import pytest

from engine.contract import result as R
from engine.keypoints import external
from engine.util.errors import EngineError
from engine.video import open_video
from tests.test_cli import CLIP, assert_clean_failure, run_main


@pytest.fixture(scope="module")
def video():
    return open_video(CLIP)  # 640x360, 60 frames


def hand(seed=0, centre=(320.0, 180.0), size=80.0):
    """A plausible hand: 21 points spread over ``size`` px about ``centre``."""
    return np.asarray(centre) + np.random.default_rng(seed).uniform(-size / 2, size / 2, (21, 2))


def write_json(path, frames):
    doc = {"format": "hmp-keypoints", "version": 1,
           "frames": [{"frame": f, "hands": [{"side": "right", "keypoints": np.asarray(kp).tolist()}]}
                      for f, kp in frames]}
    path.write_text(json.dumps(doc))
    return path


def test_plausible_keypoints_load(tmp_path, video):
    path = write_json(tmp_path / "k.json", [(f, hand(f)) for f in range(10)])
    track = external.load(path, video, end=10)["right"]
    assert (track.source == R.SOURCE_EXTERNAL).all() and np.allclose(track.keypoints_2d[3], hand(3))


@pytest.mark.parametrize("case, transform, message", [
    ("normalised", lambda kp: kp / [640.0, 360.0], "looks normalised; expected pixel coordinates of the 640x360 "
                                                   "video frame (u right, v down): multiply u by 640 and v by 360"),
    ("far away", lambda kp: kp + [0.0, 5000.0], "lie far outside the image (first: right hand, frame 0"),
    ("huge", lambda kp: kp * 1e300, "lie far outside the image"),
    ("collapsed", lambda kp: np.zeros_like(kp) + [320.0, 180.0], "have all 21 points within 2 px of each other"),
])
def test_implausible_keypoints_are_refused_saying_what_was_expected(tmp_path, video, case, transform, message):
    path = write_json(tmp_path / "k.json", [(f, transform(hand(f))) for f in range(5)])
    with pytest.raises(EngineError, match="expected pixel coordinates") as info:
        external.load(path, video)
    assert message in str(info.value)


def test_one_bad_frame_among_good_ones_is_named(tmp_path, video):
    frames = [(f, hand(f)) for f in range(8)]
    frames[5] = (5, hand(5) * 0 + 7.0)  # collapsed
    with pytest.raises(EngineError, match="1 hand\\(s\\) have all 21 points .* frame 5"):
        external.load(write_json(tmp_path / "k.json", frames), video)


@pytest.mark.parametrize("frame_ids, message", [
    (np.zeros((2, 3), np.int64), "must be a 1-D array"),
    (np.array(["0", "1", "2"]), "must be a 1-D array"),
    (np.array([0.0, 1.5, 2.0]), "whole frame numbers"),
    (np.array([0, -1, 2]), "whole frame numbers >= 0"),
    (np.array([0.0, 1e300, 2.0]), "far beyond any video"),
    (np.array([0, 10 ** 15, 2]), "outside the video"),
])
def test_malformed_npz_frame_ids_are_refused(tmp_path, video, frame_ids, message):
    path = tmp_path / "k.npz"
    kp = np.stack([hand(i) for i in range(3)])
    np.savez(path, frame_ids=frame_ids, **{"right/keypoints_2d": kp})
    with pytest.raises(EngineError, match=message):
        external.load(path, video)


@pytest.mark.parametrize("frame", ["3", 2.5, True, -4, None, [1], 1e300, 10 ** 400])
def test_malformed_json_frame_numbers_are_refused(tmp_path, video, frame):
    doc = {"format": "hmp-keypoints", "frames": [{"frame": frame, "hands": [{"side": "right",
                                                                            "keypoints": hand().tolist()}]}]}
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(EngineError, match="malformed|outside the video"):
        external.load(tmp_path / "k.json", video)


def test_huge_integer_keypoints_are_refused(tmp_path, video):
    doc = {"format": "hmp-keypoints", "frames": [{"frame": 0, "hands": [{"side": "right",
                                                                        "keypoints": [[10 ** 400, 1]] * 21}]}]}
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(EngineError, match="malformed"):
        external.load(tmp_path / "k.json", video)


def test_normalised_keypoints_through_the_command_line(tmp_path):
    path = write_json(tmp_path / "k.json", [(f, hand(f) / [640.0, 360.0]) for f in range(5)])
    out = tmp_path / "r.npz"
    assert_clean_failure(run_main("capture", CLIP, "--out", out, "--keypoints", path, "--progress", "quiet"), out,
                         "looks normalised")


def test_cache_entry_with_wrong_shapes_is_a_miss_and_is_replaced(tmp_path, monkeypatch, video):
    from engine.keypoints import KeypointOptions, cache, detect_hands

    monkeypatch.setenv("HMP_CACHE_DIR", str(tmp_path))
    options = KeypointOptions(views=0, end=6, retry_gaps=False)
    key = cache.key_for(video.path, options, ("right",))
    T = 6
    good = {"keypoints_2d": np.zeros((T, 21, 2)), "confidence": np.zeros((T, 21)), "source": np.zeros(T, np.uint8),
            "world_landmarks": np.zeros((T, 21, 3)), "frame_ids": np.arange(T), "handedness": np.zeros(T),
            "frame_times": np.zeros(T)}
    bad = dict(good, keypoints_2d=np.zeros((T, 21, 3)))  # loads, but the wrong shape
    arrays = {f"{side}/{k}": v for side in ("right", "left") for k, v in (bad if side == "right" else good).items()}
    cache.cache_dir().mkdir(parents=True)
    np.savez(cache.cache_dir() / f"{key}.npz", **arrays)
    assert cache.load(key) is None  # refused like a malformed result
    tracks = detect_hands(video, options=options)
    assert tracks["right"].keypoints_2d.shape == (T, 21, 2) and tracks["right"].detected.mean() > 0.5
    again = cache.load(key)  # detection replaced the entry with a valid one
    assert again is not None and np.allclose(again["right"].keypoints_2d, tracks["right"].keypoints_2d)
    for name, value in [("confidence", np.full((T, 21), 2.0)), ("source", np.full(T, 9, np.uint8)),
                        ("frame_ids", np.arange(T)[::-1].copy()), ("keypoints_2d", np.full((T, 21, 2), np.nan))]:
        broken = dict(good, **{name: value})
        np.savez(cache.cache_dir() / f"{key}.npz",
                 **{f"{side}/{k}": v for side in ("right", "left") for k, v in broken.items()})
        assert cache.load(key) is None, name
