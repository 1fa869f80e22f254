"""Set up the engine's own Python environment from inside Blender (no terminal needed).

A virtual environment in the extension's user folder (``bpy.utils.extension_path_user``), made
with a base Python (Blender's own by default), then ``pip install -r requirements.txt`` (the
extension's pinned engine requirements). torch: the CUDA build when an NVIDIA GPU is found
(``nvidia-smi`` answers), the CPU build otherwise, or as the user chooses. Offline: a local folder
of wheels (``--no-index --find-links``, with pip's configuration files and PIP_* variables shut out).
A failed set-up removes the environment it created. Re-running repairs (pip re-checks every pin).
Runs in a background thread; the preferences show its progress and the last lines of its log.
"""

import functools
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from .engine_link import EXTENSION_ROOT

TORCH_INDEX = {"cuda": "https://download.pytorch.org/whl/cu126", "cpu": "https://download.pytorch.org/whl/cpu"}
TORCH_VARIANTS = ("auto", *TORCH_INDEX)  # the torch builds to choose from: auto = detect_torch_variant()


def venv_python(venv_dir):
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@functools.lru_cache(maxsize=1)  # asked by the preferences' draw(): run nvidia-smi once a session
def detect_torch_variant():
    """'cuda' when an NVIDIA driver answers, else 'cpu'."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "cpu"
    try:
        return "cuda" if subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0 else "cpu"
    except (OSError, subprocess.SubprocessError):
        return "cpu"


# What a network install puts on disk, as the user is told (the measurement: docs/blender.md)
DOWNLOAD_SIZE = {"cuda": "about 5.5 GB (CUDA torch brings NVIDIA's libraries)", "cpu": "about 1.6 GB"}


def network_warning(torch_variant="auto"):
    """One line for the user before a network install: what it downloads, and how to avoid it."""
    variant = detect_torch_variant() if torch_variant == "auto" else torch_variant
    size = DOWNLOAD_SIZE.get(variant, DOWNLOAD_SIZE["cpu"])
    return (f"Set Up Engine downloads Python packages from the network ({variant.upper()} torch, MediaPipe, "
            f"OpenCV...): {size} on disk; set a Wheel Folder to install offline")


def wheel_files(wheel_dir):
    """The package files in a wheel folder (wheels and source archives)."""
    return sorted(p for p in Path(wheel_dir).iterdir() if p.suffix in (".whl", ".gz", ".zip", ".bz2"))


def pip_env(offline):
    """The environment pip runs in. Offline: isolated from the user's pip set-up (no configuration
    file: PIP_CONFIG_FILE=os.devnull makes pip skip the global, user and site files; no PIP_*
    variables), so only the wheel folder is read. Online: the user's proxies and mirrors apply."""
    env = dict(os.environ, PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)  # Blender's own paths must not leak into the new environment
    env.pop("PYTHONHOME", None)
    if offline:
        for key in [k for k in env if k.startswith("PIP_")]:
            del env[key]
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1")
    return env


def setup_commands(venv_dir, requirements, base_python=None, wheel_dir=None, torch_variant="auto"):
    """The argument lists the set-up runs, in order (never a shell string)."""
    base_python = base_python or sys.executable
    py = str(venv_python(venv_dir))
    cmds = []
    if not venv_python(venv_dir).exists():
        cmds.append([base_python, "-m", "venv", str(venv_dir)])
    install = [py, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)]
    if wheel_dir:
        install += ["--no-index", "--find-links", str(wheel_dir)]  # never the network
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
        if wheel_dir and not wheel_files(wheel_dir):
            raise FileNotFoundError(f"the wheel folder {wheel_dir} holds no wheels: fill it with "
                                    "`pip download -r requirements.txt -d DIR` (see docs/blender.md)")
        self.venv_dir = Path(venv_dir)
        self.offline = bool(wheel_dir)
        # made by this set-up (not a repair of an existing one): removed again if the set-up fails
        self.creates = not venv_python(venv_dir).exists()
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
        env = pip_env(self.offline)
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
                    self._fail()
                    return
                self.step += 1
            self.state = "done"
        except OSError as exc:
            self.error = f"cannot run {self.commands[self.step][0]}: {exc.strerror or exc}"
            self._fail()

    def _fail(self):
        """A failed set-up leaves nothing behind: an environment it created is removed (a repair of an
        existing one keeps it: it worked before and pip changes packages one by one)."""
        if self.creates and self.venv_dir.exists():
            shutil.rmtree(self.venv_dir, ignore_errors=True)
            self.lines.append(f"removed the incomplete environment {self.venv_dir}")
        self.state = "failed"
