"""The two-stage HMP fit (HMP_METHOD.md section 3).

    out, warnings = fit_sequence(model, prior, init, keypoints_2d (T,21,2), confidence (T,21), K, fps,
                                 stages=2, options=FitOptions(), reporter=None)
    (out1, warnings1), (out2, warnings2) = fit_stages(...same arguments...)  # each stage's result, one run

``init`` is the per-frame estimate (engine.fit.per_frame): its global_orient, transl, hand_pose and betas
are both the starting point and the hatted targets. Stage I optimises the global rotation Phi, the
translation tau and the shape beta (and, departing from the table, the fingers: 9. below); stage II
adds one latent z of the motion prior per window, the finger pose being the prior's decoding of z.

| stage | variables                 | losses and weights                                             |
| I     | Phi, tau, beta            | L_o 3, L_tr 1, L_os 1, L_ts 5, L_beta 3, L_2D 0.05              |
| II    | Phi, tau, beta, z (+delta)| L_o 2, L_tr 1, L_os 1, L_beta 10, L_2D 0.05, L_MP 300 (+ L_ts 5, |
|       |                           | residual size 0.02, residual smoothness 0.1, L_ja 0.01)        |

Where this departs from the table as written, and why (each measured in docs/benchmarks.md, on the
rendered benchmark whose hand and motion the prior has never seen and on real footage; the literal
form is ``FitOptions.literal()``):

1. Units (``units``): rotations in degrees, translations in centimetres (engine.fit.losses). In
   radians and metres the rotation and translation terms are thousands of times smaller than the
   pixel term and the table's weights do nothing: stage I left the wrist as jittery as per frame.
2. Stage II keeps translation smoothness (L_ts at stage I's weight): the table drops it, and without
   it stage II moved the whole hand more than the per-frame estimate did.
3. Finger residual (``finger_residual``): stage II's finger pose is the prior's decoding D(z)
   composed, per frame and joint, with a small rotation delta_t, penalised by its size (0.02 per
   degree^2) and its frame-to-frame change (0.1 per degree^2). A prior trained on
   little open data cannot reach every real pose; without delta stage II pulled the fingertips
   away from confident detections (docs/benchmarks.md has the figures). With it the prior
   still sets the motion (delta is cheap only where the detections insist, and smooth), and the
   fingers stay where they are seen. A 10 degree residual costs about what a 10 px error of one
   keypoint costs in L_2D, so confident detections win and noisy ones do not.
4. L_MP per window (``prior_per_window``): each window's term counts for the share of a window's
   frames it covers, so the prior keeps its weight as the clip grows (the other terms are sums over
   frames). Read as one mean over windows, its weight fell with the clip's length.
5. L_beta per frame (``shape_reg_per_frame``), for the same reason.
6. Smoothness per second (``smooth_per_second``): L_os, L_ts and the residual's smoothness are
   scaled by fps / 30 (L_ja, an acceleration, by (fps / 30)^3): a penalty on velocity, not on the
   change between two frames. Per frame pair, a 5 fps clip's real motion (six times the step of a
   30 fps clip's) was smoothed away: stage I
   pulled the hands of a 5 fps two-hand clip far from their detections (docs/benchmarks.md).
   On uneven frame times (a variable frame rate: ``fit_sequence(..., frame_times=)``) each frame
   pair counts by its own time step and L_ja is the acceleration over the uneven steps
   (``losses.joint_accel``), the prior's windows are laid on the real times (``windows.layout``)
   and the rotation filter steps by them: a constant rate assumed there makes a clip that slows
   from 30 to 15 fps look like a hand that suddenly doubles its speed.
7. Joint acceleration (L_ja, stage II, ``engine.fit.losses.joint_accel``): the squared second
   difference of every joint in camera space, measured in pixels at the joint's depth (the unit of
   L_2D's residuals), weight 0.01, per second like the other smoothness terms. The table smooths
   only the velocity of the global rotation and translation, at weights where the 2D term decides
   where the hand is in the image, and leaves the fingers' smoothness to the prior: the fit followed
   MediaPipe's frame-to-frame noise and was jerkier in the image than a light smoothing of the
   detections themselves, which moves them by under a pixel. A penalty on acceleration removes that
   noise and hardly touches motion slower than a few frames (its cost grows with the fourth power
   of the frequency); video fitting methods commonly smooth joints this way. A weight of 0.01 per
   px^2 against L_2D's 0.05 per px^2 (times confidence^2) is a light smoother whatever the hand's
   size in the image. The measured alternative ``weights2["pd"]`` (the finger pose held near the
   per-frame estimate, ``losses.pose_data``, off by default) trades PA-MPJPE for RA-MPJPE on
   back-of-hand views (docs/benchmarks.md).
8. Stage II's global rotation (``root_motion``): "filtered" (default) is per frame, as in the table,
   then a zero-lag (forward-backward) One Euro filter, the standard smoother of hand trackers;
   "free" is the table's per-frame rotation alone; "prior" is one base rotation per window turned
   by the prior's decoded root motion, as NeMF decodes root orientation (it drifts where the hand
   is hard to see). With "filtered" the filter runs inside stage II, per chunk, after its
   optimisation, and the translation is then re-fitted to the filtered rotation (``transl_refit``:
   stage II's translation terms L_tr, L_ts, L_2D, L_ja, the fingers and shape held, a quarter of
   stage II's iterations), so the result is what the fit optimised: filtered after the fit, the
   rotation moved the hand about its wrist while the translation stayed where the unfiltered
   rotation had wanted it (re-optimising the translation alone then lowered its terms by half on a
   synthetic clip). Only the translation is re-fitted: it is what the filtered rotation displaces
   (the hand turns about its wrist, so the fingers move in the image), and without the prior's
   decoding an iteration costs a fraction of a stage II one.

9. Fingers the prior has not seen (issue 21; docs/benchmarks.md, "Fingers on hands the prior has not
   seen"). The prior learnt from about 80 s of open recordings; its z = 0 decodes a relaxed hand, and
   a held fist, encoded and decoded, loses about 25 degrees of bend. So:
   - L_MP is ``prior_term="anchored"`` (default): mean((z - z0)^2), z0 the encoder's mean for the
     clip's own stage I poses: the latent stays near the clip's encoding, so a fist or a pinch costs
     no more than a relaxed hand, and the decoder (a smooth field of time) still sets the motion;
   - the finger residual starts at, and is held near, the rotation that takes the decoding D(z0) to
     stage I's fingers (``residual_anchor="per-frame"``), not 0: the fingers keep what was seen unless
     the motion and the detections say otherwise;
   - the per-frame estimate itself now fits each frame's 2D keypoints (engine.fit.per_frame), so the
     hatted targets hold the fingers where they are seen; a hard "no worse than the per-frame
     estimate" term (``losses.no_worse``, "nw") was measured and left off: it stopped the smoothing;
   - L_2D and L_ja are in hand units (``scale_free_2d``: a hundredth of the palm's length in the image,
     ``losses.hand_units``), so their balance against the prior and the rotation terms is the same for
     a hand 80 or 400 px tall (at a palm of 100 px it is the table's pixels);
   - stage I fits the fingers too (``stage1_fingers``), held near the per-frame estimate ("pd", 0.2 per
     degree^2) and inside the joints' anatomical limits ("lim", ``engine.fit.anatomy``), so that it
     sees the detections' fingers rather than keeping the per-frame IK's.
   What each costs and buys is measured in docs/benchmarks.md.

L_MP has three forms. ``prior_term="anchored"`` (default) is above. ``prior_term="posterior"`` is the
poster's -log N(z; mu(theta), sigma(theta)), (mu, sigma) the encoder's posterior of the current pose
sequence theta = D(z), differentiated through all of it. ``prior_term="unit"`` is the authors' code's
mean(z^2) (the default before issue 21): with a prior trained on open data far smaller than AMASS,
the posterior term held z so tightly that stage II lost finger accuracy, and the unit term pulls
every hand towards the relaxed one z = 0 decodes. z starts at the encoder's mean for stage I's poses.

Adam at lr 0.05 with a step schedule (x0.5 at 60 % and 85 % of the iterations) and gradient
clipping (norm 1), as the authors' code; iterations and an early stop on a flat loss are options.

Long clips are cut into chunks of at most ``chunk_frames`` frames that overlap by one prior window
and are cross-faded (rotations as quaternions, ``windows.crossfade_chunks``), so memory is bounded
by the chunk, not the clip; the shape is found on the first chunk that has detections and kept for
the later ones (one shape per hand per clip: a chunk fitted before the shape changed would not match
it, so the shape is not re-fitted on every chunk). Inside a chunk all windows are optimised as one
batch (a GPU stays busy). Left hands go through the right-hand prior mirrored.

Each stage keeps its best iterate (the lowest loss seen, never worse than its start). A stage whose
loss became non-finite, or never came back to its start (divergence), is undone for its chunk: the
previous stage's values are kept and a warning says so. No NaN ever leaves.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.contract import choices
from engine.fit import losses as L
from engine.fit.anatomy import joint_axes, limit_penalty
from engine.fit.optim import Adam, clip_grad_norm
from engine.fit.temporal import one_euro_rotations_zero_phase, uneven_times
from engine.fit.windows import blend_rotations, crossfade_chunks, layout, resample_windows

# "nw" (off by default; a weight in weights1 / weights2 turns it on): no confidently seen joint ends
# farther from its keypoint than the per-frame estimate put it, beyond NO_WORSE_MARGIN hand units
# (losses.no_worse). Measured (docs/benchmarks.md): at a weight of 10 it held stage II 0.5 px nearer the ASL
# clip's detections but stopped all smoothing of the image (acceleration 0.97x the raw detections'
# against 0.51x without), at a 6-unit margin it was worse on both. "lim": the joints' anatomical
# limits (engine.fit.anatomy), per degree^2 outside them
NO_WORSE_MARGIN = 2.0  # hand units (2 % of the palm's length: 2 px on a palm 100 px long)
NO_WORSE_CONFIDENCE = 0.5
LIMIT_WEIGHT = 0.1
# The method's table. Stage II adds two terms that the table does not have (see the module docstring):
# "ts" (translation smoothness, stage I's weight) and, with finger_residual, "res" / "res_s" (the size
# and the smoothness of the per-frame finger residual).
STAGE1_WEIGHTS = {"o": 3.0, "tr": 1.0, "os": 1.0, "ts": 5.0, "beta": 3.0, "2d": 0.05}
STAGE2_WEIGHTS = {"o": 2.0, "tr": 1.0, "os": 1.0, "beta": 10.0, "2d": 0.05, "mp": 300.0}
# "res_s" 0.1 (it was 1, L_os's weight, until issue 21): fingers move faster than the whole hand turns,
# and at 1 the residual's smoothness held stage II's fingertips 3x the per-frame estimate's distance from
# real detections (benchmarks/bench_tradeoff.py: ASL clip 1.43x -> 1.15x, demo 1.26x -> 1.08x at 0.1, the
# image still at 0.50x / 0.52x the raw detections' acceleration: L_ja, an acceleration, removes the
# detections' noise; docs/benchmarks.md, "Fingers on hands the prior has not seen")
STAGE2_ADDED = {"ts": 5.0, "res": 0.02, "res_s": 0.1, "ja": 0.01, "lim": LIMIT_WEIGHT}
STAGE1_ADDED = {"pd": 0.2, "lim": LIMIT_WEIGHT}
ROOT_MOTIONS = choices.ROOT_MOTIONS  # stage II's global rotation (see root_motion below)
RESIDUAL_ANCHORS = ("per-frame", "prior")  # what stage II's finger residual is held near (residual_anchor)
REFERENCE_FPS = 30.0  # the frame rate the table's smoothness weights are for (the authors' clips and prior)


@dataclass
class FitOptions:
    iters_stage1: int = 200  # the authors use 400 per stage (--quality best)
    iters_stage2: int = 200
    lr: float = 0.05
    # convergence (issue 22): a phase of a stage's schedule ends, and the stage stops in its last phase,
    # when its best loss improved by less than this share of itself over ``patience`` iterations
    # (``_optimise``); 0 runs every iteration (``iters_stage1`` / ``iters_stage2`` are then exact)
    tol1: float = 1e-3
    tol2: float = 1e-3
    patience: int = 20
    overlap: int = 16  # prior frames shared by consecutive windows
    chunk_frames: int = 2048
    # L_MP: "anchored" = mean((z - z0)^2), z0 the clip's own encoding (default, see 9. in the module
    # docstring); "unit" = mean(z^2), the authors' code's term; "posterior" = the poster's
    # -log N(z; mu(theta), sigma(theta))
    prior_term: str = choices.DEFAULT_PRIOR_TERM
    # stage II's global rotation: "prior" through the prior's root channel (one base rotation per
    # window), "free" per frame (the method's table), "filtered" per frame then a One Euro filter
    root_motion: str = "filtered"
    # with root_motion "filtered": the translation re-fitted to the filtered rotation for this share
    # of stage II's iterations (0: the filtered rotation with stage II's translation as it was)
    transl_refit: float = 0.25
    # units of the rotation / translation terms (engine.fit.losses): "deg-cm" (default, where the
    # table's weights act) or "rad-m" (the literal reading, where they have no effect)
    units: str = "deg-cm"
    # stage II fingers = the prior's decoding composed with a per-frame residual rotation per joint,
    # kept small and smooth ("res", "res_s"): the fingers reach confident detections the prior cannot
    # explain. False = the fingers are the decoding alone (the method as written).
    finger_residual: bool = True
    # L_MP counted per window's worth of frames (each window's term times the share of a window's
    # frames it covers), so that its weight does not fall as the clip grows while the other terms
    # are sums over frames. False = one mean over the clip's windows (the authors' code).
    prior_per_window: bool = True
    # L_beta counted once per frame (x T) rather than once per clip. The table's terms are sums over
    # frames except L_beta (one shape per clip), so read literally the shape's weight shrinks as a
    # clip grows: on 300 frames of known motion stage I then bends the shape to absorb the per-frame
    # poses' errors. Scaling L_beta by T is the same balance as taking every per-frame term as a mean
    # over frames, as fitting codes commonly do (docs/benchmarks.md). False = the literal sums.
    shape_reg_per_frame: bool = True
    # L_os, L_ts and the residual's smoothness scaled by fps / 30: a penalty on velocity per second,
    # so that a 5 fps or a 60 fps clip is smoothed as a 30 fps one is. False = per frame pair.
    smooth_per_second: bool = True
    # L_2D (and L_ja) in hand units (a hundredth of the palm's length in the image, losses.hand_units)
    # rather than pixels: the balance against the prior and the rotation terms is the same for a hand
    # 80 px or 400 px tall. False = pixels (the authors' code).
    scale_free_2d: bool = True
    # stage I fits the fingers too (per frame, held near the per-frame estimate by "pd" and inside
    # the joints' limits), so that it sees the detections' fingers. False = fingers fixed (the table).
    stage1_fingers: bool = True
    # what stage II's finger residual is held near: "per-frame" = stage I's fingers (the residual
    # starts at the rotation that takes the prior's decoding there), "prior" = the decoding itself
    # (residual 0: the prior's pose unless detections insist; it opens hands the prior has not seen)
    residual_anchor: str = "per-frame"
    clip_grad: float = 1.0
    weights1: dict = field(default_factory=lambda: {**STAGE1_WEIGHTS, **STAGE1_ADDED})
    weights2: dict = field(default_factory=lambda: {**STAGE2_WEIGHTS, **STAGE2_ADDED})

    def __post_init__(self):
        if self.root_motion not in ROOT_MOTIONS:
            raise ValueError(f"root_motion must be one of {ROOT_MOTIONS}, got {self.root_motion!r}")
        if self.prior_term not in choices.PRIOR_TERMS:
            raise ValueError(f"prior_term must be one of {choices.PRIOR_TERMS}, got {self.prior_term!r}")
        if self.residual_anchor not in RESIDUAL_ANCHORS:
            raise ValueError(f"residual_anchor must be one of {RESIDUAL_ANCHORS}, got {self.residual_anchor!r}")
        if self.units not in L.UNITS:
            raise ValueError(f"units must be one of {tuple(L.UNITS)}, got {self.units!r}")

    @classmethod
    def literal(cls, **changes):
        """The method's table read literally: radians and metres, no stage II translation smoothness or
        joint acceleration, fingers from the prior alone, L_MP as one mean over windows (stage II's rotation is
        ``root_motion``'s choice: "free" is the table's per-frame rotation)."""
        base = dict(units="rad-m", finger_residual=False, prior_per_window=False, smooth_per_second=False,
                    scale_free_2d=False, stage1_fingers=False, prior_term="unit", weights1=dict(STAGE1_WEIGHTS),
                    weights2=dict(STAGE2_WEIGHTS))
        return cls(**{**base, **changes})

    @property
    def root_from_prior(self):
        return self.root_motion == "prior"

    @property
    def refit_iters(self):
        """Iterations of the translation re-fit after stage II's rotation filter (0 without one)."""
        return int(round(self.iters_stage2 * self.transl_refit)) if self.root_motion == "filtered" else 0

    @property
    def unit_scales(self):
        """(rotation, translation) factors of the loss terms: degrees per radian, cm per metre."""
        return L.UNITS[self.units]


