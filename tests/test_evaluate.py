"""Dataset harnesses on tiny folders in each dataset's own layout, built from real footage.

The ground truth written into each folder is the pipeline's own per-frame result in that
dataset's conventions (joint order, coordinate frame, file formats), so a harness that reads the
layout right scores the per-frame method near zero, and one that gets an axis or an order wrong
scores it in centimetres.
"""

import pickle

import cv2
import numpy as np
import pytest

from engine import joints as J
from engine.errors import EngineError
from engine.evaluate import GL_TO_CV, evaluate, read_meta_pkl
from engine.fit.per_frame import per_frame_estimate
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.video import guess_intrinsics, open_video

CLIP = __import__("pathlib").Path(__file__).parent / "data" / "hand_short.mp4"
N = 12


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """Frames as JPEG files and the per-frame joints (camera frame, MediaPipe order) on them."""
    folder = tmp_path_factory.mktemp("frames")
    video = open_video(CLIP)
    paths = []
    for i, rgb in video.frames(0, N):
        paths.append(folder / f"{i:04d}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    from engine.evaluate import images_to_video

    K = guess_intrinsics(video.width, video.height)
    v = open_video(images_to_video(paths, folder / "again.mp4"))
    track = detect_hands(v, options=KeypointOptions(views=0, use_cache=False))["right"]
    est = per_frame_estimate(load_hand_model("right"), track, K, 30.0)
    return paths, est["joints"], K


def test_ho3d_layout(truth, tmp_path):
    paths, joints, K = truth
    seq = tmp_path / "train" / "ABF10"
    (seq / "rgb").mkdir(parents=True)
    (seq / "meta").mkdir()
    for i, (img, j) in enumerate(zip(paths, joints)):
        (seq / "rgb" / img.name).write_bytes(img.read_bytes())
        ho3d = np.concatenate([j[J.MANO_TO_MEDIAPIPE], j[J.FINGERTIPS_MEDIAPIPE]]) * GL_TO_CV  # HO3D order, OpenGL
        with open(seq / "meta" / f"{img.stem}.pkl", "wb") as fh:
            pickle.dump({"handJoints3D": ho3d, "camMat": K, "handPose": np.zeros(48), "handBeta": np.zeros(10)}, fh,
                        protocol=2)
    scores = evaluate("ho3d-v3", tmp_path, quality="draft", log=lambda *_: None)
    assert scores["per-frame"]["RA-MPJPE"] < 10.0, scores
    assert all(np.isfinite(v) for m in scores.values() for v in m.values())


def test_dexycb_layout(truth, tmp_path):
    paths, joints, K = truth
    cam = tmp_path / "20200709-subject-01" / "20200709_141754" / "836212060125"
    cam.mkdir(parents=True)
    (cam.parent / "meta.yml").write_text("mano_sides:\n- right\nnum_frames: 12\n")
    calib = tmp_path / "calibration" / "intrinsics"
    calib.mkdir(parents=True)
    (calib / "836212060125_640x480.yml").write_text(
        f"color:\n  fx: {K[0, 0]}\n  fy: {K[1, 1]}\n  ppx: {K[0, 2]}\n  ppy: {K[1, 2]}\n")
    for i, (img, j) in enumerate(zip(paths, joints)):
        (cam / f"color_{i:06d}.jpg").write_bytes(img.read_bytes())
        np.savez(cam / f"labels_{i:06d}.npz", joint_3d=j[None].astype(np.float32),
                 joint_2d=np.zeros((1, 21, 2), np.float32), pose_m=np.zeros((1, 51), np.float32))
    scores = evaluate("dexycb", tmp_path, quality="draft", log=lambda *_: None)
    assert scores["per-frame"]["RA-MPJPE"] < 10.0, scores


def test_unsafe_pickles_and_missing_folders(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "0000.pkl", "wb") as fh:
        pickle.dump({"handJoints3D": Evil()}, fh)
    with pytest.raises(EngineError, match="refusing"):
        read_meta_pkl(tmp_path / "0000.pkl")
    with pytest.raises(EngineError, match="not found"):
        evaluate("ho3d-v3", tmp_path / "absent")
    with pytest.raises(EngineError, match="no HO3D-v3 sequences"):
        evaluate("ho3d-v3", tmp_path)
