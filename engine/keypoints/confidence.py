"""Per-joint confidence from augmented views, and a second chance for missed frames.

docs/method.md section 2: run the detector on N augmented views of a frame, map each view's
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

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.keypoints.detector import landmark_model_bytes, quiet_native_stderr

if TYPE_CHECKING:
    from engine.keypoints.types import HandTrack
    from engine.video import Video

CROP = 224  # the landmark network's input size
DEFAULT_GAMMA = 8.0  # crop pixels (see the module docstring)


class LandmarkNet:
    """MediaPipe's hand landmark network, batched, through LiteRT.

    run(crops (N,224,224,3) float32 in [0,1]) -> landmarks (N,21,3) crop px, presence (N,),
    world (N,21,3) metres in the crop's rotated frame.
    """

    MAX_SIZES = 4  # batch sizes kept allocated (one interpreter each): one or two hands' views, a retry's 1
    runs = 0  # network runs (batches) and crops run, by every instance of this process (tests, benchmarks)
    crops = 0

    def __init__(self, threads: int | None = None):
        import os

        self._threads = threads or min(4, os.cpu_count() or 1)
        self._model = landmark_model_bytes()
        self._by_size = {}  # batch size -> (interpreter, quiet); a size change re-allocates, so each keeps its own

    def _interpreter(self, n):
        from ai_edge_litert.interpreter import Interpreter

        if n not in self._by_size:
            if len(self._by_size) >= self.MAX_SIZES:
                self._by_size.pop(next(iter(self._by_size)))
            with quiet_native_stderr():  # allocation applies the XNNPACK delegate, which says so
                it = Interpreter(model_content=self._model, num_threads=self._threads)
                it.resize_tensor_input(it.get_input_details()[0]["index"], [n, CROP, CROP, 3])
                it.allocate_tensors()
            outs = {o["name"]: o["index"] for o in it.get_output_details()}
            self._by_size[n] = [it, it.get_input_details()[0]["index"], outs["Identity"], outs["Identity_1"],
                                outs["Identity_3"], True]
        return self._by_size[n]

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        entry = self._interpreter(len(crops))
        self._it, self._input, self._screen, self._presence, self._world, self._quiet = entry
        entry[5] = False
        LandmarkNet.runs += 1
        LandmarkNet.crops += len(crops)
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


def base_crop(keypoints_2d: np.ndarray) -> tuple[np.ndarray, float]:
    """Affine (2,3) image -> crop like MediaPipe's tracking ROI; and the crop's rotation (rad)."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    up = kp[9] - kp[0]
    angle = np.arctan2(up[0], -up[1])  # rotate the image by -angle: wrist->middle MCP points up
    centre = (kp.min(0) + kp.max(0)) / 2
    size = max(2.0 * float(np.max(kp.max(0) - kp.min(0))), 8.0)
    return crop_affine(centre, size, angle), angle


def crop_affine(centre: np.ndarray, size: float, angle: float, flip: bool = False) -> np.ndarray:
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


def invert_affine(M: np.ndarray) -> np.ndarray:
    """The inverse (2,3) of the affine M (2,3)."""
    A = np.linalg.inv(M[:, :2])
    return np.concatenate([A, -(A @ M[:, 2])[:, None]], axis=1)


