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


# torch's intra-op threads for the CPU fit of ``engine capture`` (issue 22). The fit's tensors are small
# (a few hundred frames x 21 joints): a second thread saves little on an idle 2-core CPU, and where
# the cores are shared (MediaPipe's own threads, other processes) torch's threads wait on each other:
# on this project's shared 2-core machine a capture took 10-18x the CPU seconds with 2 threads as with
# 1 (docs/history.md, "Speed"). HMP_TORCH_THREADS sets another number.
DEFAULT_CPU_THREADS = 1


def set_cpu_threads(threads: int | str | None = None) -> int:
    """Set torch's intra-op threads (``threads``, else env HMP_TORCH_THREADS, else
    DEFAULT_CPU_THREADS); returns the number set."""
    import os

    import torch

    if threads is None:
        try:
            threads = int(os.environ.get("HMP_TORCH_THREADS", DEFAULT_CPU_THREADS))
        except ValueError:
            threads = DEFAULT_CPU_THREADS
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    return threads
