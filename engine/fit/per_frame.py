"""The per-frame estimate: the hatted targets of the two-stage fit, and the "per-frame" baseline
(docs/method.md section 3).

For each frame where a hand was detected (``per_frame_estimate``: ``track_arrays``, then one function
per step):

1. ``ik_in_batches``: pose and shape from MediaPipe's 3D world landmarks by batched inverse
   kinematics (``engine.fit.ik``); MediaPipe's world landmarks are metric and axis-aligned with the
   image (x right, y down, z away from the camera; checked on real frames), so the IK root
   orientation is already a camera-frame orientation;
2. ``place_detected``: placement in the camera (``place_in_camera``): the translation that best
   reprojects the posed keypoints onto the 2D keypoints (a linear least-squares solve, exact for a
   pinhole camera), then a Perspective-n-Point refinement of rotation and translation from that
   guess (OpenCV, Levenberg-Marquardt), kept only where it lowers the reprojection error without
   flipping the hand; frames with 2D keypoints but no 3D landmarks (external keypoints, crops
   tracked without world landmarks) start from their neighbours' estimate
   (``start_without_landmarks``);
   then every detected frame is fitted to all of its evidence at once (``refine_on_detections``: the
   2D keypoints weighted by their confidence, the 3D landmarks, the joints' anatomical limits);
3. ``fill_gaps``: short gaps (no keypoints, at most ``max_gap_s``) are filled by SLERP of every
   joint rotation and linear interpolation of translation; longer gaps and the frames before the
   first / after the last detection are marked not valid and hold the nearest estimate;
4. ``keypoints_for_fit``: the method's "dense source": the projection of the interpolated estimate
   becomes a filled frame's 2D keypoints, with low confidence and its own source code.

Everything here is batched over frames; nothing depends on the clip length beyond O(T) arrays.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import roma
import torch

from engine.contract import result as R
from engine.fit.optim import Adam
from engine.fit.temporal import hold_nearest, lerp_fill, slerp_fill
from engine.util.camera import project
from engine.util.errors import EngineError

if TYPE_CHECKING:
    from engine.contract.progress import Reporter
    from engine.hand_model import HandModel
    from engine.keypoints.types import HandTrack

# confidence given to keypoints that are projections of the interpolated estimate (gap fill)
FILL_CONFIDENCE = 0.1
# refine_on_detections: Adam iterations, and its terms' weights (see there)
REFINE_ITERS = 80
REFINE_3D_FLOOR = 0.3
REFINE_3D_WEIGHT = 0.1  # per hand unit^2, against the 2D term's (Geman-McClure) hand units^2
REFINE_POSE_PULL = 1e-3  # per degree^2, frames with landmarks
PULL_WITHOUT_3D = 5e-3  # per degree^2 (16 per radian^2, the weight the 2D-only fit has always had)
REFINE_LIMITS = 1.0  # per degree^2 outside the joints' limits
IK_LIMIT_WEIGHT = 1e-2  # the IK's limit term (engine.fit.ik), per degree^2 against its cm^2
# frames per inverse-kinematics batch: bounds the estimate's memory by this many frames, not the clip,
# and is the step of its progress
IK_CHUNK = 512


@dataclass
class PerFrameOptions:
    max_gap_s: float = 1.0  # longer gaps are "hand absent" (valid=False), not interpolated
    # keypoint sources for the fit (docs/method.md section 2, "Keypoint sources"): "blend" = MediaPipe where it found the
    # hand, the projection of the dense (interpolated per-frame) estimate elsewhere, at low
    # confidence; "mediapipe" = detected keypoints only (gaps carry no 2D term; the prior fills them)
    keypoint_source: str = "blend"
    ik_iters: int = None  # None: engine.fit.ik's default
    pnp_refine: bool = True
    refine_iters: int = REFINE_ITERS  # refine_on_detections (0: IK and placement only, as before)


def translation_from_2d(points: np.ndarray, keypoints_2d: np.ndarray, weights: np.ndarray, K: np.ndarray) -> np.ndarray:
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


def forward_joints(model: "HandModel", global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray,
                   transl: np.ndarray) -> np.ndarray:
    """The hand model's keypoints for numpy poses, no gradient: global_orient (T,3), hand_pose (T,45),
    betas (10,) shared by all frames, transl (T,3) -> keypoints (T,21,3) MediaPipe order, float64,
    in the frame of global_orient / transl."""
    with torch.no_grad():
        T = global_orient.shape[0]
        dev = _device(model)
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)
        out = model(f(global_orient), f(hand_pose), f(betas), f(transl), vertices=False)  # betas (10,): one shape
        return out.keypoints.cpu().numpy().astype(np.float64)


def _rest_root(model, betas):
    with torch.no_grad():
        dev = _device(model)
        return model.rest_joints(torch.as_tensor(betas, dtype=torch.float32, device=dev)[None])[0, 0].cpu().numpy()


def _reproj_error(points, keypoints_2d, weights, K):
    err = np.linalg.norm(project(points, K) - keypoints_2d, axis=-1)
    return (err * weights).sum(-1) / np.maximum(weights.sum(-1), 1e-9)


def place_in_camera(model: "HandModel", global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray,
                    keypoints_2d: np.ndarray, weights: np.ndarray, K: np.ndarray,
                    pnp_refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame global_orient (T,3) and transl (T,3) for posed hands (global_orient (T,3),
    hand_pose (T,45), betas (10,)) seen at keypoints_2d (T,21,2) px with weights (T,21); K (3,3)."""
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


