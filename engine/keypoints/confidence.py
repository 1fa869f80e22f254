"""Per-joint confidence from augmented views, and a second chance for missed frames.

HMP_METHOD.md section 2: run the detector on N augmented views of a frame, map each view's
keypoints back to the image and take, per joint, sigma_j^2 = 1/N sum_n ||P_n,j - P_0,j||^2 (the norm
of the per-axis deviations: the formula, not the authors' code, which takes the standard deviation
of (sigma_x, sigma_y)); sigma_j = min(sigma_j, gamma); alpha_j = 1 - sigma_j / gamma.

Speed: the views do not re-run palm detection. Around the hand MediaPipe already found we cut a
crop as MediaPipe's tracker does (rotated so the wrist->middle-MCP axis points up, twice the size of
the keypoints' box), augment that crop (rotation, scale, shift, horizontal flip, brightness: the
flip mirrors the hand, so the landmark model sees the other handedness), and run MediaPipe's own
landmark network (see below) on all N views of a
frame as one batch through a LiteRT interpreter. Each view's landmarks map back to the image
through the exact inverse of its affine warp (tested on synthetic points).

P_0 is the landmark network's answer on the un-augmented crop (view 0, same pipeline), so the
spread measures how the answer moves under augmentation, not the small fixed offset between our
crop and MediaPipe's internal one; the keypoints reported stay MediaPipe's own.

The landmark network is the one inside the shipped Tasks bundle (``hand_landmarks_detector.tflite``
in ``engine/assets/mediapipe/hand_landmarker.task``: the same model the detector runs), read into
memory and run by LiteRT (``ai-edge-litert``, wheels for every supported Python).

gamma is in pixels of the 224-px crop (i.e. relative to the hand's size, so the same for any
video resolution). The authors use 4 px on their own crops; with our views (which include flips and
brightness changes the authors' rotations/scales did not) the spread of clean, fully visible joints
is 1-3 crop px, so gamma = 4 would score clean joints near 0. The default, 8 crop px (about 3.5 %
of the crop, a third of a fingertip segment), gives clean joints alpha of about 0.6-0.85 and 0 to a
joint the views disagree on by a finger segment or more. It is an option (``--gamma`` in
KeypointOptions).
"""

import numpy as np

from engine.keypoints.detector import landmark_model_bytes, quiet_native_stderr

CROP = 224  # the landmark network's input size
DEFAULT_GAMMA = 8.0  # crop pixels (see the module docstring)


class LandmarkNet:
    """MediaPipe's hand landmark network, batched, through LiteRT.

    run(crops (N,224,224,3) float32 in [0,1]) -> landmarks (N,21,3) crop px, presence (N,),
    world (N,21,3) metres in the crop's rotated frame.
    """

    def __init__(self, threads=None):
        import os

        from ai_edge_litert.interpreter import Interpreter

        threads = threads or min(4, os.cpu_count() or 1)
        with quiet_native_stderr():
            self._it = Interpreter(model_content=landmark_model_bytes(), num_threads=threads)
        self._input = self._it.get_input_details()[0]["index"]
        outs = {o["name"]: o["index"] for o in self._it.get_output_details()}
        self._screen, self._presence, self._world = outs["Identity"], outs["Identity_1"], outs["Identity_3"]
        self._batch = None
        self._quiet = True

    def run(self, crops):
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        if self._batch != len(crops):
            with quiet_native_stderr():  # (re)allocation applies the XNNPACK delegate, which says so
                self._it.resize_tensor_input(self._input, [len(crops), CROP, CROP, 3])
                self._it.allocate_tensors()
            self._batch = len(crops)
            self._quiet = True
        self._it.set_tensor(self._input, crops)
        if self._quiet:  # the XNNPACK delegate announces itself on the first run
            with quiet_native_stderr():
                self._it.invoke()
            self._quiet = False
        else:
            self._it.invoke()
        lm = self._it.get_tensor(self._screen).reshape(-1, 21, 3).copy()
        presence = self._it.get_tensor(self._presence).reshape(-1).copy()
        world = self._it.get_tensor(self._world).reshape(-1, 21, 3).copy()
        return lm, presence, world


