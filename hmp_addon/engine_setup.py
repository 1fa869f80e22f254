"""Set up the engine's own Python environment from inside Blender (no terminal needed).

A virtual environment in the extension's user folder (``bpy.utils.extension_path_user``), made
with a base Python (Blender's own by default), then ``pip install -r requirements.txt`` (the
extension's pinned engine requirements). torch: the CUDA build when an NVIDIA GPU is found
(``nvidia-smi`` answers), the CPU build otherwise, or as the user chooses. Offline: a local folder
of wheels (``--no-index --find-links``). Re-running repairs (pip re-checks every pin). Runs in a
background thread; the preferences show its progress and the last lines of its log.
"""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from .engine_link import EXTENSION_ROOT

TORCH_INDEX = {"cuda": "https://download.pytorch.org/whl/cu126", "cpu": "https://download.pytorch.org/whl/cpu"}


def venv_python(venv_dir):
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def detect_torch_variant():
    """'cuda' when an NVIDIA driver answers, else 'cpu'."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "cpu"
    try:
        return "cuda" if subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0 else "cpu"
    except (OSError, subprocess.SubprocessError):
        return "cpu"


def setup_commands(venv_dir, requirements, base_python=None, wheel_dir=None, torch_variant="auto"):
    """The argument lists the set-up runs, in order (never a shell string)."""
    base_python = base_python or sys.executable
    py = str(venv_python(venv_dir))
    cmds = []
    if not venv_python(venv_dir).exists():
        cmds.append([base_python, "-m", "venv", str(venv_dir)])
    install = [py, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)]
    if wheel_dir:
        install += ["--no-index", "--find-links", str(wheel_dir)]
    else:
        variant = detect_torch_variant() if torch_variant == "auto" else torch_variant
        if variant in TORCH_INDEX:
            install += ["--extra-index-url", TORCH_INDEX[variant]]
    cmds.append(install)
    cmds.append([py, "-c", "import sys; print(sys.version)"])
    return cmds


class EngineSetup:
    """Runs the set-up commands in a thread. ``state``: running | done | failed; ``lines``: log."""

    def __init__(self, venv_dir, requirements=None, base_python=None, wheel_dir=None, torch_variant="auto"):
        requirements = requirements or Path(EXTENSION_ROOT) / "requirements.txt"
        if not Path(requirements).is_file():
            raise FileNotFoundError(f"engine requirements not found: {requirements}")
        if wheel_dir and not Path(wheel_dir).is_dir():
            raise FileNotFoundError(f"wheel folder not found: {wheel_dir}")
        self.venv_dir = Path(venv_dir)
        self.commands = setup_commands(venv_dir, requirements, base_python, wheel_dir, torch_variant)
        self.lines = []
        self.step = 0
        self.state = "running"
        self.error = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def python(self):
        return str(venv_python(self.venv_dir))

    @property
    def fraction(self):
        return self.step / len(self.commands)

    def start(self):
        self._thread.start()
        return self

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return self.state

    def _run(self):
        env = dict(os.environ, PIP_NO_INPUT="1")
        env.pop("PYTHONPATH", None)  # Blender's own paths must not leak into the new environment
        try:
            for cmd in self.commands:
                self.lines.append("$ " + " ".join(cmd))
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                for line in proc.stdout:
                    self.lines.append(line.rstrip())
                    del self.lines[:-200]
                if proc.wait() != 0:
                    self.error = (f"step {self.step + 1} of {len(self.commands)} failed "
                                  f"({os.path.basename(cmd[0])} {' '.join(cmd[1:4])}...): "
                                  + (self.lines[-1] if self.lines else f"exit {proc.returncode}"))
                    self.state = "failed"
                    return
                self.step += 1
            self.state = "done"
        except OSError as exc:
            self.error = f"cannot run {self.commands[self.step][0]}: {exc.strerror or exc}"
            self.state = "failed"
