"""The benchmark's truth is not the fitted model: the open default hand with other proportions."""

from typing import TYPE_CHECKING

import numpy as np

from engine.contract.joints import FINGERTIP_PARENT_MANO

if TYPE_CHECKING:  # torch is imported when the hand is made
    from engine.hand_model import HandModel

SPREAD = 0.15  # finger segment lengths within +-15 % of the default hand's


def rescaled_hand(rng: np.random.Generator, spread: float = SPREAD) -> tuple["HandModel", dict]:
    """The open default right hand with other proportions (see the module docstring, item 1).

    Returns the hand (an ``engine.hand_model.HandModel``, posed like any other, betas zero) and a
    dict: ``size`` (overall factor), ``palm`` (length, width factors) and ``segments`` (15,): the
    factor of the bone from each MANO joint 1..15 to its child (the distal ones: to the fingertip).
    """
    from engine.hand_model import HandModel, load_hand_model

    base = load_hand_model("right")
    v = base.v_template.numpy().astype(np.float64)  # (V,3) model frame: fingers -y, palm normal +x
    j = base.j_template.numpy().astype(np.float64)  # (16,3)
    W = base.skin_weights.numpy().astype(np.float64)  # (V,16)
    parents, tips = base.parents.numpy(), base.tip_ids.numpy()
    # overall size (at least 5 % away from the model's) and palm proportions: a scale about the wrist
    size = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.12)
    palm = (rng.uniform(0.93, 1.07), rng.uniform(0.93, 1.07))  # length (y), width (z)
    A = size * np.array([1.0, palm[0], palm[1]])
    v = j[0] + (v - j[0]) * A
    j = j[0] + (j - j[0]) * A
    # the end of each finger joint's bone: its child joint, or the fingertip vertex
    end = np.zeros((16, 3))
    for k in range(1, 16):
        kids = np.flatnonzero(parents == k)
        end[k] = j[kids[0]] if len(kids) else v[tips[list(FINGERTIP_PARENT_MANO).index(k)]]
    finger = rng.uniform(1 - spread, 1 + spread, 5)  # index, middle, pinky, ring, thumb (MANO's order)
    seg = np.ones(16)
    seg[1:] = np.clip(np.repeat(finger, 3) * rng.uniform(0.93, 1.07, 15), 1 - spread, 1 + spread)
    j_new = j.copy()
    for k in range(1, 16):  # parents come first
        p = parents[k]
        j_new[k] = j_new[p] + (j[k] - j[p]) * seg[p]
    # each vertex follows its bones: translated with the bone's joint, stretched along the bone's axis
    v_new = W[:, :1] * v
    for k in range(1, 16):
        axis = end[k] - j[k]
        length = np.linalg.norm(axis)
        axis /= length
        along = np.clip((v - j[k]) @ axis, 0.0, length)[:, None]
        v_new += W[:, k:k + 1] * (v + (j_new[k] - j[k]) + (seg[k] - 1.0) * along * axis)
    hand = HandModel("default, rescaled", "right", v_new, base.faces.numpy(), W, base.shapedirs.numpy(), parents,
                     tips, j_template=j_new, j_shapedirs=base.j_shapedirs.numpy())
    return hand.eval(), {"size": float(size), "palm": tuple(float(x) for x in palm), "segments": seg[1:]}