def base_crop(keypoints_2d):
    """Affine (2,3) image -> crop like MediaPipe's tracking ROI; and the crop's rotation (rad)."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    up = kp[9] - kp[0]
    angle = np.arctan2(up[0], -up[1])  # rotate the image by -angle: wrist->middle MCP points up
    centre = (kp.min(0) + kp.max(0)) / 2
    size = max(2.0 * float(np.max(kp.max(0) - kp.min(0))), 8.0)
    return crop_affine(centre, size, angle), angle


def crop_affine(centre, size, angle, flip=False):
    """The affine (2,3) taking image pixels to crop pixels: rotate by -angle about centre, scale
    size -> CROP, optionally mirror horizontally."""
    c, s = np.cos(-angle), np.sin(-angle)
    R = np.array([[c, -s], [s, c]]) * (CROP / size)
    if flip:
        R = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ R
    M = np.zeros((2, 3))
    M[:, :2] = R
    M[:, 2] = CROP / 2 - R @ np.asarray(centre, dtype=np.float64)
    return M


def invert_affine(M):
    A = np.linalg.inv(M[:, :2])
    return np.concatenate([A, -(A @ M[:, 2])[:, None]], axis=1)


def apply_affine(M, points):
    return np.asarray(points) @ M[:, :2].T + M[:, 2]


def augmentations(n, seed=0):
    """n view parameters (rotation rad, scale, shift (2,) crop fraction, flip, brightness).

    Deterministic (fixed seed) so the same frame always gets the same confidence. Ranges follow
    the authors' (rotation and scale) plus the issue's shift, flip and brightness.
    """
    rng = np.random.default_rng(seed)
    views = []
    for k in range(n):
        views.append({
            "rotation": np.radians(rng.uniform(-30, 30)),
            "scale": float(rng.uniform(0.85, 1.2)),
            "shift": rng.uniform(-0.08, 0.08, 2),
            "flip": bool(k % 2 == 1),
            "brightness": float(rng.uniform(0.7, 1.3)),
        })
    return views


def view_affine(keypoints_2d, view):
    """Affine image -> crop of one augmented view around the hand at keypoints_2d."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    _, angle = base_crop(kp)
    centre = (kp.min(0) + kp.max(0)) / 2
    size = max(2.0 * float(np.max(kp.max(0) - kp.min(0))), 8.0)
    size *= view["scale"]
    centre = centre + view["shift"] * size  # shift in the image frame, a fraction of the crop
    return crop_affine(centre, size, angle + view["rotation"], flip=view["flip"])