def _t(x, device, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


class _Chunk:
    """One chunk of frames: targets and the forward pass shared by both stages."""

    def __init__(self, model, init, kp2d, alpha, K, sl, device, options, fps, times=None):
        self.model, self.device = model, device
        # smoothness terms per second, not per frame pair: sum_t ||x_{t+1} - x_t||^2 * fps / 30 is the
        # same for the same motion at any frame rate (the table's weights are the authors' at 30 fps)
        self.smooth_scale = fps / REFERENCE_FPS if options.smooth_per_second else 1.0
        # uneven frame times (a variable frame rate; ``times`` (T,) s, None when even): each frame
        # pair's own time step, in 1/30 s, so that the per-second terms measure real velocities
        self.times = None if times is None else np.asarray(times, dtype=np.float64)[sl]
        self.steps = None
        if self.times is not None and options.smooth_per_second and len(self.times) > 1:
            self.steps = _t(np.maximum(np.diff(self.times), 1e-4) * REFERENCE_FPS, device)  # (t-1,)
        self.phi_hat = _t(init["global_orient"][sl], device)
        self.tau_hat = _t(init["transl"][sl], device)
        self.pose_hat = _t(init["hand_pose"][sl], device)
        self.kp = _t(kp2d[sl], device)
        self.alpha = _t(alpha[sl], device)
        self.K = _t(K, device)
        self.T = self.phi_hat.shape[0]
        self.rot_unit, self.transl_unit = options.unit_scales
        # px per hand unit (T,), or None: L_2D and L_ja in pixels
        self.unit = L.hand_units(self.kp, self.alpha.max(1).values > 0).float().to(device) if options.scale_free_2d else None
        # "nw": the per-frame estimate's distance to each keypoint (T,21), in the 2D term's unit
        self.nw_unit = self.unit if self.unit is not None else torch.ones(self.T, device=device)
        with torch.no_grad():
            start = self.keypoints(self.phi_hat, self.pose_hat, _t(init["betas"], device), self.tau_hat)
            self.reference = L.keypoint_distance(start, self.K, self.kp, self.nw_unit)
        self.axes = joint_axes(model)  # "lim": the fingers' flexion, abduction and twist axes

    def keypoints(self, phi, pose, beta, tau):
        return self.model(phi, pose, beta, tau, vertices=False).keypoints

    def velocity(self, term, x, unit):
        """A frame-pair smoothness term of engine.fit.losses (orient_smooth, transl_smooth,
        residual_smooth) of x (t,...) per second: x fps/30, or on uneven frame times each pair / its
        own step (in 1/30 s)."""
        if self.steps is None:
            return term(x, unit) * self.smooth_scale
        return term(x, unit, weights=1.0 / self.steps)

    def acceleration(self, kp):
        """L_ja of keypoints kp (t,21,3) per second: x (fps/30)^3, or on the frames' uneven steps."""
        if self.steps is None:
            return L.joint_accel(kp, self.K, px_per_unit=self.unit) * self.smooth_scale ** 3
        return L.joint_accel(kp, self.K, steps=self.steps, px_per_unit=self.unit)

    def data_terms(self, phi, pose, beta, tau, names=None):
        """The terms (engine.fit.losses) at these values: {name: scalar tensor}, only ``names`` when given.

        The smoothness terms are per second (``smooth_scale``): velocity terms x fps/30, the joint
        acceleration x (fps/30)^3, the same sums for the same motion at any frame rate; on uneven
        frame times, each frame pair and triple by its own time steps (``velocity``, ``acceleration``)."""
        ru, tu = self.rot_unit, self.transl_unit
        kp = self.keypoints(phi, pose, beta, tau)
        terms = {"o": lambda: L.orient_data(phi, self.phi_hat, ru), "tr": lambda: L.transl_data(tau, self.tau_hat, tu),
                 "os": lambda: self.velocity(L.orient_smooth, phi, ru),
                 "ts": lambda: self.velocity(L.transl_smooth, tau, tu),
                 "beta": lambda: L.shape_reg(beta),
                 "2d": lambda: L.keypoints_2d(kp, self.K, self.kp, self.alpha, px_per_unit=self.unit),
                 "ja": lambda: self.acceleration(kp),
                 "pd": lambda: L.pose_data(pose, self.pose_hat, ru),
                 "nw": lambda: L.no_worse(kp, self.K, self.kp, self.alpha, self.reference, self.nw_unit,
                                          NO_WORSE_MARGIN, NO_WORSE_CONFIDENCE),
                 "lim": lambda: limit_penalty(pose, self.axes)}
        return {k: f() for k, f in terms.items() if names is None or k in names}


def _optimise(params, closure, iters, options, reporter=None, tol=None):
    """Adam with the step schedule. Leaves params at the best iterate and returns (converged, best
    loss). Divergence is judged on what is returned, the best iterate: converged is False when the
    loss became non-finite (params are left at the best finite iterate) or when no step brought it
    back to its start (every iterate worse than the first: the best is the start, nothing was
    fitted). A loss that rose again after its best (Adam overshooting late in the run) is not a
    divergence: the best iterate is what is kept.

    The schedule has three phases, at lr, lr / 2 and lr / 4, of at most 60 %, 25 % and 15 % of
    ``iters``. With a tolerance ``tol`` (the stage's: ``FitOptions.tol1`` / ``tol2``) a phase also ends
    when it has converged: its best loss improved by less than ``tol`` of itself over the last
    ``options.patience`` iterations; the last phase converged, the stage stops. ``tol`` 0 (or None):
    the fixed schedule, every iteration run."""
    opt = Adam(params, lr=options.lr)
    ends = [int(iters * 0.6), int(iters * 0.85), iters]  # where each phase ends at the latest
    phase, phase_start = 0, 0
    history, bests = [], []
    best = (float("inf"), [p.detach().clone() for p in params])
    for it in range(iters):
        while phase < 2 and it >= ends[phase]:
            phase, phase_start = phase + 1, it
        opt.base_lr = options.lr * 0.5 ** phase
        opt.zero_grad()
        loss = closure()
        value = float(loss.detach())
        if not np.isfinite(value):
            with torch.no_grad():  # restore the best finite state and stop
                for p, b in zip(params, best[1]):
                    p.copy_(b)
            return False, best[0]
        if value < best[0]:
            best = (value, [p.detach().clone() for p in params])
        loss.backward()
        clip_grad_norm(params, options.clip_grad)
        opt.step()
        history.append(value)
        bests.append(best[0])
        if reporter is not None:
            reporter.advance()
        p = options.patience
        if tol and it - phase_start >= p and bests[-p - 1] - best[0] <= tol * abs(best[0]):
            if phase == 2:  # converged in the last phase: done
                if reporter is not None:
                    reporter.advance(iters - it - 1)
                break
            phase, phase_start = phase + 1, it + 1  # converged at this rate: on to the next, smaller one
            ends[phase - 1] = it + 1
    with torch.no_grad():
        for p, b in zip(params, best[1]):
            p.copy_(b)
    if not history:  # no iteration at all (iters 0): nothing to keep
        return False, best[0]
    return len(history) == 1 or min(history[1:]) <= history[0], best[0]


# Translation is optimised in centimetres (tau = variable / TRANSL_UNIT): Adam's step is about lr per
# variable, and 0.05 m (5 cm) per step would throw the hand around; 0.05 cm is the scale of the
# rotations' 0.05 rad (3 degrees). A change of variable only, whatever the units of the loss terms.
TAU_SCALE = L.TRANSL_UNIT


def _weights(weights, T, options):
    """The table's weights, L_beta scaled by the chunk's frames when ``shape_reg_per_frame``."""
    w = dict(weights)
    if options.shape_reg_per_frame:
        w["beta"] = w["beta"] * T
    return w


def _stage1(chunk, beta0, fit_beta, options, reporter):
    phi = chunk.phi_hat.clone().requires_grad_(True)
    tau_v = (chunk.tau_hat * TAU_SCALE).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    pose = chunk.pose_hat.clone().requires_grad_(options.stage1_fingers)
    w = _weights(options.weights1, chunk.T, options)
    if not options.stage1_fingers:
        w = {k: v for k, v in w.items() if k not in ("pd", "lim")}

    def closure():
        terms = chunk.data_terms(phi, pose, beta, tau_v / TAU_SCALE, w)
        return sum(w[k] * terms[k] for k in w)

    params = [phi, tau_v] + ([beta] if fit_beta else []) + ([pose] if options.stage1_fingers else [])
    ok, _ = _optimise(params, closure, options.iters_stage1, options, reporter, tol=options.tol1)
    return phi.detach(), (tau_v / TAU_SCALE).detach(), beta.detach(), pose.detach(), ok


def _stage2(chunk, prior, phi0, tau0, pose0, beta0, fps, fit_beta, options, reporter):
    import roma

    from engine.hand_model import mirror_pose

    device = chunk.device
    left = chunk.model.side == "left"
    to_prior = (lambda p: mirror_pose(p)) if left else (lambda p: p)  # an involution: also back again
    lay = layout(chunk.T, fps, prior.window, prior.fps, options.overlap, device, times=chunk.times)
    W, n = lay.frame_index.shape
    prior_times = prior.default_times(W, device=device)
    with torch.no_grad():
        init_windows = resample_windows(to_prior(pose0), lay, fps, prior.window, prior.fps)
        orient_windows = resample_windows(to_prior(phi0), lay, fps, prior.window, prior.fps)
        z0, _ = prior.encode(init_windows.reshape(W, prior.window, 45),
                             orient_windows.reshape(W, prior.window, 3) if options.root_from_prior else None)
    z = z0.clone().requires_grad_(True)
    if options.root_from_prior:
        # Phi_t = Phi_w D_root(z)(t) D_root(z)(0)^T: one base rotation per window, the turning inside
        # the window from the prior (the variable Phi of the table, parameterised through the prior)
        phi_w = phi0[torch.as_tensor(lay.starts, device=device)].clone().requires_grad_(True)
    else:
        phi = phi0.clone().requires_grad_(True)
    tau_v = (tau0 * TAU_SCALE).requires_grad_(True)
    beta = beta0.clone().requires_grad_(fit_beta)
    delta = torch.zeros(chunk.T, 45, device=device)
    delta0 = torch.zeros(chunk.T, 45, device=device)  # what the residual's size is measured from
    w = _weights(options.weights2, chunk.T, options)
    if not options.finger_residual:
        w = {k: v for k, v in w.items() if k not in ("res", "res_s")}
    reference = pose0.reshape(chunk.T, 15, 3)
    # each window's share of a window's worth of frames (its blend weights sum to that many frames)
    cover = lay.weight.sum(1) / lay.length if options.prior_per_window else None  # (W,)

    def decoded(z_):
        """Blended finger poses (T,45) and, with root_from_prior, global rotations (T,3)."""
        rot = prior.decode_rot(z_, lay.times)  # (W,n,16,3,3) in the prior's (right-hand) space
        fingers = to_prior(roma.rotmat_to_rotvec(rot[:, :, 1:]).reshape(W, n, 45))
        pose = blend_rotations(fingers.reshape(W, n, 15, 3), lay, chunk.T, reference).reshape(chunk.T, 45)
        if options.finger_residual:  # R_j = D(z)_j exp(delta_j), per joint in its parent's frame
            pose = roma.rotvec_composition([pose.reshape(-1, 3), delta.reshape(-1, 3)]).reshape(chunk.T, 45)
        if not options.root_from_prior:
            return pose, phi
        turn = rot[:, :1, 0].transpose(-1, -2) @ rot[:, :, 0]  # (W,n,3,3) relative to the window start
        turn = to_prior(roma.rotmat_to_rotvec(turn))
        orient = roma.rotvec_to_rotmat(phi_w)[:, None] @ roma.rotvec_to_rotmat(turn)
        phi_t = blend_rotations(roma.rotmat_to_rotvec(orient)[:, :, None], lay, chunk.T, phi0[:, None])[:, 0]
        return pose, phi_t

    def prior_term():
        if options.prior_term == "anchored":  # how far z moved from the clip's own encoding
            per_window = ((z - z0) ** 2).mean(-1)  # (W,)
        elif options.prior_term == "unit":
            per_window = (z ** 2).mean(-1)  # (W,)
        else:  # the poster's -log N(z; mu(theta), sigma(theta)), theta = D(z) the current poses
            mu, sigma = prior.encode(prior.decode(z, prior_times))
            per_window = prior.neg_log_likelihood(z, mu, sigma)
        if cover is not None:
            return (per_window * cover).sum()
        return per_window.sum() if options.prior_term == "posterior" else per_window.mean()

    def closure():
        pose, phi_t = decoded(z)
        terms = chunk.data_terms(phi_t, pose, beta, tau_v / TAU_SCALE, w)
        terms["mp"] = prior_term()
        if options.finger_residual:
            terms["res"] = L.residual_size(delta - delta0, chunk.rot_unit)
            terms["res_s"] = chunk.velocity(L.residual_smooth, delta, chunk.rot_unit)
        return sum(w[k] * terms[k] for k in w)

    if options.finger_residual and options.residual_anchor == "per-frame":
        # the residual starts where stage I's fingers are (D(z0) exp(delta0) = stage I's pose) and its
        # size is measured from there: the fingers keep stage I's pose unless the prior's motion and
        # the detections say otherwise, instead of being pulled to the decoding, which opens a fist
        with torch.no_grad():
            dec0, _ = decoded(z0)
            delta0 = roma.rotvec_composition([-dec0.reshape(-1, 3), pose0.reshape(-1, 3)]).reshape(chunk.T, 45)
            delta.copy_(delta0)
    delta.requires_grad_(options.finger_residual)
    params = [phi_w if options.root_from_prior else phi, tau_v, z] + ([beta] if fit_beta else [])
    params += [delta] if options.finger_residual else []
    ok, _ = _optimise(params, closure, options.iters_stage2, options, reporter, tol=options.tol2)
    with torch.no_grad():
        pose, phi_t = decoded(z)
    ok = ok and bool(torch.isfinite(pose).all()) and bool(torch.isfinite(phi_t).all())
    tau = (tau_v / TAU_SCALE).detach()
    if ok and options.root_motion == "filtered":
        phi_t, tau = _filter_root(chunk, phi_t.detach(), pose.detach(), beta.detach(), tau, fps, w, options, reporter)
    return phi_t.detach(), tau, beta.detach(), pose.detach(), ok


def _filter_root(chunk, phi, pose, beta, tau, fps, weights, options, reporter):
    """Stage II's "filtered" global rotation: the zero-lag One Euro filter on the chunk's per-frame
    rotation phi (t,3), then the translation tau (t,3) re-fitted to it (``options.refit_iters``
    iterations of stage II's translation terms, pose (t,45) and beta held). -> (filtered phi (t,3),
    tau (t,3))."""
    phi_f = _t(one_euro_rotations_zero_phase(phi.cpu().numpy(), fps, times=chunk.times), chunk.device)
    terms = {k: v for k, v in weights.items() if k in ("tr", "ts", "2d", "ja")}  # the terms tau enters
    if options.refit_iters == 0 or not terms:
        return phi_f, tau
    tau_v = (tau * TAU_SCALE).requires_grad_(True)

    def closure():
        values = chunk.data_terms(phi_f, pose, beta, tau_v / TAU_SCALE, terms)
        return sum(terms[k] * values[k] for k in terms)

    _optimise([tau_v], closure, options.refit_iters, options, reporter, tol=options.tol2)  # the best iterate, never worse
    return phi_f, (tau_v / TAU_SCALE).detach()


def _chunks(T, size, overlap):
    if T <= size:
        return [(0, T)]
    out, start = [], 0
    while True:
        end = min(start + size, T)
        out.append((start, end))
        if end == T:
            return out
        start = end - overlap


def _targets(keypoints_2d, confidence):
    """Detections as the fit reads them: keypoints (T,21,2) with NaN set to 0 and confidence (T,21)
    in [0, 1], 0 wherever a keypoint is missing (such a joint has no 2D term)."""
    kp2d = np.nan_to_num(np.asarray(keypoints_2d, dtype=np.float64))
    alpha = np.nan_to_num(np.asarray(confidence, dtype=np.float64)).clip(0, 1)
    alpha[~np.isfinite(np.asarray(keypoints_2d)).all(-1)] = 0.0
    return kp2d, alpha


def _run_stage1(chunks, spans, has_data, beta, results, warnings, options, reporter):
    """Stage I on every chunk with data. Updates ``results`` (per chunk: global_orient, transl) and
    returns the shape found (on the first chunk with data where stage I converged: one shape per
    clip, which the later chunks are fitted with) and, per chunk, (Phi (t,3), tau (t,3)) tensors or
    None (a chunk without data keeps the per-frame estimate)."""
    if reporter is not None:
        reporter.stage("fit1", "Fitting stage I", total=options.iters_stage1 * len(spans))
    stage1 = []
    shape_found = False
    for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
        if not has_data[k]:
            stage1.append(None)
            if reporter is not None:
                reporter.advance(options.iters_stage1)
            continue
        phi, tau, beta1, pose, ok = _stage1(chunk, beta, not shape_found, options, reporter)
        if ok:
            beta, shape_found = beta1, True
        else:
            warnings.append(f"frames {a}-{b - 1}: stage I diverged; kept the per-frame estimate there")
            phi, tau, pose = chunk.phi_hat, chunk.tau_hat, chunk.pose_hat
        stage1.append((phi, tau, pose))
        results[k].update(global_orient=phi.cpu().numpy(), transl=tau.cpu().numpy(), hand_pose=pose.cpu().numpy())
    return beta, stage1


def _run_stage2(chunks, spans, stage1, prior, beta, fps, results, warnings, options, reporter):
    """Stage II on every chunk that stage I fitted. Replaces ``results[k]`` (global_orient, transl,
    hand_pose) where it converged and returns the shape (refined, as in stage I, on the first of those
    chunks where stage II converged)."""
    iters = options.iters_stage2 + options.refit_iters
    if reporter is not None:
        reporter.stage("fit2", "Fitting stage II (motion prior)", total=iters * len(spans))
    shape_found = False
    for k, ((a, b), chunk) in enumerate(zip(spans, chunks)):
        if stage1[k] is None:
            if reporter is not None:
                reporter.advance(iters)
            continue
        phi2, tau2, beta2, pose2, ok2 = _stage2(chunk, prior, *stage1[k], beta, fps, not shape_found, options,
                                                reporter)
        if ok2:
            beta, shape_found = beta2, True
            results[k] = {"global_orient": phi2.cpu().numpy(), "transl": tau2.cpu().numpy(),
                          "hand_pose": pose2.cpu().numpy()}
        else:
            warnings.append(f"frames {a}-{b - 1}: stage II diverged; kept stage I there")
            if reporter is not None:
                reporter.advance(options.refit_iters)  # the re-fit after the filter did not run
    return beta


def _finish(model, out, init, warnings):
    """The clip's joints (T,21,3) from its blended parameters; the per-frame estimate instead if
    anything is not finite."""
    device = model.device
    with torch.no_grad():
        kp = model(_t(out["global_orient"], device), _t(out["hand_pose"], device), _t(out["betas"], device),
                   _t(out["transl"], device), vertices=False).keypoints
    out["joints"] = kp.cpu().numpy().astype(np.float64)
    for key, value in out.items():
        if not np.all(np.isfinite(value)):  # never let a NaN out: fall back to the per-frame estimate
            warnings.append(f"non-finite {key} after fitting; the per-frame estimate is used")
            return {**{k: np.asarray(init[k], np.float64) for k in ("global_orient", "transl", "hand_pose", "betas")},
                    "joints": np.asarray(init["joints"], np.float64)}
    return out


def fit_sequence(model, prior, init, keypoints_2d, confidence, K, fps, stages=2, options=None, reporter=None,
                 frame_times=None):
    """Run stages 1..``stages`` on one hand's clip (see the module docstring).

    init: the per-frame estimate (global_orient (T,3), transl (T,3), hand_pose (T,45), betas (10,),
    joints (T,21,3)); keypoints_2d (T,21,2) px (NaN where missing); confidence (T,21); K (3,3); fps;
    frame_times (T,) s or None: each frame's time; where they are uneven (a variable frame rate,
    ``temporal.uneven_times``) the smoothness terms, the prior's windows and the rotation filter use
    them, else the constant ``fps``.
    Returns ({global_orient, transl, hand_pose (T,...), betas (10,), joints (T,21,3)} float64, warnings).
    """
    return fit_stages(model, prior, init, keypoints_2d, confidence, K, fps, stages, options, reporter,
                      frame_times)[-1]


def fit_stages(model, prior, init, keypoints_2d, confidence, K, fps, stages=2, options=None, reporter=None,
               frame_times=None):
    """``fit_sequence``'s run, keeping what each stage finished with: [(out, warnings)] for stages
    1..``stages``, item k being what ``fit_sequence(..., stages=k + 1)`` returns (stage II starts from
    stage I's result, so a comparison of the stages needs only this one run)."""
    options = options or FitOptions()
    times = uneven_times(frame_times, fps)  # None on a constant frame rate
    if stages not in (1, 2):
        raise ValueError(f"stages must be 1 or 2, got {stages}")
    if stages == 2 and prior is None:
        raise ValueError("stage II needs a motion prior")
    T = len(init["global_orient"])
    warnings = []
    kp2d, alpha = _targets(keypoints_2d, confidence)
    out = {k: np.array(init[k], dtype=np.float64, copy=True) for k in ("global_orient", "transl", "hand_pose")}
    beta = _t(init["betas"], model.device)
    window_frames = int(np.floor((prior.window - 1) / prior.fps * fps)) + 1 if prior is not None else 64
    spans = _chunks(T, max(options.chunk_frames, 2 * window_frames), window_frames)
    chunks = [_Chunk(model, init, kp2d, alpha, K, slice(a, b), model.device, options, fps, times) for a, b in spans]
    has_data = [bool(alpha[a:b].any()) for a, b in spans]
    for (a, b), ok in zip(spans, has_data):
        if not ok:
            warnings.append(f"frames {a}-{b - 1}: no keypoint with confidence > 0; kept the per-frame estimate")
    results = [{key: out[key][a:b] for key in out} for a, b in spans]

    def finished():  # the clip as the last stage left it: chunks blended, joints, never a NaN
        done, said = dict(out), list(warnings)
        done.update(crossfade_chunks(spans, results, T, window_frames))
        done["betas"] = beta.cpu().numpy().astype(np.float64)
        return _finish(model, done, init, said), said

    with torch.enable_grad():
        beta, stage1 = _run_stage1(chunks, spans, has_data, beta, results, warnings, options, reporter)
        each = [finished()]
        if stages >= 2:
            beta = _run_stage2(chunks, spans, stage1, prior, beta, fps, results, warnings, options, reporter)
            each.append(finished())
    return each
