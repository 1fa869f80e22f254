"""The pinhole camera (OpenCV: x right, y down, z forward; metres; intrinsics K (3,3) in pixels), numpy only."""

import numpy as np


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """points (..., 3) camera frame, metres; K (3,3) px -> pixels (..., 2).

    Depths below 1e-6 m (points at or behind the camera) are clamped to 1e-6: callers that must not
    see such points check ``points[..., 2] > 0`` first (``engine.evaluation.metrics.error_2d`` does).
    The fit's differentiable twin (torch) is ``engine.fit.losses.project``.
    """
    z = np.maximum(points[..., 2:3], 1e-6)
    return points[..., :2] / z * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
