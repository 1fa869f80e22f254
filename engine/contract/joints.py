"""Joint tables: the one place that says how MANO's 16 joints and MediaPipe's 21 keypoints relate.

numpy only; shared by the engine and the Blender add-on.

MANO order (16 joints, the kinematic tree of the pose parameters)::

    0 wrist, 1-3 index1..3, 4-6 middle1..3, 7-9 pinky1..3, 10-12 ring1..3, 13-15 thumb1..3

MediaPipe order (21 keypoints)::

    0 wrist, 1-4 thumb CMC/MCP/IP/TIP, 5-8 index MCP/PIP/DIP/TIP, 9-12 middle,
    13-16 ring, 17-20 pinky
"""

import numpy as np

MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
NUM_MANO_JOINTS = 16

# parent of each MANO joint (-1: root)
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)

# MediaPipe's 21 keypoints: wrist, then thumb CMC, MCP, IP, tip, then MCP, PIP, DIP, tip of the index,
# middle, ring and pinky fingers
MEDIAPIPE_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
NUM_KEYPOINTS = 21
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")  # the order of every per-finger table here

# MediaPipe index of each MANO joint: keypoints21[MANO_TO_MEDIAPIPE] == joints16
MANO_TO_MEDIAPIPE = np.array([0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3], dtype=np.int64)

# MediaPipe indices of the palm's rigid points: the wrist and the four finger knuckles (MCPs)
PALM_MEDIAPIPE = [0, 5, 9, 13, 17]

# MediaPipe indices of the five fingertips, thumb..pinky (not MANO joints: taken from mesh vertices)
FINGERTIPS_MEDIAPIPE = np.array([4, 8, 12, 16, 20], dtype=np.int64)

# The MANO joint each fingertip hangs from, thumb..pinky
FINGERTIP_PARENT_MANO = np.array([15, 3, 6, 12, 9], dtype=np.int64)

# MANO mesh vertex ids used as fingertips (thumb, index, middle, ring, pinky), as smplx uses them
MANO_FINGERTIP_VERTEX_IDS = np.array([744, 320, 443, 554, 671], dtype=np.int64)

# Parent of each MediaPipe keypoint (-1: root), for drawing and bone lengths
MEDIAPIPE_PARENTS = np.array(
    [-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19], dtype=np.int64
)

# Inverse map: for each MediaPipe keypoint, its MANO joint (or -1 for the fingertips)
MEDIAPIPE_TO_MANO = np.full(NUM_KEYPOINTS, -1, dtype=np.int64)
MEDIAPIPE_TO_MANO[MANO_TO_MEDIAPIPE] = np.arange(NUM_MANO_JOINTS)


def mano_to_mediapipe(joints16: np.ndarray, tips5: np.ndarray) -> np.ndarray:
    """Assemble the 21 MediaPipe-order keypoints from MANO joints and fingertips.

    joints16: (..., 16, 3) in MANO order; tips5: (..., 5, 3) thumb..pinky.
    Returns (..., 21, 3).
    """
    joints16 = np.asarray(joints16)
    out = np.empty(joints16.shape[:-2] + (NUM_KEYPOINTS, joints16.shape[-1]), dtype=joints16.dtype)
    out[..., MANO_TO_MEDIAPIPE, :] = joints16
    out[..., FINGERTIPS_MEDIAPIPE, :] = tips5
    return out
