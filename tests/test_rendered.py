"""Real MediaPipe on frames of the open hand model rendered in Blender (Cycles CPU), as the
ground-truth benchmark renders them: the hand is found, as the right hand, where it truly is."""

import numpy as np

from engine.benchmark import CLIPS, held_out_motions, make_scene, render
from engine.fit.init import project
from engine.hand_model import load_hand_model
from engine.keypoints import KeypointOptions, detect_hands
from engine.video import guess_intrinsics, open_video


def test_mediapipe_finds_the_rendered_hand(tmp_path):
    model = load_hand_model("right")
    T, size = 3, (480, 360)
    K = guess_intrinsics(*size)
    for name, palm, skin, bg, dist, _ in CLIPS[:2]:  # palm and back of the hand to the camera
        verts, kp = make_scene(model, held_out_motions(1, T)[0], palm, dist, T, K, size)
        np.savez(tmp_path / f"{name}.npz", vertices=verts.astype(np.float32), faces=model.faces.numpy(), K=K,
                 size=np.array(size), fps=30.0, skin=np.array(skin), background=np.array(bg))
        render(tmp_path / f"{name}.npz", tmp_path / f"{name}.mp4")
        track = detect_hands(open_video(tmp_path / f"{name}.mp4"), sides=("right", "left"),
                             options=KeypointOptions(views=0, use_cache=False))
        right = track["right"]
        assert right.detected.all() and not track["left"].detected.any(), name
        err = np.linalg.norm(right.keypoints_2d - project(kp.astype(np.float64), K), axis=-1)
        assert np.median(err) < 15.0, (name, np.median(err))  # px; MediaPipe's joints vs the model's
