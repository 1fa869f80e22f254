"""The hand motion prior (docs/method.md section 4): model, data, training, and loading.

    prior = load_prior(path=None, device="cpu")     # the shipped weights by default
    prior.window, prior.fps                           # frames per window, frames per second
    mu, sigma = prior.encode(hand_pose (B,T,45) [, global_orient (B,T,3)])
    hand_pose = prior.decode(z (B,D), times (B,T) seconds from the window start)
    nll = prior.neg_log_likelihood(z, mu, sigma)      # (B,)

Checkpoints are plain dicts of tensors and numbers, saved with ``torch.save`` and read with
``torch.load(weights_only=True)`` (no arbitrary pickle). What the shipped weights were trained on:
docs/prior.md.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.util.atomic import atomic_path
from engine.util.errors import EngineError

if TYPE_CHECKING:  # torch is imported only when a prior is loaded
    from engine.prior.model import MotionPrior

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "prior" / "prior.pt"
CHECKPOINT_FORMAT = "hmp-motion-prior"
CHECKPOINT_VERSION = 1


def checkpoint_of(model: "MotionPrior", extra: dict | None = None) -> dict:
    """The checkpoint dict of ``model``: format, version, config, state_dict (CPU tensors), + ``extra``."""
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": dict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **(extra or {})}


def save_checkpoint(path: str | os.PathLike, model: "MotionPrior", extra: dict | None = None) -> Path:
    """Write ``model`` (+ ``extra`` entries) to ``path`` (.pt) atomically; returns the path."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".tmp-", ".pt") as tmp:
        torch.save(checkpoint_of(model, extra), tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict at ``path``, read with ``weights_only``; EngineError when it is missing,
    unreadable, not a motion prior checkpoint or newer than this engine."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"motion prior checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding non-tensor objects
        raise EngineError(f"cannot read the motion prior checkpoint {path} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise EngineError(f"{path} is not an HMP motion prior checkpoint")
    if int(ckpt.get("version", 0)) > CHECKPOINT_VERSION:
        raise EngineError(f"{path} is a newer motion prior checkpoint (version {ckpt['version']}): update the engine")
    return ckpt


def load_prior(path: str | os.PathLike | None = None, device: str = "cpu") -> "MotionPrior":
    """The motion prior from ``path`` (default: the shipped weights), in eval mode on ``device``."""
    from engine.prior.model import MotionPrior

    ckpt = read_checkpoint(DEFAULT_WEIGHTS if path is None else path)
    state = ckpt["state_dict"]
    try:
        model = MotionPrior(state["rest_joints"], **ckpt["config"])
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise EngineError(f"motion prior checkpoint {path or DEFAULT_WEIGHTS} does not match this engine's model "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    model.requires_grad_(False)
    return model.to(device).eval()
