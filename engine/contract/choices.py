"""Every option with a fixed set of values, and the progress stage names: the one list that the CLI
(``engine.commands.cli``), the capture (``engine.capture``), the add-on's properties and runner and the
headless scripts read. Pure Python, no imports: the Blender add-on imports it.
"""

SIDES = ("right", "left")  # a hand (result files, tracks, models)
HANDS = ("right", "left", "both")  # --hands
QUALITIES = ("draft", "balanced", "best")  # --quality (what each does: engine.capture.QUALITY_PRESETS)
DEVICES = ("auto", "cpu", "cuda")  # --device (also "cuda:N", see engine.util.device)
ROOT_MOTIONS = ("filtered", "prior", "free")  # --root-motion: stage II's global rotation
PRIOR_TERMS = ("anchored", "unit", "posterior")  # --prior-term: stage II's prior term
KEYPOINT_SOURCES = ("blend", "mediapipe")  # --keypoint-source: the 2D keypoints the fit sees
PROGRESS_MODES = ("bar", "jsonl", "quiet")  # --progress
FIT_STAGES = (0, 1, 2)  # --stages: 0 per-frame estimate, 1 + stage I, 2 + stage II
# --hand-size: the hand's wrist-to-middle-knuckle length in mm, accepted from / to (unset or, in the
# add-on's panel, 0: the hand model's own size)
HAND_SIZE_MM = (40.0, 150.0)

# the defaults of a capture (python -m engine capture, the add-on's panel)
DEFAULT_HANDS = "right"
DEFAULT_QUALITY = "balanced"
DEFAULT_DEVICE = "auto"
DEFAULT_ROOT_MOTION = "filtered"
DEFAULT_PRIOR_TERM = "anchored"
DEFAULT_KEYPOINT_SOURCE = "blend"
DEFAULT_FIT_STAGES = 2

# the stages of a capture, in order, as its progress events name them (engine.contract.progress)
CAPTURE_STAGES = ("read", "detect", "init", "fit1", "fit2", "write", "preview")
TRAIN_STAGES = ("train",)  # python -m engine train-prior
BATCH_STAGE = "batch"  # python -m engine batch: the whole batch (its events also carry the clip)


def sides_of(hands: str) -> tuple:
    """``--hands`` value -> the hands it captures: "both" -> ("right", "left")."""
    return SIDES if hands == "both" else (hands,)

# python -m engine live: a take with fewer frames than this is kept but not fitted (the add-on says so):
# a quarter of a second at 30 fps, too little motion for the two-stage fit to mean anything
LIVE_MIN_FRAMES = 8