def side_probability(track: "HandTrack", T: int) -> np.ndarray:
    """(T,) MediaPipe's probability that each frame's detection is this side's hand (the track's
    ``handedness``), 1 where it gave none (external keypoints, frames recovered on a crop)."""
    p = getattr(track, "handedness", None)
    if p is None:
        return np.ones(T)
    p = np.asarray(p, dtype=np.float64)
    return np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 1.0)


def track_arrays(track: "HandTrack") -> tuple[np.ndarray, ...]:
    """The track as float64 arrays fit for the estimate, and which frames have what.

    track: keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8, world_landmarks (T,21,3)
    m (NaN where absent). Returns (keypoints_2d (T,21,2), confidence (T,21) in [0,1], source (T,)
    uint8 copy, world (T,21,3), has2d (T,) bool, has3d (T,) bool): has2d = frames with keypoints of
    their own (a source, finite, some confidence); has3d = those that also have finite landmarks.
    keypoints_2d is 0 where not finite and confidence 0 on frames without 2D. Raises EngineError
    when no frame has keypoints.
    """
    kp2d = np.asarray(track.keypoints_2d, dtype=np.float64)
    conf = np.clip(np.nan_to_num(np.asarray(track.confidence, dtype=np.float64)), 0, 1)
    source = np.asarray(track.source, dtype=np.uint8).copy()
    world = np.asarray(track.world_landmarks, dtype=np.float64)
    has2d = (source != R.SOURCE_NONE) & np.isfinite(kp2d).all((1, 2)) & (conf.max(1) > 0)
    has3d = has2d & np.isfinite(world).all((1, 2))
    if not has2d.any():
        raise EngineError("no hand keypoints in any frame")
    kp2d = np.where(np.isfinite(kp2d), kp2d, 0.0)
    conf = np.where(has2d[:, None], conf, 0.0)
    return kp2d, conf, source, world, has2d, has3d


