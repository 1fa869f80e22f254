"""The fit on real footage (real MediaPipe on a real clip, the real prior): it stays on the confident
detections and is smoother than them. No ground truth here: engine.evaluation.report measures the fit against
the detections it was made from."""

from pathlib import Path

import numpy as np
import pytest

from engine.capture import QUALITY_PRESETS
from engine.evaluation.report import hand_report
from engine.fit.per_frame import per_frame_estimate
from engine.fit.stages import FitOptions, fit_stages
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.prior import load_prior
from engine.video import guess_intrinsics, open_video

CLIP = Path(__file__).parent / "data" / "hand_short.mp4"


@pytest.fixture(scope="module")
def fitted():
    video = open_video(CLIP)
    K = np.asarray(guess_intrinsics(video.width, video.height), np.float64)
    track = detect_hands(video, sides=("right",), options=KeypointOptions(views=0, use_cache=False))["right"]
    model = load_hand_model("right")
    est = per_frame_estimate(model, track, K, video.fps)
    iters = QUALITY_PRESETS["draft"]["iters"]
    figures = {"per-frame": est["joints"]}
    each = fit_stages(model, load_prior(), est, est["keypoints_2d"], est["confidence"], K, video.fps, stages=2,
                      options=FitOptions(iters_stage1=iters[0], iters_stage2=iters[1]))
    for name, (out, warnings) in zip(("stage I", "stage II"), each):
        assert not warnings
        figures[name] = out["joints"]
    report = {name: hand_report(j, est["keypoints_2d"], est["confidence"], est["keypoint_source"], est["valid"], K)
              for name, j in figures.items()}
    report["frames in the clip"] = video.num_frames
    return report


def test_fit_stays_on_confident_detections(fitted):
    per_frame, stage2 = fitted["per-frame"], fitted["stage II"]
    # the hand is in view in every frame of the clip (tests/data/SOURCE.md): every frame is detected
    assert per_frame["detected"] == per_frame["frames"] == fitted["frames in the clip"]
    # the fingers follow what is seen: near the per-frame estimate's distance (which reprojects each
    # frame's own keypoints) at draft quality (100 iterations; issue 11's 1.2x target is measured at
    # the default quality by benchmarks/bench_real.py), and a few pixels in absolute. Stage II without
    # the finger residual put the demo clip's fingertips 2.9x as far as the per-frame estimate's.
    # Since issue 21 the per-frame estimate fits each frame's 2D keypoints too (2.4 px here, the IK
    # alone 3.4): the ratio is to that tighter reference, and the absolute bound is half what it was.
    assert stage2["dist_px"] <= 1.3 * per_frame["dist_px"], (stage2, per_frame)
    # the per-frame fingertips sit about 1 px from their keypoints: an absolute bound, not a ratio to that
    assert stage2["tips_px"] < 3.0, (stage2, per_frame)
    assert stage2["dist_px"] < 4.0


def test_fit_is_smoother_than_the_detections(fitted):
    per_frame, stage1, stage2 = fitted["per-frame"], fitted["stage I"], fitted["stage II"]
    assert stage2["img_acc_px"] < per_frame["raw_acc_px"]  # smoother in the image than MediaPipe itself
    assert stage2["img_acc_px"] < per_frame["img_acc_px"]
    # the hand's placement: the wrist's camera-space jitter falls at stage I already, and stays down
    assert stage1["wrist_acc_mm"] < 0.8 * per_frame["wrist_acc_mm"]
    assert stage2["wrist_acc_mm"] < 0.8 * per_frame["wrist_acc_mm"]
