"""The fit's options and the weights of its terms (docs/method.md section 5; the departures from the
paper, section 6, whose items a-o cite the numbers 1-9 below).

    options = FitOptions(iters_stage1=100, iters_stage2=100)      # the defaults: the project's fit
    options = FitOptions.literal()                                # the method's table read as written
    w = stage_weights(options.weights1, T, options)               # a chunk's weights, L_beta x T

``init`` is the per-frame estimate (engine.fit.per_frame): its global_orient, transl, hand_pose and betas
are both the starting point and the hatted targets. Stage I optimises the global rotation Phi, the
translation tau and the shape beta (and, departing from the table, the fingers: 9. below); stage II
adds one latent z of the motion prior per window, the finger pose being the prior's decoding of z.

| stage | variables                 | losses and weights                                             |
| I     | Phi, tau, beta            | L_o 3, L_tr 1, L_os 1, L_ts 5, L_beta 3, L_2D 0.05              |
| II    | Phi, tau, beta, z (+delta)| L_o 2, L_tr 1, L_os 1, L_beta 10, L_2D 0.05, L_MP 300 (+ L_ts 5, |
|       |                           | residual size 0.02, residual smoothness 0.1, L_ja 0.01)        |

Where this departs from the table as written, and why (each measured in docs/history.md, on the
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
   away from confident detections (docs/history.md has the figures). With it the prior
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
   pulled the hands of a 5 fps two-hand clip far from their detections (docs/history.md).
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
   per-frame estimate, ``losses.pose_data``, off by default) trades PA-MPJPE for RA-MPJPE on the
   rendered clips where RA-MPJPE was lost (the palm towards the camera: history.md's records call
   them back views, the names were swapped then; docs/history.md, "Accuracy: rendered ground truth").
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

9. Fingers the prior has not seen (issue 21; docs/history.md, "Fingers on hands the prior has not
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
   What each costs and buys is measured in docs/history.md.

L_MP has three forms. ``prior_term="anchored"`` (default) is above. ``prior_term="posterior"`` is the
poster's -log N(z; mu(theta), sigma(theta)), (mu, sigma) the encoder's posterior of the current pose
sequence theta = D(z), differentiated through all of it. ``prior_term="unit"`` is the authors' code's
mean(z^2) (the default before issue 21): with a prior trained on open data far smaller than AMASS,
the posterior term held z so tightly that stage II lost finger accuracy, and the unit term pulls
every hand towards the relaxed one z = 0 decodes. z starts at the encoder's mean for stage I's poses.
"""

from dataclasses import dataclass, field

from engine.contract import choices
from engine.fit import losses as L

# "nw" (off by default; a weight in weights1 / weights2 turns it on): no confidently seen joint ends
# farther from its keypoint than the per-frame estimate put it, beyond NO_WORSE_MARGIN hand units
# (losses.no_worse). Measured (docs/history.md): at a weight of 10 it held stage II 0.5 px nearer the ASL
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
# detections' noise; docs/history.md, "Fingers on hands the prior has not seen")
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
    # over frames, as fitting codes commonly do (docs/history.md). False = the literal sums.
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
    def literal(cls, **changes: object) -> "FitOptions":
        """The method's table read literally: radians and metres, no stage II translation smoothness or
        joint acceleration, fingers from the prior alone, L_MP as one mean over windows (stage II's rotation is
        ``root_motion``'s choice: "free" is the table's per-frame rotation)."""
        base = dict(units="rad-m", finger_residual=False, prior_per_window=False, smooth_per_second=False,
                    scale_free_2d=False, stage1_fingers=False, prior_term="unit", weights1=dict(STAGE1_WEIGHTS),
                    weights2=dict(STAGE2_WEIGHTS))
        return cls(**{**base, **changes})

    @property
    def root_from_prior(self) -> bool:
        """Stage II's global rotation through the prior's root channel (root_motion \"prior\")."""
        return self.root_motion == "prior"

    @property
    def refit_iters(self) -> int:
        """Iterations of the translation re-fit after stage II's rotation filter (0 without one)."""
        return int(round(self.iters_stage2 * self.transl_refit)) if self.root_motion == "filtered" else 0

    @property
    def unit_scales(self) -> tuple[float, float]:
        """(rotation, translation) factors of the loss terms: degrees per radian, cm per metre."""
        return L.UNITS[self.units]


def stage_weights(weights: dict[str, float], T: int, options: FitOptions,
                  without: tuple[str, ...] = ()) -> dict[str, float]:
    """The table's weights (name -> weight) for a chunk of T frames, L_beta scaled by T when
    ``options.shape_reg_per_frame``, the terms ``without`` left out."""
    w = dict(weights)
    if options.shape_reg_per_frame:
        w["beta"] = w["beta"] * T
    return {k: v for k, v in w.items() if k not in without} if without else w