def apply_affine(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (...,2) through the affine M (2,3)."""
    return np.asarray(points) @ M[:, :2].T + M[:, 2]


def augmentations(n: int, seed: int = 0) -> list[dict]:
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


def view_affine(keypoints_2d: np.ndarray, view: dict) -> np.ndarray:
    """Affine image -> crop of one augmented view around the hand at keypoints_2d."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    _, angle = base_crop(kp)
    centre = (kp.min(0) + kp.max(0)) / 2
    size = max(2.0 * float(np.max(kp.max(0) - kp.min(0))), 8.0)
    size *= view["scale"]
    centre = centre + view["shift"] * size  # shift in the image frame, a fraction of the crop
    return crop_affine(centre, size, angle + view["rotation"], flip=view["flip"])


def warp(rgb: np.ndarray, M: np.ndarray, brightness: float = 1.0) -> np.ndarray:
    import cv2

    crop = cv2.warpAffine(rgb, M, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    crop = crop.astype(np.float32) * (brightness / 255.0)
    return np.clip(crop, 0.0, 1.0)


def alpha_from_sigma(sigma: np.ndarray, gamma: float) -> np.ndarray:
    """alpha_j = 1 - min(sigma_j, gamma) / gamma."""
    return 1.0 - np.minimum(sigma, gamma) / gamma


class ConfidenceEstimator:
    """Per-joint confidence of one detection from ``views`` augmented views (see module doc)."""

    def __init__(self, views: int = 4, gamma: float | None = None, net: LandmarkNet | None = None, seed: int = 0):
        self.views = augmentations(views, seed)
        self.gamma = DEFAULT_GAMMA if gamma is None else float(gamma)
        self.net = net or LandmarkNet()

    def spread(self, rgb: np.ndarray, keypoints_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    def frame(self, rgb: np.ndarray, keypoint_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """alpha (21,) for each of several hands of one frame (keypoints (21,2) each), all their views
        in one batch through the landmark network (the same answers as one call per hand)."""
        affines, bright = [], []
        for kp in keypoint_sets:
            affines += [base_crop(kp)[0]] + [view_affine(kp, v) for v in self.views]
            bright += [1.0] + [v["brightness"] for v in self.views]
        if not affines:
            return []
        crops = np.stack([warp(rgb, M, b) for M, b in zip(affines, bright)])
        lm, _, _ = self.net.run(crops)
        n = len(self.views) + 1
        out = []
        for h in range(len(keypoint_sets)):
            A = affines[h * n:(h + 1) * n]
            back = np.stack([apply_affine(invert_affine(M), lm[h * n + i, :, :2]) for i, M in enumerate(A)])
            dev = back[1:] - back[0]
            sigma = np.sqrt((dev ** 2).sum(-1).mean(0)) * np.linalg.norm(A[0][:, 0])
            out.append(alpha_from_sigma(sigma, self.gamma))
        return out


def _gap_rows(track, max_chain):
    """The rows the gap retry tries for one track: missed frames within ``max_chain`` of a detection."""
    from engine.contract import result as R

    T = len(track.frame_ids)
    missing = track.source == R.SOURCE_NONE
    if not missing.any() or not (~missing).any():
        return np.zeros(T, bool)
    det_rows = np.flatnonzero(~missing)
    # distance to the nearest detection, by a search over the sorted detected rows (O(T log T))
    pos = np.searchsorted(det_rows, np.arange(T))
    before = det_rows[np.clip(pos - 1, 0, len(det_rows) - 1)]
    after = det_rows[np.clip(pos, 0, len(det_rows) - 1)]
    dist = np.minimum(np.abs(np.arange(T) - before), np.abs(after - np.arange(T)))
    return missing & (dist <= max_chain)


# Views only where a detection is uncertain (issue 22). The views' alpha is computed on anchor frames
# (every VIEW_STRIDE-th frame of a run of detections, and the run's first and last); between two
# anchors whose alphas agree within VIEW_AGREE on every joint, the frames take the alphas linearly
# interpolated; where they disagree (the detection is uncertain somewhere between), the midpoint is
# computed and each half is judged again, down to every frame. Calibrated on five real one-hand clips
# (the demo's first 300 frames at 640x480, and tests/data's thumbs_up_fist, asl_fists, pinch_fist,
# asl_hand_50; 965 detected frames): views on 48 % of the frames; where interpolated, alpha within
# 0.033 of the views' own (mean; 90th percentile 0.084), below the noise of the 4-view estimate
# itself (docs/history.md, "Speed"). VIEW_STRIDE 1: every frame, as before.
VIEW_STRIDE = 4
VIEW_AGREE = 0.3
HELD_MAX = {"views": 0, "gaps": 0}  # the most frames views_and_gaps held at once, last call (tests)


def _anchors(detected, stride):
    """Rows of ``detected`` (T,) bool whose views are always computed: each run's first and last row
    and the rows on the stride's grid inside it."""
    anchor = detected & (np.arange(len(detected)) % max(1, stride) == 0)
    if detected.any():
        rows = np.flatnonzero(detected)
        breaks = np.flatnonzero(np.diff(rows) > 1)
        anchor[rows[np.r_[0, breaks + 1]]] = True
        anchor[rows[np.r_[breaks, len(rows) - 1]]] = True
    return anchor


def views_and_gaps(video: "Video", tracks: dict[str, "HandTrack"], sides: Sequence[str], views: int = 0,
                   gamma: float | None = None, retry: bool = True, max_chain: int = 15, min_presence: float = 0.5,
                   net: LandmarkNet | None = None, estimator: "ConfidenceEstimator | None" = None,
                   stride: int | None = None, agree: float | None = None) -> dict[str, int]:
    """One more decode of the clip for the hands ``sides`` of ``tracks`` (HandTracks over the same
    frames, changed in place): per-joint confidence from ``views`` augmented views on their MediaPipe
    frames where a detection is uncertain (VIEW_STRIDE, VIEW_AGREE above; every hand of a frame in
    one batch through the landmark network), and with ``retry`` the gap retry (``retry_gaps``) on
    their missed frames. Frames are held only between two anchors of the views and within a run of
    missed frames (memory bounded by a gap, not by the clip). The other hands of ``tracks`` are
    read only (a retry answer lying on one of them is refused). Returns {side: frames recovered}."""
    from engine.contract import result as R

    stride = VIEW_STRIDE if stride is None else stride
    agree = VIEW_AGREE if agree is None else agree
    sides = [side for side in sides if side in tracks]
    if estimator is None and views > 0:
        estimator = ConfidenceEstimator(views=views, gamma=gamma, net=net)
    T = len(tracks[sides[0]].frame_ids)
    none = np.zeros(T, bool)
    detected = {side: (tracks[side].source == R.SOURCE_MEDIAPIPE) if estimator is not None else none for side in sides}
    anchor = {side: _anchors(detected[side], stride) for side in sides}
    wanted = {side: _gap_rows(tracks[side], max_chain) if retry else none for side in sides}
    recovered = {side: 0 for side in sides}
    if not any(w.any() for w in list(detected.values()) + list(wanted.values())):
        return recovered
    if any(w.any() for w in wanted.values()):
        net = net or (estimator.net if estimator is not None else LandmarkNet())
    frame_ids = np.asarray(tracks[sides[0]].frame_ids)
    row_of = {int(f): r for r, f in enumerate(frame_ids)}
    union = np.logical_or.reduce([wanted[side] for side in sides])
    # runs of consecutive rows any hand retries: a run's frames are held until the run is passed, then
    # each hand's gaps in it are retried (hand by hand, as retry_gaps does one track after the other)
    gap_rows = np.flatnonzero(union)
    runs = np.split(gap_rows, np.flatnonzero(np.diff(gap_rows) > 1) + 1) if union.any() else []
    run_end = {int(run[-1]): run for run in runs}
    needed = np.logical_or.reduce([detected[side] for side in sides] + [union])
    first, last = int(np.flatnonzero(needed)[0]), int(np.flatnonzero(needed)[-1])
    held, gap_frames, last_anchor = {}, {}, {side: None for side in sides}
    HELD_MAX.update(views=0, gaps=0)
    for frame_id, rgb in video.frames(start=int(frame_ids[first]), end=int(frame_ids[last]) + 1):
        row = row_of.get(int(frame_id))
        if row is None:
            continue
        if any(detected[side][row] and not anchor[side][row] for side in sides):
            held[row] = rgb  # between two anchors: kept until the next anchor says whether it needs views
        hands = [side for side in sides if anchor[side][row]]
        if hands:
            for side, alpha in zip(hands, estimator.frame(rgb, [tracks[side].keypoints_2d[row] for side in hands])):
                tracks[side].confidence[row] = alpha
            spans = [(side, last_anchor[side], row) for side in hands
                     if last_anchor[side] is not None and row - last_anchor[side] > 1
                     and detected[side][last_anchor[side]:row + 1].all()]
            _fill_between(spans, tracks, held, estimator, agree)
            for side in hands:
                last_anchor[side] = row
            for r in [r for r in held if not any(detected[side][r] and not anchor[side][r] and
                                                 (last_anchor[side] is None or r > last_anchor[side]) for side in sides)]:
                del held[r]  # every hand that had it between two anchors has passed its next anchor
        if union[row]:
            gap_frames[row] = rgb
        HELD_MAX.update(views=max(HELD_MAX["views"], len(held)), gaps=max(HELD_MAX["gaps"], len(gap_frames)))
        if row in run_end:
            run = run_end[row]
            for side in sides:
                gap = run[wanted[side][run]]
                for piece in np.split(gap, np.flatnonzero(np.diff(gap) > 1) + 1) if len(gap) else []:
                    others = [t for other, t in tracks.items() if other != side]
                    recovered[side] += _retry_gap(gap_frames, tracks[side], piece, estimator, net, min_presence,
                                                  others)
            gap_frames = {}
    return recovered


def _fill_between(spans, tracks, held, estimator, agree):
    """The views' alpha on the frames between two anchors (side, a, b) of each span: interpolated where
    the ends agree within ``agree`` on every joint, else the midpoint computed (the hands that need one
    row in one batch) and each half judged again."""
    todo = list(spans)
    while todo:
        mids, nxt = {}, []
        for side, a, b in todo:
            conf = tracks[side].confidence
            if b - a <= 1:
                continue
            if np.abs(conf[a] - conf[b]).max() <= agree:
                w = ((np.arange(a + 1, b) - a) / (b - a))[:, None]
                conf[a + 1:b] = (1 - w) * conf[a] + w * conf[b]
                continue
            m = (a + b) // 2
            mids.setdefault(m, []).append(side)
            nxt += [(side, a, m), (side, m, b)]
        for m, hands in mids.items():
            alphas = estimator.frame(held[m], [tracks[side].keypoints_2d[m] for side in hands])
            for side, alpha in zip(hands, alphas):
                tracks[side].confidence[m] = alpha
        todo = nxt


def retry_gaps(video: "Video", track: "HandTrack", estimator: "ConfidenceEstimator | None" = None,
               max_chain: int = 15, min_presence: float = 0.5, net: LandmarkNet | None = None,
               others: Sequence["HandTrack"] = ()) -> int:
    """Frames MediaPipe missed, next to detected ones: run the landmark network on the crop of the
    nearest detected (or just recovered) frame, forwards then backwards, up to ``max_chain`` frames
    from a detection. Accepted answers get source SOURCE_TRACKED_CROP; the rest stay missing. An
    answer lying on a hand of ``others`` (the other hand's tracks) is refused: a hand hidden behind
    the other one must not take its keypoints. Returns the number of frames recovered.

    One decode of the clip from the first gap to the last, each gap's frames held only until it is
    passed (``views_and_gaps``, which the detection runs for every hand at once)."""
    tracks = {"this": track, **{f"other{i}": t for i, t in enumerate(others)}}
    return views_and_gaps(video, tracks, ["this"], views=0, retry=True, max_chain=max_chain,
                          min_presence=min_presence, net=net, estimator=estimator)["this"]


def _retry_gap(frames, track, gap, estimator, net, min_presence, others):
    """The gap retry on one run of consecutive wanted rows ``gap`` of ``track``, ``frames`` {row: rgb}
    holding its frames; returns the frames recovered."""
    from engine.contract import result as R

    T = len(track.frame_ids)
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
