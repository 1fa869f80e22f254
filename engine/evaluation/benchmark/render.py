"""Rendering a scene with Blender (``benchmarks/render_gt.py`` in a subprocess: the engine never
imports bpy), and the work folder's reuse: a clip rendered from the same scene, another process
rendering it, the fits a run of the same clip left there."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from engine.util.atomic import atomic_path, process_alive, save_npz
from engine.util.errors import EngineError

from .scene import ROOT

RENDER_SCRIPT = ROOT / "benchmarks" / "render_gt.py"


def same_scene(path: Path, scene: dict) -> bool:
    """Whether the scene file at ``path`` holds ``scene`` (the clip there was rendered from it)."""
    if not path.is_file():
        return False
    with np.load(path) as d:
        return set(d.files) == set(scene) and all(
            d[k].shape == np.shape(v) and np.allclose(d[k], v, atol=1e-6) for k, v in scene.items())


def wait_for_other_render(video_path: Path) -> None:
    """Another benchmark process rendering into the same --workdir (its pid in VIDEO.lock): wait for it."""
    lock = Path(f"{video_path}.lock")
    while not video_path.is_file() and lock.is_file():
        try:
            pid = int(lock.read_text() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid <= 0 or pid == os.getpid() or not process_alive(pid):
            break
        time.sleep(5.0)


def save_fits(path: Path, results: dict) -> None:
    """{side: (joints {method: (T,21,3)} or None, share of frames detected)} -> ``path`` (.npz)."""
    arrays = {}
    for side, (joints, detected) in results.items():
        arrays[f"{side}/detected"] = np.array(detected)
        for meth, j in (joints or {}).items():
            arrays[f"{side}/{meth}"] = j
    save_npz(path, arrays, ".hmp-fits-")


def load_fits(path: Path, sides: tuple[str, ...]) -> dict:
    """What ``save_fits`` wrote, for ``sides``."""
    with np.load(path) as d:
        out = {}
        for side in sides:
            joints = {k.split("/", 1)[1]: d[k] for k in d.files if k.startswith(f"{side}/") and k != f"{side}/detected"}
            out[side] = (joints or None, float(d[f"{side}/detected"]))
    return out


def render(scene_npz: Path, video_path: Path) -> None:
    """Render the scene file (``make_clip``'s scene) to ``video_path`` with Blender in a subprocess; the
    video appears whole or not at all; EngineError when bpy is missing or the render fails."""
    import importlib.util

    if importlib.util.find_spec("bpy") is None:  # looked up, never imported: rendering is a subprocess
        raise EngineError("the benchmark renders with Blender: install the test requirements "
                          "(pip install -r requirements-dev.txt, which has bpy)") from None
    if not RENDER_SCRIPT.is_file():
        raise EngineError(f"{RENDER_SCRIPT} is missing (the benchmark runs from a source checkout)")
    lock = Path(f"{video_path}.lock")
    lock.write_text(str(os.getpid()))
    try:
        # the clip appears under its name only once complete
        with atomic_path(video_path, ".hmp-render-", ".mp4") as partial:
            proc = subprocess.run([sys.executable, str(RENDER_SCRIPT), str(scene_npz), partial], capture_output=True,
                                  text=True)
            if proc.returncode != 0 or not os.path.isfile(partial) or not os.path.getsize(partial):
                lines = [ln for ln in proc.stderr.strip().splitlines() if "Warning" not in ln and "use_nodes" not in ln]
                raise EngineError(f"rendering failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    finally:
        lock.unlink(missing_ok=True)
