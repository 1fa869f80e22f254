"""The per-frame estimate: the hatted targets of the two-stage fit, and the "per-frame" baseline.

For each frame where a hand was detected:

1. pose and shape from MediaPipe's 3D world landmarks by batched inverse kinematics
   (``engine.fit.ik``); MediaPipe's world landmarks are metric and axis-aligned with the image
   (x right, y down, z away from the camera; checked on real frames), so the IK root orientation
   is already a camera-frame orientation;
2. placement in the camera: the translation that best reprojects the posed keypoints onto the 2D
   keypoints (a linear least-squares solve, exact for a pinhole camera), then a Perspective-n-Point
   refinement of rotation and translation from that guess (OpenCV, Levenberg-Marquardt), kept only
   where it lowers the reprojection error without flipping the hand;
3. frames with 2D keypoints but no 3D landmarks (external keypoints, crops tracked without world
   landmarks) get a 2D-only fit from their neighbours' estimate;
4. short gaps (no keypoints, at most ``max_gap_s``) are filled by SLERP of every joint rotation and
   linear interpolation of translation (the method's "dense source": the projection of the
   interpolated estimate becomes that frame's 2D keypoints, with low confidence and its own source
   code); longer gaps and the frames before the first / after the last detection are marked not
   valid and hold the nearest estimate.

Everything here is batched over frames; nothing depends on the clip length beyond O(T) arrays.
"""

from dataclasses import dataclass

import numpy as np
import roma
import torch

from engine import result as R
from engine.errors import EngineError
from engine.fit.temporal import hold_nearest, lerp_fill, slerp_fill

# confidence given to keypoints that are projections of the interpolated estimate (gap fill)
FILL_CONFIDENCE = 0.1
# frames per inverse-kinematics batch: bounds the estimate's memory by this many frames, not the clip,
# and is the step of its progress
IK_CHUNK = 512


@dataclass
class InitOptions:
    max_gap_s: float = 1.0  # longer gaps are "hand absent" (valid=False), not interpolated
    # keypoint sources for the fit (HMP_METHOD.md section 2): "blend" = MediaPipe where it found the
    # hand, the projection of the dense (interpolated per-frame) estimate elsewhere, at low
    # confidence; "mediapipe" = detected keypoints only (gaps carry no 2D term; the prior fills them)
    keypoint_source: str = "blend"
    ik_iters: int = None  # None: engine.fit.ik's default
    pnp_refine: bool = True


def project(points, K):
    """points (..., 3) camera frame -> pixels (..., 2). Points behind the camera are clamped."""
    z = np.maximum(points[..., 2:3], 1e-6)
    uv = points[..., :2] / z
    return uv * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])


