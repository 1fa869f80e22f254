"""The engine subprocess: launch, read its progress protocol without blocking, cancel, clean up.

No bpy here: a capture job (``jobs.CaptureJob``) drives an ``EngineRun`` by calling ``poll()``
(non-blocking) until ``finished``; the modal operator steps the job on a timer, the blocking operator
path and the headless script through ``jobs.run_to_end``.
"""

import atexit
import collections
import os
import queue
import subprocess
import threading

from .engine_link import EXTENSION_ROOT, progress
from .engine_link import choices as C

# Rough share of the whole capture taken by each engine stage, for one overall progress bar.
# (Guessed, in the order of engine.contract.choices.CAPTURE_STAGES: read, detect, init, fit1, fit2, write, preview;
# only the bar's pace depends on it.)
STAGE_WEIGHTS = dict(zip(C.CAPTURE_STAGES, (0.02, 0.40, 0.08, 0.20, 0.24, 0.03, 0.03), strict=True))

_LIVE = set()  # EngineRun objects whose process may still be running
_LIVE_LOCK = threading.Lock()


class EngineSetupError(Exception):
    """The engine cannot be started (not configured, missing interpreter, bad arguments)."""


def engine_env(root=EXTENSION_ROOT):
    """Environment for the engine: the extension root first on PYTHONPATH so `-m engine` resolves."""
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive as they are printed
    env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into the engine's
    return env


def check_engine_python(engine_python):
    """Raise EngineSetupError with what to do when the interpreter setting is unusable."""
    if not engine_python:
        raise EngineSetupError(
            "engine Python is not set: in Preferences > Add-ons > HMP Hand Capture, set 'Engine Python' "
            "to the python of an environment with the engine's requirements installed"
        )
    if not os.path.isfile(engine_python):
        raise EngineSetupError(f"engine Python not found: {engine_python} (fix it in the add-on preferences)")
    if not os.access(engine_python, os.X_OK):
        raise EngineSetupError(f"engine Python is not executable: {engine_python}")


def capture_argv(engine_python: str, video, out, hands: str = C.DEFAULT_HANDS, device: str = C.DEFAULT_DEVICE,
                 quality: str = C.DEFAULT_QUALITY,
                 start: int | None = None, end: int | None = None, mano_dir="", root_motion: str | None = None,
                 fov: float | None = None, K=None, hand_size: float | None = None) -> list[str]:
    """The engine command line (an argument list, never a shell string). fov: horizontal field of
    view in degrees; K: (fx, fy, cx, cy) in pixels; neither: the engine estimates them. hand_size:
    wrist to middle-finger knuckle in mm (None or 0: the hand model's own)."""
    argv = [engine_python, "-m", "engine", "capture", os.fspath(video), "--out", os.fspath(out),
            "--progress", "jsonl", "--hands", hands, "--device", device, "--quality", quality]
    if start is not None:
        argv += ["--start", str(int(start))]
    if end is not None:
        argv += ["--end", str(int(end))]
    if mano_dir:
        argv += ["--mano-dir", os.fspath(mano_dir)]
    if root_motion:
        argv += ["--root-motion", root_motion]
    return argv + camera_argv(fov, K, hand_size)


def camera_argv(fov: float | None = None, K=None, hand_size: float | None = None) -> list[str]:
    """The camera and hand-size options every engine command that fits a hand takes (capture, live):
    K (fx, fy, cx, cy) over fov (horizontal degrees); neither: the engine estimates them."""
    argv = []
    if K is not None:
        argv += ["--K", ",".join(f"{float(v):.6g}" for v in K)]
    elif fov is not None:
        argv += ["--fov", f"{float(fov):.6g}"]
    if hand_size:
        argv += ["--hand-size", f"{float(hand_size):.6g}"]
    return argv


# What the engine imports at run time: (module, pip package). Check Engine imports each one in the
# engine's Python, so an interpreter that starts but lacks torch (a system Python) is caught there and
# not minutes into a capture.
ENGINE_MODULES = (("numpy", "numpy"), ("torch", "torch"), ("cv2", "opencv-contrib-python"),
                  ("mediapipe", "mediapipe"), ("smplx", "smplx"), ("roma", "roma"), ("scipy", "scipy"),
                  ("tqdm", "tqdm"))

_CHECK_SCRIPT = """
import importlib, json, sys
import engine
out = {"version": engine.__version__, "python": sys.version.split()[0], "missing": []}
for module, package in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken binary wheel raising anything else
        out["missing"].append([package, type(exc).__name__ + ": " + str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__])
print("HMP-CHECK " + json.dumps(out), flush=True)
"""