def ik_in_batches(model: "HandModel", world: np.ndarray, has3d: np.ndarray, iters: int | None = None,
                  reporter: "Reporter | None" = None, chunk: int | None = None,
                  confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pose from the 3D landmarks by inverse kinematics, in batches of ``chunk`` (default IK_CHUNK)
    landmark frames: memory and progress (``reporter`` advanced per batch) by the batch, not the clip.

    world (T,21,3) m, has3d (T,) bool -> global_orient (T,3) (camera-oriented: MediaPipe's world
    landmarks are axis-aligned with the image), hand_pose (T,45); zero on frames without landmarks.
    Mean shape and a free overall scale per batch: the landmarks give the pose, not the size
    (measured: they shrink curled fingers by up to 40 %); the shape comes from stage I's 2D fit.
    """
    from engine.fit.ik import ik_from_keypoints3d

    chunk = IK_CHUNK if chunk is None else chunk
    T = len(has3d)
    go = np.zeros((T, 3))
    pose = np.zeros((T, 45))
    if has3d.any():
        kwargs = {} if iters is None else {"iters": iters}
        frames3d = np.flatnonzero(has3d)
        for a in range(0, len(frames3d), chunk):
            idx = frames3d[a:a + chunk]
            # each landmark weighted by its joint's confidence from the views (a floor keeps a doubted
            # joint in the fit: the network's 3D guess is still the best there is for a hidden joint)
            w = None if confidence is None else REFINE_3D_FLOOR + (1 - REFINE_3D_FLOOR) * confidence[idx]
            ik = ik_from_keypoints3d(model, torch.as_tensor(world[idx], dtype=torch.float32), weights=w,
                                     fit_betas=False, fit_scale=True, limit_weight=IK_LIMIT_WEIGHT, **kwargs)
            go[idx] = ik["global_orient"].detach().cpu().numpy()
            pose[idx] = ik["hand_pose"].detach().cpu().numpy()
            if reporter is not None:
                reporter.advance(len(idx))
    return go, pose


def start_without_landmarks(global_orient: np.ndarray, hand_pose: np.ndarray, has2d: np.ndarray,
                            has3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A starting pose for the frames with 2D keypoints but no landmarks: the nearest landmark
    frame's, or where no frame has landmarks a flat hand, fingers up, palm to the camera.

    global_orient (T,3), hand_pose (T,45), has2d, has3d (T,) bool -> new global_orient (T,3),
    hand_pose (T,45) (unchanged when every 2D frame has landmarks).
    """
    go, pose = global_orient.copy(), hand_pose.copy()
    if (has2d & ~has3d).any():
        if has3d.any():
            go = hold_nearest(go, has3d)
            pose = hold_nearest(pose, has3d)
        else:
            # model frame: fingers -y, palm +x; camera: y down
            go[:] = [0.0, np.pi / 2, 0.0]
    return go, pose


def place_detected(model: "HandModel", global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray,
                   keypoints_2d: np.ndarray, confidence: np.ndarray, has2d: np.ndarray, has3d: np.ndarray,
                   K: np.ndarray, pnp_refine: bool = True, world: np.ndarray | None = None,
                   refine_iters: int = REFINE_ITERS,
                   world_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame with 2D keypoints placed in the camera (``place_in_camera``), then fitted to all
    its evidence (``refine_on_detections``: the 2D keypoints, the 3D landmarks where there are
    any, the joints' limits).

    global_orient (T,3), hand_pose (T,45), betas (10,), keypoints_2d (T,21,2) px, confidence (T,21),
    has2d, has3d (T,) bool, K (3,3), world (T,21,3) m or None, world_weight (T,) or None (a factor on
    the landmarks' term per frame) -> global_orient (T,3) camera frame,
    hand_pose (T,45), transl (T,3) m (0 on frames without 2D).
    """
    go, pose = global_orient.copy(), hand_pose.copy()
    transl = np.zeros((len(go), 3))
    go[has2d], transl[has2d] = place_in_camera(model, go[has2d], pose[has2d], betas, keypoints_2d[has2d],
                                                confidence[has2d], K, pnp_refine=pnp_refine)
    if refine_iters:
        w3 = world[has2d] if world is not None else np.full((int(has2d.sum()), 21, 3), np.nan)
        go[has2d], pose[has2d], transl[has2d] = refine_on_detections(
            model, go[has2d], pose[has2d], betas, transl[has2d], keypoints_2d[has2d], confidence[has2d], w3, K,
            iters=refine_iters, world_weight=None if world_weight is None else world_weight[has2d])
    return go, pose, transl


def refine_on_detections(model: "HandModel", global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray,
                         transl: np.ndarray, keypoints_2d: np.ndarray, confidence: np.ndarray, world: np.ndarray,
                         K: np.ndarray, iters: int = REFINE_ITERS, lr: float = 0.02, chunk: int | None = None,
                         world_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's pose and placement fitted to everything MediaPipe gave for it, frames batched.

    global_orient (N,3), hand_pose (N,45), transl (N,3) the start (IK + placement); keypoints_2d
    (N,21,2) px; confidence (N,21); world (N,21,3) m, NaN on frames without landmarks; K (3,3);
    world_weight (N,) or None: a factor on each frame's landmark term (``side_probability``).
    Returns global_orient, hand_pose, transl (N,...) numpy.

    Terms, all in hand units (a hundredth of the palm's length: ``losses.hand_units`` in the image,
    the palm's 3D length for the landmarks), so their balance is the same for a small or a large
    hand in the image:
    - the 2D keypoints: the fit's robust term (``losses.keypoints_2d``, Geman-McClure at 40 units),
      each joint weighted by its confidence squared (the IK alone sees the landmarks only, so the
      fingers ignored where the image puts them);
    - the 3D landmarks (frames that have them): wrist-relative and each side scaled by its own palm
      length (the landmarks are metric only roughly and shrink curled fingers), in the camera's axes
      (MediaPipe's world landmarks are axis-aligned with the image), weighted by REFINE_3D_FLOOR +
      (1 - floor) x confidence: a joint the views doubt counts less but still holds its place;
    - the start pose (the IK's, or for frames without landmarks their neighbours'), a light pull
      (REFINE_POSE_PULL per degree^2; PULL_WITHOUT_3D where no landmark holds the depth of the
      fingers, which 2D alone leaves free);
    - the joints' anatomical limits (``engine.fit.anatomy``, REFINE_LIMITS per degree^2 outside).
    Adam at ``lr``, translation in centimetres (see terms.TAU_SCALE), in chunks of IK_CHUNK frames.
    """
    from engine.fit import losses as L
    from engine.fit.anatomy import joint_axes, limit_penalty

    chunk = IK_CHUNK if chunk is None else chunk
    dev = _device(model)
    axes = joint_axes(model)
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)
    go_out, pose_out, tr_out = global_orient.copy(), hand_pose.copy(), transl.copy()
    deg = 180.0 / np.pi
    for a in range(0, len(global_orient), chunk):
        sl = slice(a, a + chunk)
        n = len(global_orient[sl])
        go0, pose0 = f(global_orient[sl]), f(hand_pose[sl])
        go, pose = go0.clone().requires_grad_(), pose0.clone().requires_grad_()
        tr_v = (f(transl[sl]) * L.TRANSL_UNIT).requires_grad_()
        b = f(betas)  # (10,): one shape, shared by the frames (engine.hand_model)
        Kt, kp, alpha = f(K), f(keypoints_2d[sl]), f(np.clip(confidence[sl], 0, 1))
        unit = L.hand_units(kp, alpha.max(1).values > 0).float()
        w_np = np.asarray(world[sl], dtype=np.float64)
        has3d = f(np.isfinite(w_np).all((1, 2)))
        w_np = np.nan_to_num(w_np)
        rel = w_np - w_np[:, :1]
        palm = np.linalg.norm(rel[:, 9], axis=-1).clip(1e-6)[:, None, None]
        target3d = f(rel / palm / L.HAND_UNIT_PALMS)  # wrist-relative, in hand units
        w3 = (REFINE_3D_FLOOR + (1 - REFINE_3D_FLOOR) * alpha) * has3d[:, None]
        if world_weight is not None:
            w3 = w3 * f(world_weight[sl])[:, None]
        pull = torch.where(has3d > 0, torch.full_like(has3d, REFINE_POSE_PULL), torch.full_like(has3d, PULL_WITHOUT_3D))
        opt = Adam([go, pose, tr_v], lr=lr)
        for _ in range(iters):
            opt.zero_grad()
            pts = model(go, pose, b, tr_v / L.TRANSL_UNIT, vertices=False).keypoints
            rel_m = pts - pts[:, :1]
            own = rel_m / rel_m[:, 9:10].norm(dim=-1, keepdim=True).clamp(min=1e-6) / L.HAND_UNIT_PALMS
            loss = (L.keypoints_2d(pts, Kt, kp, alpha, px_per_unit=unit)
                    + REFINE_3D_WEIGHT * (w3 * ((own - target3d) ** 2).sum(-1)).sum()
                    + (pull[:, None] * ((pose - pose0) * deg) ** 2).sum()
                    + REFINE_LIMITS * limit_penalty(pose, axes))
            loss.backward()
            opt.step()
        go_out[sl] = go.detach().cpu().numpy()
        pose_out[sl] = pose.detach().cpu().numpy()
        tr_out[sl] = (tr_v / L.TRANSL_UNIT).detach().cpu().numpy()
    return go_out, pose_out, tr_out


def fill_gaps(global_orient: np.ndarray, hand_pose: np.ndarray, transl: np.ndarray, known: np.ndarray,
              max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SLERP of every joint rotation and linear translation over gaps of at most ``max_gap`` frames
    between known frames; the rest (longer gaps, before the first / after the last known frame)
    holds the nearest estimate and is not valid.

    global_orient (T,3), hand_pose (T,45), transl (T,3), known (T,) bool -> global_orient (T,3),
    hand_pose (T,45), transl (T,3), filled (T,) bool (interpolated frames), valid (T,) bool
    (known or filled).
    """
    T = len(known)
    rot = np.concatenate([global_orient[:, None], hand_pose.reshape(T, 15, 3)], axis=1)  # (T,16,3)
    rot, filled = slerp_fill(rot, known, max_gap)
    transl = lerp_fill(transl, known, filled)
    valid = known | filled
    rot = hold_nearest(rot, valid)
    transl = hold_nearest(transl, valid)
    return rot[:, 0], rot[:, 1:].reshape(T, 45), transl, filled, valid


def keypoints_for_fit(keypoints_2d: np.ndarray, confidence: np.ndarray, source: np.ndarray, joints: np.ndarray,
                      K: np.ndarray, filled: np.ndarray, valid: np.ndarray,
                      keypoint_source: str = "blend") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fit's 2D keypoints: the detections, and on gap-filled frames with ``keypoint_source``
    "blend" the projection of the interpolated estimate at FILL_CONFIDENCE (source
    SOURCE_INTERPOLATED); with "mediapipe" filled frames carry none. Frames not valid carry none.

    keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8, joints (T,21,3) camera frame,
    K (3,3), filled, valid (T,) bool -> keypoints_2d (T,21,2), confidence (T,21), source (T,) (copies).
    """
    kp2d, conf, source = keypoints_2d.copy(), confidence.copy(), source.copy()
    if filled.any() and keypoint_source == "blend":
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
    return kp2d, conf, source


def per_frame_estimate(model: "HandModel", track: "HandTrack", K: np.ndarray, fps: float,
                       options: "PerFrameOptions | None" = None,
                       reporter: "Reporter | None" = None) -> dict[str, np.ndarray]:
    """Per-frame MANO estimate of one hand over a clip (``reporter``: advanced by one per frame with
    3D landmarks, as the inverse kinematics goes). The steps of the module docstring, in order.

    track: keypoints_2d (T,21,2) px, confidence (T,21), source (T,) uint8, world_landmarks
    (T,21,3) m (NaN where absent). Returns a dict of numpy arrays: global_orient (T,3),
    hand_pose (T,45), betas (10,), transl (T,3), joints (T,21,3) camera frame, keypoints_2d,
    confidence, keypoint_source (T,), valid (T,) bool, and "detected" (T,) bool (frames with
    keypoints of their own, before gap filling).
    """
    options = options or PerFrameOptions()
    K = np.asarray(K, dtype=np.float64)
    kp2d, conf, source, world, has2d, has3d = track_arrays(track)
    # the landmarks' 3D shape is the landmark network's guess at this hand; where MediaPipe itself
    # doubted which hand it saw (a fist end-on, the hand edge-on), that guess counts for less
    sure = side_probability(track, len(conf))
    go, pose = ik_in_batches(model, world, has3d, iters=options.ik_iters, reporter=reporter, confidence=conf * sure[:, None])
    betas = np.zeros(10)  # the IK runs at the mean shape
    go, pose = start_without_landmarks(go, pose, has2d, has3d)
    go, pose, transl = place_detected(model, go, pose, betas, kp2d, conf, has2d, has3d, K,
                                      pnp_refine=options.pnp_refine, world=world, refine_iters=options.refine_iters,
                                      world_weight=sure)
    max_gap = max(1, int(round(options.max_gap_s * fps)))
    go, pose, transl, filled, valid = fill_gaps(go, pose, transl, has2d, max_gap)
    joints = forward_joints(model, go, pose, betas, transl)
    kp2d, conf, source = keypoints_for_fit(kp2d, conf, source, joints, K, filled, valid, options.keypoint_source)
    return {
        "global_orient": go, "hand_pose": pose, "betas": betas, "transl": transl, "joints": joints,
        "keypoints_2d": kp2d, "confidence": conf, "keypoint_source": source, "valid": valid, "detected": has2d,
    }