def translation_from_2d(points, keypoints_2d, weights, K):
    """Least-squares translation t so that project(points + t) ~ keypoints_2d.

    points (T,21,3) camera-oriented, root at the origin; keypoints_2d (T,21,2) px; weights (T,21).
    From u (Z + tz) = fx (X + tx) + cx (Z + tz), linear in t.  Returns (T,3).
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    X, Y, Z = points[..., 0], points[..., 1], points[..., 2]
    u, v = keypoints_2d[..., 0], keypoints_2d[..., 1]
    T, N = X.shape
    A = np.zeros((T, 2 * N, 3))
    b = np.zeros((T, 2 * N))
    A[:, :N, 0] = fx
    A[:, :N, 2] = cx - u
    b[:, :N] = u * Z - fx * X - cx * Z
    A[:, N:, 1] = fy
    A[:, N:, 2] = cy - v
    b[:, N:] = v * Z - fy * Y - cy * Z
    w = np.concatenate([weights, weights], axis=1)[..., None]  # (T,2N,1)
    AtA = np.einsum("tni,tnj->tij", A * w, A) + 1e-9 * np.eye(3)
    Atb = np.einsum("tni,tn->ti", A * w, b)
    return np.linalg.solve(AtA, Atb[..., None])[..., 0]


def _device(model):
    return next(model.buffers()).device


def forward_joints(model, global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray,
                   transl: np.ndarray) -> np.ndarray:
    """The hand model's keypoints for numpy poses, no gradient: global_orient (T,3), hand_pose (T,45),
    betas (10,) shared by all frames, transl (T,3) -> keypoints (T,21,3) MediaPipe order, float64,
    in the frame of global_orient / transl."""
    with torch.no_grad():
        T = global_orient.shape[0]
        dev = _device(model)
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)
        out = model(f(global_orient), f(hand_pose), f(np.tile(betas, (T, 1))), f(transl), vertices=False)
        return out.keypoints.cpu().numpy().astype(np.float64)


def _rest_root(model, betas):
    with torch.no_grad():
        dev = _device(model)
        return model.rest_joints(torch.as_tensor(betas, dtype=torch.float32, device=dev)[None])[0, 0].cpu().numpy()


def _reproj_error(points, keypoints_2d, weights, K):
    err = np.linalg.norm(project(points, K) - keypoints_2d, axis=-1)
    return (err * weights).sum(-1) / np.maximum(weights.sum(-1), 1e-9)


def place_in_camera(model, global_orient, hand_pose, betas, keypoints_2d, weights, K, pnp_refine=True):
    """Camera-frame global_orient (T,3) and transl (T,3) for posed hands seen at keypoints_2d."""
    import cv2

    T = global_orient.shape[0]
    zeros = np.zeros((T, 3))
    local = forward_joints(model, global_orient, hand_pose, betas, zeros)  # (T,21,3), root rotated
    j0 = _rest_root(model, betas)
    centred = local - j0  # rotation about the wrist leaves it at the origin
    t = translation_from_2d(centred, keypoints_2d, weights, K)
    # never put a hand behind the camera: a degenerate solve falls back to a typical distance
    bad = ~np.isfinite(t).all(1) | (t[:, 2] < 0.05)
    if bad.any():
        t[bad] = [0.0, 0.0, 0.5]
    orient = roma.rotvec_to_rotmat(torch.as_tensor(global_orient, dtype=torch.float64)).numpy()
    if pnp_refine:
        Kf = np.asarray(K, dtype=np.float64)
        base_err = _reproj_error(centred + t[:, None], keypoints_2d, weights, K)
        for i in range(T):
            use = weights[i] > 0.2
            if use.sum() < 6:
                continue
            ok, rvec, tvec = cv2.solvePnP(centred[i, use], keypoints_2d[i, use].astype(np.float64), Kf, None,
                                          rvec=np.zeros((3, 1)), tvec=t[i].reshape(3, 1).copy(),
                                          useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
            if not ok or not np.isfinite(tvec).all() or tvec[2, 0] < 0.05 or np.linalg.norm(rvec) > np.radians(60):
                continue
            Rd = cv2.Rodrigues(rvec)[0]
            moved = centred[i] @ Rd.T + tvec[:, 0]
            if _reproj_error(moved[None], keypoints_2d[i:i + 1], weights[i:i + 1], K)[0] < base_err[i]:
                orient[i] = Rd @ orient[i]
                t[i] = tvec[:, 0]
    # the wrist sits at j0 + transl in the model's convention
    transl = t - j0
    go = roma.rotmat_to_rotvec(torch.as_tensor(orient)).numpy()
    return go, transl


def per_frame_estimate(model, track, K, fps, options=None, reporter=None):
    """Per-frame MANO estimate of one hand over a clip (``reporter``: advanced by one per frame with
    3D landmarks, as the inverse kinematics goes).

    track: keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8, world_landmarks
    (T,21,3) m (NaN where absent). Returns a dict of numpy arrays: global_orient (T,3),
    hand_pose (T,45), betas (10,), transl (T,3), joints (T,21,3) camera frame, keypoints_2d,
    confidence, keypoint_source (T,), valid (T,) bool, and "detected" (T,) bool (frames with
    keypoints of their own, before gap filling).
    """
    from engine.fit.ik import ik_from_keypoints3d

    options = options or InitOptions()
    K = np.asarray(K, dtype=np.float64)
    kp2d = np.asarray(track.keypoints_2d, dtype=np.float64)
    conf = np.clip(np.nan_to_num(np.asarray(track.confidence, dtype=np.float64)), 0, 1)
    source = np.asarray(track.source, dtype=np.uint8).copy()
    world = np.asarray(track.world_landmarks, dtype=np.float64)
    T = kp2d.shape[0]
    has2d = (source != R.SOURCE_NONE) & np.isfinite(kp2d).all((1, 2)) & (conf.max(1) > 0)
    has3d = has2d & np.isfinite(world).all((1, 2))
    if not has2d.any():
        raise EngineError("no hand keypoints in any frame")
    kp2d = np.where(np.isfinite(kp2d), kp2d, 0.0)
    conf = np.where(has2d[:, None], conf, 0.0)

    go = np.zeros((T, 3))
    pose = np.zeros((T, 45))
    if has3d.any():
        kwargs = {} if options.ik_iters is None else {"iters": options.ik_iters}
        # mean shape and a free overall scale: MediaPipe's world landmarks give the pose, not the size
        # (measured: they shrink curled fingers by up to 40 %); the shape comes from stage I's 2D fit.
        # In batches of IK_CHUNK frames (each with its own scale): memory and progress per batch.
        frames3d = np.flatnonzero(has3d)
        for a in range(0, len(frames3d), IK_CHUNK):
            idx = frames3d[a:a + IK_CHUNK]
            ik = ik_from_keypoints3d(model, torch.as_tensor(world[idx], dtype=torch.float32), fit_betas=False,
                                     fit_scale=True, **kwargs)
            go[idx] = ik["global_orient"].detach().cpu().numpy()
            pose[idx] = ik["hand_pose"].detach().cpu().numpy()
            if reporter is not None:
                reporter.advance(len(idx))
    betas = np.zeros(10)  # the IK runs at the mean shape
    if (has2d & ~has3d).any():
        # no 3D: start from the nearest 3D estimate (or a flat hand, palm to the camera) and fit 2D
        if has3d.any():
            go = hold_nearest(go, has3d)
            pose = hold_nearest(pose, has3d)
        else:
            # a guess: fingers up, palm to the camera (model frame: fingers -y, palm +x; camera: y down)
            go[:] = [0.0, np.pi / 2, 0.0]
    transl = np.zeros((T, 3))
    go[has2d], transl[has2d] = place_in_camera(model, go[has2d], pose[has2d], betas, kp2d[has2d], conf[has2d], K,
                                                pnp_refine=options.pnp_refine)
    only2d = has2d & ~has3d
    if only2d.any():
        go[only2d], pose[only2d], transl[only2d] = fit_to_2d(model, go[only2d], pose[only2d], betas,
                                                            transl[only2d], kp2d[only2d], conf[only2d], K)

    # gaps: SLERP over short ones, hold (not valid) elsewhere
    max_gap = max(1, int(round(options.max_gap_s * fps)))
    rot = np.concatenate([go[:, None], pose.reshape(T, 15, 3)], axis=1)
    rot, filled = slerp_fill(rot, has2d, max_gap)
    transl = lerp_fill(transl, has2d, filled)
    valid = has2d | filled
    rot = hold_nearest(rot, valid)
    transl = hold_nearest(transl, valid)
    go, pose = rot[:, 0], rot[:, 1:].reshape(T, 45)
    joints = forward_joints(model, go, pose, betas, transl)
    if filled.any() and options.keypoint_source == "blend":
        kp2d[filled] = project(joints[filled], K)
        conf[filled] = FILL_CONFIDENCE
        source[filled] = R.SOURCE_INTERPOLATED
    elif filled.any():
        kp2d[filled] = 0.0
        conf[filled] = 0.0
        source[filled] = R.SOURCE_NONE
    source[~valid] = R.SOURCE_NONE
    kp2d[~valid] = 0.0
    conf[~valid] = 0.0
    return {
        "global_orient": go, "hand_pose": pose, "betas": betas, "transl": transl, "joints": joints,
        "keypoints_2d": kp2d, "confidence": conf, "keypoint_source": source, "valid": valid, "detected": has2d,
    }


def fit_to_2d(model, global_orient, hand_pose, betas, transl, keypoints_2d, weights, K, iters=150, lr=0.05):
    """Per-frame 2D-only refinement (no 3D landmarks): Adam on the robust reprojection error (the
    fit's own Geman-McClure term) + a pull to the start pose.

    The start pose is the prior knowledge here (nearest 3D estimate or a flat hand); the pull
    (16 per radian^2 against the 2D term's Geman-McClure px^2, whose ceiling is 40^2 per joint: a
    joint 40 px off is worth a 1-radian bend) keeps depth-ambiguous fingers from folding through the
    palm. Translation is optimised in centimetres (see stages.TAU_SCALE).
    """
    from engine.fit.losses import keypoints_2d as loss_2d
    from engine.fit.losses import TRANSL_UNIT

    dev = _device(model)
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)
    go0, pose0 = f(global_orient), f(hand_pose)
    go, pose = go0.clone().requires_grad_(), pose0.clone().requires_grad_()
    tr_v = (f(transl) * TRANSL_UNIT).requires_grad_()
    b = f(np.tile(betas, (go.shape[0], 1)))
    Kt, kp, alpha = f(K), f(keypoints_2d), f(np.sqrt(np.clip(weights, 0, 1)))  # loss_2d weighs alpha^2
    opt = torch.optim.Adam([go, pose, tr_v], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        pts = model(go, pose, b, tr_v / TRANSL_UNIT, vertices=False).keypoints
        loss = loss_2d(pts, Kt, kp, alpha) + 16.0 * ((pose - pose0) ** 2).sum()
        loss.backward()
        opt.step()
    return go.detach().cpu().numpy(), pose.detach().cpu().numpy(), (tr_v / TRANSL_UNIT).detach().cpu().numpy()
