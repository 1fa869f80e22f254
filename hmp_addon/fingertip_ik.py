"""Fingertip IK beside the rotation copy (numpy only): each finger mapped whole is bent and swung so
that its tip reaches the captured fingertip scaled to the target hand (``reach_fingertips``)."""

import numpy as np

from .engine_link import joints as J
from .poses import PARENTS
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle, relative, rotate, shortest_arc


def _finger_chain(k: int) -> tuple:
    """(j1, j2, j3, tip): finger k's MANO joints from the wrist out, then its MediaPipe fingertip."""
    chain, j = [], int(J.FINGERTIP_PARENT_MANO[k])
    while j > 0:  # up to the wrist
        chain.insert(0, j)
        j = PARENTS[j]
    return (*chain, int(J.FINGERTIPS_MEDIAPIPE[k]))


# MANO joints of each finger, then its MediaPipe fingertip, thumb..pinky (from engine.contract.joints' tables)
FINGER_CHAINS = {finger: _finger_chain(k) for k, finger in enumerate(J.FINGER_NAMES)}


def reach_fingertips(Y: dict, steps: dict, target: dict, heads: dict, tips: np.ndarray, scale: float,
                     iterations: int = 30) -> tuple[dict, dict]:
    """Fingertip IK beside the rotation copy: ``Y`` {joint: (T,3,3)} world changes -> (a new such
    dict with the fingers' changes replaced, {finger: (T,) distance left}); ``Y`` is not changed.

    A target whose fingers are longer or shorter, relative to its palm, than the captured hand's puts
    its fingertips elsewhere even when every bone turns as captured. For each finger mapped whole
    (three chained bones under the wrist), its fingertip (the last bone's tail) is brought to the
    captured fingertip scaled to the target's size (``tips`` (T,5,3): captured fingertip minus wrist,
    armature space, thumb..pinky as FINGER_CHAINS): first the finger's two bends are scaled by one
    factor until the base-to-tip distance matches (bisection; a finger too short stays straight),
    then the whole finger swings about its base onto the fingertip. Distances are in armature units.
    heads {joint: (3,)} the mapped bones' rest heads; scale: ``hand_scale``."""
    Y, left = dict(Y), {}
    for k, (finger, (j1, j2, j3, _)) in enumerate(FINGER_CHAINS.items()):
        if 0 not in Y or any(j not in steps or steps[j]["flat"] for j in (j1, j2, j3)):
            continue
        if (steps[j1]["parent"], steps[j2]["parent"], steps[j3]["parent"]) != (0, j1, j2):
            continue
        hw = heads[0]
        b = hw + rotate(Y[0], heads[j1] - hw)  # (T,3) the finger's base moves with the wrist
        v1, v2 = heads[j2] - heads[j1], heads[j3] - heads[j2]
        v3 = np.asarray(target[steps[j3]["bone"]]["tail"], np.float64) - heads[j3]
        P = hw + scale * tips[:, k]  # (T,3) where the fingertip should be
        Y1, Y2, Y3 = Y[j1], Y[j2], Y[j3]
        rel2 = matrix_to_axis_angle(relative(Y1, Y2))  # (T,3) the finger's two bends
        rel3 = matrix_to_axis_angle(relative(Y2, Y3))

        def chain(f):
            Y2f = Y1 @ axis_angle_to_matrix(rel2 * f[:, None])
            Y3f = Y2f @ axis_angle_to_matrix(rel3 * f[:, None])
            end = b + rotate(Y1, v1) + rotate(Y2f, v2) + rotate(Y3f, v3)
            return Y2f, Y3f, end

        want = np.linalg.norm(P - b, axis=-1)
        lo, hi = np.zeros(len(b)), np.full(len(b), 2.5)  # bend factor: 0 straight .. 2.5 curled further
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            too_long = np.linalg.norm(chain(mid)[2] - b, axis=-1) > want
            lo, hi = np.where(too_long, mid, lo), np.where(too_long, hi, mid)
        Y2f, Y3f, end = chain(0.5 * (lo + hi))
        R = shortest_arc(end - b, P - b)  # (T,3,3) swing about the base
        Y[j1], Y[j2], Y[j3] = R @ Y1, R @ Y2f, R @ Y3f
        left[finger] = np.linalg.norm(b + rotate(R, end - b) - P, axis=-1)
    return Y, left
