"""The torch device a command runs on: ``--device auto|cpu|cuda|cuda:N`` -> a device string."""

from engine.util.errors import EngineError


def resolve_device(name: str | None) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string; EngineError when unusable."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise EngineError(f"device '{name}' requested but no CUDA GPU is available to this torch "
                              f"({torch.__version__}); use --device cpu or auto")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise EngineError(f"device '{name}' does not exist: {torch.cuda.device_count()} CUDA device(s) found")
        return name
    raise EngineError(f"unknown device '{name}': use auto, cpu or cuda")