def warp(rgb, M, brightness=1.0):
    import cv2

    crop = cv2.warpAffine(rgb, M, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    crop = crop.astype(np.float32) * (brightness / 255.0)
    return np.clip(crop, 0.0, 1.0)


def alpha_from_sigma(sigma, gamma):
    """alpha_j = 1 - min(sigma_j, gamma) / gamma."""
    return 1.0 - np.minimum(sigma, gamma) / gamma


class ConfidenceEstimator:
    """Per-joint confidence of one detection from ``views`` augmented views (see module doc)."""

    def __init__(self, views=4, gamma=None, net=None, seed=0):
        self.views = augmentations(views, seed)
        self.gamma = DEFAULT_GAMMA if gamma is None else float(gamma)
        self.net = net or LandmarkNet()

    def spread(self, rgb, keypoints_2d):
        """sigma_j (21,) in crop pixels, and the back-mapped keypoints of every view (N+1,21,2)."""
        affines = [base_crop(keypoints_2d)[0]] + [view_affine(keypoints_2d, v) for v in self.views]
        bright = [1.0] + [v["brightness"] for v in self.views]
        crops = np.stack([warp(rgb, M, b) for M, b in zip(affines, bright)])
        lm, _, _ = self.net.run(crops)
        back = np.stack([apply_affine(invert_affine(M), lm[i, :, :2]) for i, M in enumerate(affines)])
        to_crop = np.linalg.norm(affines[0][:, 0])  # image px -> crop px
        dev = back[1:] - back[0]  # (N,21,2)
        sigma = np.sqrt((dev ** 2).sum(-1).mean(0)) * to_crop
        return sigma, back

    def __call__(self, rgb, detection):
        sigma, _ = self.spread(rgb, detection.keypoints_2d)
        return alpha_from_sigma(sigma, self.gamma)


def retry_gaps(video, track, estimator=None, max_chain=15, min_presence=0.5, net=None, others=()):
    """Frames MediaPipe missed, next to detected ones: run the landmark network on the crop of the
    nearest detected (or just recovered) frame, forwards then backwards, up to ``max_chain`` frames
    from a detection. Accepted answers get source SOURCE_TRACKED_CROP; the rest stay missing. An
    answer lying on a hand of ``others`` (the other hand's tracks) is refused: a hand hidden behind
    the other one must not take its keypoints. Returns the number of frames recovered."""
    from engine.contract import result as R

    T = len(track.frame_ids)
    missing = track.source == R.SOURCE_NONE
    if not missing.any() or not (~missing).any():
        return 0
    # candidate frames: within max_chain of a detection
    det_rows = np.flatnonzero(~missing)
    dist = np.abs(np.arange(T)[:, None] - det_rows[None]).min(1)
    wanted = missing & (dist <= max_chain)
    if not wanted.any():
        return 0
    net = net or (estimator.net if estimator is not None else LandmarkNet())
    # one gap at a time (its wanted frames are at most 2 * max_chain): memory is bounded by a gap's
    # frames, not by every missed frame of the clip (full-size images: about 25 MB each at 4K). Each
    # gap is bounded by detected frames, so gap by gap is the same as one pass over the clip.
    rows = np.flatnonzero(wanted)
    gaps = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    recovered = 0
    for gap in gaps:
        recovered += _retry_gap(video, track, gap, estimator, net, min_presence, others)
    return recovered


def _retry_gap(video, track, gap, estimator, net, min_presence, others):
    """retry_gaps on one run of consecutive wanted rows ``gap``; returns the frames recovered."""
    from engine.contract import result as R

    T = len(track.frame_ids)
    frames = {}
    row_of = {int(track.frame_ids[r]): int(r) for r in gap}
    for frame_id, rgb in video.frames(start=int(track.frame_ids[gap[0]]), end=int(track.frame_ids[gap[-1]]) + 1):
        if frame_id in row_of:
            frames[row_of[frame_id]] = rgb
    recovered = 0
    for direction in (1, -1):
        order = gap if direction == 1 else gap[::-1]
        for r in (int(r) for r in order):
            prev = r - direction
            if r not in frames or track.source[r] != R.SOURCE_NONE or not (0 <= prev < T):
                continue
            if track.source[prev] == R.SOURCE_NONE:
                continue
            M, angle = base_crop(track.keypoints_2d[prev])
            lm, presence, world = net.run(warp(frames[r], M)[None])
            if presence[0] < min_presence:
                continue
            kp = apply_affine(invert_affine(M), lm[0, :, :2])
            size_prev = np.ptp(track.keypoints_2d[prev], axis=0).max()
            size_new = np.ptp(kp, axis=0).max()
            if not 0.6 < size_new / max(size_prev, 1e-6) < 1.6:
                continue  # not the same hand at the same scale: leave the frame to the fitter
            if any(other.source[r] != R.SOURCE_NONE and
                   np.linalg.norm(other.keypoints_2d[r] - kp, axis=1).mean() < 0.3 * size_new for other in others):
                continue  # the crop found the other hand (in front of this one)
            c, s = np.cos(angle), np.sin(angle)  # world landmarks back from the crop's rotation
            Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
            track.keypoints_2d[r] = kp
            track.world_landmarks[r] = world[0] @ Rz.T
            track.source[r] = R.SOURCE_TRACKED_CROP
            track.confidence[r] = (estimator(frames[r], _Det(kp)) if estimator is not None else 1.0) * float(presence[0])
            recovered += 1
    return recovered


class _Det:
    def __init__(self, keypoints_2d):
        self.keypoints_2d = keypoints_2d
