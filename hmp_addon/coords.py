"""The one place where the engine's camera frame becomes Blender's world frame (numpy only).

Result files use OpenCV camera coordinates: x right, y down, z forward, metres. In Blender the
camera sits at the origin looking along +Y with +Z up, so a camera-frame vector v maps to
``CV_TO_BLENDER @ v``: (x, y, z)_cv -> (x, z, -y)_blender. It is a proper rotation (det +1), so
rotations convert by conjugation: R_blender = C @ R_cv @ C.T.
"""

import math

import numpy as np

CV_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (3, 3)

# Blender camera object rotation (XYZ Euler, radians) looking along +Y with +Z up.
CAMERA_EULER = (math.pi / 2.0, 0.0, 0.0)


def points_to_blender(points):
    """(..., 3) camera-frame points/vectors -> (..., 3) Blender world."""
    return np.asarray(points, dtype=np.float64) @ CV_TO_BLENDER.T


def matrix_array(m, size: int = 3) -> np.ndarray:
    """A Blender ``Matrix`` (or any nested sequence of rows) -> (size, size) float64 array: its
    top-left block, rows as in Blender (``matrix_local``, ``matrix_world``, a pose bone's ``matrix``)."""
    return np.array(m, dtype=np.float64)[:size, :size]


def camera_settings(K, image_size, sensor_width=36.0):
    """Blender camera data values matching intrinsics K (3, 3) and image_size (width, height).

    Returns dict: lens (mm), sensor_width (mm), sensor_fit, shift_x, shift_y, resolution (w, h).
    With sensor_fit 'HORIZONTAL' the sensor width spans the image width; shifts are in units of
    the larger image side (Blender's convention), y up.
    """
    K = np.asarray(K, dtype=np.float64)
    width, height = int(image_size[0]), int(image_size[1])
    fx, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    side = float(max(width, height))
    return {
        "lens": float(fx * sensor_width / width),
        "sensor_width": float(sensor_width),
        "sensor_fit": "HORIZONTAL",
        "shift_x": float(-(cx - width / 2.0) / side),
        "shift_y": float((cy - height / 2.0) / side),
        "resolution": (width, height),
    }
