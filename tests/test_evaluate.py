"""Dataset harnesses on tiny folders in each dataset's own layout.

The readers are tested in-process on every layout: what they return (joints in MediaPipe order, in
OpenCV camera coordinates, the intrinsics, the frames, the hand) must be exactly what was written in
that dataset's conventions (joint order, coordinate frame, file formats), so an axis or an order
read wrong fails. One whole evaluation runs on real footage: the ground truth written there is the
pipeline's own per-frame result, so the harness scores the per-frame method near zero.
"""

import pickle

import cv2
import numpy as np
import pytest

from engine.contract import joints as J
from engine.evaluation.evaluate import GL_TO_CV, READERS, evaluate, main, read_meta_pkl
from engine.util.errors import EngineError

CLIP = __import__("pathlib").Path(__file__).parent / "data" / "hand_short.mp4"
N = 12


def write_ho3d(root, images, joints, K):
    """HO3D-v3: train/<seq>/rgb/NNNN.jpg and meta/NNNN.pkl with handJoints3D (HO3D order, OpenGL)."""
    seq = root / "train" / "ABF10"
    (seq / "rgb").mkdir(parents=True)
    (seq / "meta").mkdir()
    for img, j in zip(images, joints):
        (seq / "rgb" / img.name).write_bytes(img.read_bytes())
        ho3d = np.concatenate([j[J.MANO_TO_MEDIAPIPE], j[J.FINGERTIPS_MEDIAPIPE]]) * GL_TO_CV  # HO3D order, OpenGL
        with open(seq / "meta" / f"{img.stem}.pkl", "wb") as fh:
            pickle.dump({"handJoints3D": ho3d, "camMat": K, "handPose": np.zeros(48), "handBeta": np.zeros(10)}, fh,
                        protocol=2)
    return seq


def write_dexycb(root, images, joints, K, side="right"):
    """DexYCB: <subject>/<sequence>/<serial>/color_N.jpg + labels_N.npz (MediaPipe order, OpenCV, m),
    intrinsics in calibration/intrinsics/<serial>_640x480.yml, the hand in the sequence's meta.yml."""
    cam = root / "20200709-subject-01" / "20200709_141754" / "836212060125"
    cam.mkdir(parents=True)
    (cam.parent / "meta.yml").write_text(f"mano_sides:\n- {side}\nnum_frames: {len(images)}\n")
    calib = root / "calibration" / "intrinsics"
    calib.mkdir(parents=True)
    (calib / "836212060125_640x480.yml").write_text(
        f"color:\n  fx: {K[0, 0]}\n  fy: {K[1, 1]}\n  ppx: {K[0, 2]}\n  ppy: {K[1, 2]}\n")
    for i, (img, j) in enumerate(zip(images, joints)):
        (cam / f"color_{i:06d}.jpg").write_bytes(img.read_bytes())
        np.savez(cam / f"labels_{i:06d}.npz", joint_3d=j[None].astype(np.float32),
                 joint_2d=np.zeros((1, 21, 2), np.float32), pose_m=np.zeros((1, 51), np.float32))
    return cam


@pytest.fixture
def frames(tmp_path):
    """Three small JPEG frames and distinct joints for each (camera frame, MediaPipe order, metres)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = []
    for i in range(3):
        paths.append(folder / f"{i:04d}.jpg")
        cv2.imwrite(str(paths[-1]), np.full((48, 64, 3), 60 * i, np.uint8))
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.04, (3, 21, 3)) + np.array([0.02, -0.01, 0.5])
    K = np.array([[612.0, 0, 321.5], [0, 611.0, 239.5], [0, 0, 1]])
    return paths, joints, K


def test_ho3d_reader_gives_mediapipe_order_in_opencv_coordinates(frames, tmp_path):
    paths, joints, K = frames
    seq = write_ho3d(tmp_path / "ho3d", paths, joints, K)
    (name, images, gt, K_read, side), = list(READERS["ho3d-v3"](tmp_path / "ho3d"))
    assert name == "ABF10" and side == "right"
    assert [p.name for p in images] == [p.name for p in paths] and all(p.parent == seq / "rgb" for p in images)
    assert np.allclose(gt, joints, atol=1e-12) and np.allclose(K_read, K)


def test_ho3d_reader_skips_sequences_without_joints(frames, tmp_path):
    """The evaluation split hides handJoints3D: such a sequence is not scored."""
    paths, joints, K = frames
    seq = write_ho3d(tmp_path / "ho3d", paths, joints, K)
    with open(seq / "meta" / f"{paths[1].stem}.pkl", "wb") as fh:
        pickle.dump({"handJoints3D": None, "camMat": K}, fh, protocol=2)
    assert list(READERS["ho3d-v3"](tmp_path / "ho3d")) == []


@pytest.mark.parametrize("side", ["right", "left"])
def test_dexycb_reader_gives_the_labels_intrinsics_and_hand(frames, tmp_path, side):
    paths, joints, K = frames
    cam = write_dexycb(tmp_path / "dexycb", paths, joints, K, side=side)
    (name, images, gt, K_read, side_read), = list(READERS["dexycb"](tmp_path / "dexycb"))
    assert name == "20200709-subject-01/20200709_141754/836212060125" and side_read == side
    assert images == sorted(cam.glob("color_*.jpg")) and len(images) == 3
    assert np.allclose(gt, joints, atol=1e-6) and np.allclose(K_read, K)  # float32 labels
    (tmp_path / "dexycb" / "calibration" / "intrinsics" / "836212060125_640x480.yml").unlink()
    with pytest.raises(EngineError, match="DexYCB intrinsics missing"):
        list(READERS["dexycb"](tmp_path / "dexycb"))


def test_the_evaluation_scores_its_own_per_frame_truth_near_zero(tmp_path):
    """Real frames, their per-frame joints written as HO3D-v3 truth: the whole harness (video from the
    images, detection, every method, metrics, table) scores the per-frame method within 1 cm."""
    from engine.evaluation.evaluate import images_to_video
    from engine.fit.per_frame import per_frame_estimate
    from engine.hand_model import load_hand_model
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import guess_intrinsics, open_video

    folder = tmp_path / "frames"
    folder.mkdir()
    video = open_video(CLIP)
    paths = []
    for i, rgb in video.frames(0, N):
        paths.append(folder / f"{i:04d}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    K = guess_intrinsics(video.width, video.height)
    v = open_video(images_to_video(paths, folder / "again.mp4"))
    track = detect_hands(v, options=KeypointOptions(views=0, use_cache=False))["right"]
    joints = per_frame_estimate(load_hand_model("right"), track, K, 30.0)["joints"]
    write_ho3d(tmp_path / "ho3d", paths, joints, K)
    scores = evaluate("ho3d-v3", tmp_path / "ho3d", quality="draft", log=lambda *_: None)
    assert scores["per-frame"]["RA-MPJPE"] < 10.0, scores
    assert all(np.isfinite(v) for m in scores.values() for v in m.values())


def test_unsafe_pickles_and_missing_folders(tmp_path, capsys):
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
    with pytest.raises(EngineError, match="no DexYCB sequences"):
        list(READERS["dexycb"](tmp_path))
    with pytest.raises(EngineError, match="invalid choice: 'ho3d'"):  # the command line, in this process
        main(["--dataset", "ho3d", "--root", str(tmp_path)])
    assert "owned" not in capsys.readouterr().out