def engine_version(engine_python, root=EXTENSION_ROOT, timeout=180.0, modules=ENGINE_MODULES):
    """Start ``engine_python``, import the engine and every package it needs (``modules``); return
    "hmp-hand-capture engine X (Python Y)" or raise EngineSetupError naming what is missing."""
    import json

    check_engine_python(engine_python)
    try:
        proc = subprocess.run([engine_python, "-c", _CHECK_SCRIPT, json.dumps([list(m) for m in modules])], cwd=root,
                              env=engine_env(root), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineSetupError(f"engine does not start: {exc}") from None
    found = [line[len("HMP-CHECK "):] for line in proc.stdout.splitlines() if line.startswith("HMP-CHECK ")]
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EngineSetupError(f"engine is broken (exit code {proc.returncode}): {last}")
    info = json.loads(found[-1])
    if info["missing"]:
        names = ", ".join(p for p, _ in info["missing"])
        raise EngineSetupError(
            f"the engine Python ({engine_python}, Python {info['python']}) lacks {names} "
            f"({info['missing'][0][1]}): run Set Up Engine in the add-on preferences, or pip install -r "
            f"requirements.txt into that environment")
    return f"hmp-hand-capture engine {info['version']} (Python {info['python']})"


class EngineRun:
    """One engine process. ``poll()`` drains what its reader threads queued and updates the state.

    state: "running" -> "done" (``result_path`` set) | "error" (``error`` set) | "cancelled".
    """

    def __init__(self, argv, root=EXTENSION_ROOT, env=None, stdin=False):
        """``stdin``: give the engine a pipe to read (``send``: engine live's ``stop``), else none."""
        self.argv = list(argv)
        self.state = "running"
        self.stage = ""
        self.message = "Starting the engine"
        self.fraction = 0.0  # overall, in [0, 1]
        self.stage_fraction = None
        self.result_path = None
        self.preview_path = None
        self.seconds = None  # the capture's wall time, from the done event (None before, or from an older engine)
        self.stage_seconds = {}  # each stage's, from the done event
        self.error = None
        self.logs = []  # (level, message) from log events
        self.garbage = []  # stdout lines that were not progress events
        self._stages_done = 0.0
        self._stage_weight = 0.0
        self._error_event = None
        self._lines = queue.Queue()
        self._stderr_tail = collections.deque(maxlen=40)
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=root, env=env if env is not None else engine_env(root),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", bufsize=1,
            )
        except OSError as exc:
            raise EngineSetupError(f"cannot start the engine ({self.argv[0]}): {exc.strerror or exc}") from None
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr_tail.append), daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    @staticmethod
    def _read(stream, sink):
        try:
            for line in stream:
                sink(line.rstrip("\n"))
        except (OSError, ValueError):  # stream closed under us (cancel)
            pass

    @property
    def finished(self):
        return self.state != "running"

    def poll(self):
        """Process queued output; never blocks. Returns the new events (dicts)."""
        if self.finished:
            return []
        events = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if not line.strip():
                continue
            try:
                event = progress.parse_line(line)
            except progress.ProtocolError:
                self.garbage.append(line[:200])
                continue
            events.append(event)
            self._handle(event)
        if self.proc.poll() is not None and not self._readers[0].is_alive():
            # the process ended and stdout is fully read: drain the last lines, then conclude
            if not self._lines.empty():
                return events + self.poll()
            self._readers[1].join(timeout=1.0)
            self._conclude()
        return events

    def _handle(self, event):
        kind = event["event"]
        if kind == "stage":
            self._stages_done += self._stage_weight
            self.stage = str(event.get("stage", ""))
            self._stage_weight = STAGE_WEIGHTS.get(self.stage, 0.0)
            self.message = str(event.get("message") or self.stage)
            self.stage_fraction = None
        elif kind == "progress":
            frac = progress.fraction(event)
            self.stage_fraction = frac
            if frac is not None:
                self.fraction = min(1.0, self._stages_done + self._stage_weight * frac)
        elif kind == "log":
            self.logs.append((str(event.get("level", "info")), str(event.get("message", ""))))
        elif kind == "done":
            self.result_path = event["result"]
            self.preview_path = event.get("preview")
            if isinstance(event.get("seconds"), (int, float)):
                self.seconds = float(event["seconds"])
            if isinstance(event.get("stage_seconds"), dict):
                self.stage_seconds = dict(event["stage_seconds"])
        elif kind == "error":
            self._error_event = event["message"]

    def _conclude(self):
        code = self.proc.returncode
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.state == "cancelled":
            return
        if code == 0 and self.result_path:
            self.state, self.fraction = "done", 1.0
            return
        self.state = "error"
        if self._error_event:
            self.error = f"engine: {self._error_event}"
        elif code == 0:
            detail = f"; it printed unexpected output: {self.garbage[-1]!r}" if self.garbage else ""
            self.error = f"engine finished without reporting a result{detail}"
        else:
            tail = [line for line in self._stderr_tail if line.strip()]
            hint = tail[-1].strip() if tail else (self.garbage[-1] if self.garbage else "no output")
            self.error = f"engine crashed (exit code {code}): {hint[:300]}"

    def send(self, line):
        """Write a line to the engine's stdin (a run started with ``stdin=True``); False when it is gone."""
        try:
            self.proc.stdin.write(line.rstrip("\n") + "\n")
            self.proc.stdin.flush()
            return True
        except (AttributeError, OSError, ValueError):
            return False

    def cancel(self):
        """Stop the engine (terminate, then kill) and mark the run cancelled."""
        if self.state == "running":
            self.state = "cancelled"
        _stop(self.proc)
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _stop(proc, grace=3.0):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def stop_all():
    """Terminate every engine process still running (Blender quits, a new file is loaded)."""
    with _LIVE_LOCK:
        runs = list(_LIVE)
    for run in runs:
        run.cancel()


atexit.register(stop_all)
