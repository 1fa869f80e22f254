"""Progress protocol between the engine process and whoever launched it.

Pure Python (no numpy): the Blender add-on imports this module to parse what the engine prints.

With ``--progress jsonl`` the engine prints one JSON object per stdout line and nothing else on
stdout (diagnostics go to stderr). Events:

``{"event": "start", "protocol": 1, "command": "capture", "engine_version": "0.1.0"}``
    first line of every run.
``{"event": "stage", "stage": "detect", "message": "Detecting hands"}``
    a new stage begins. Stages of ``capture``, in order: ``engine.contract.choices.CAPTURE_STAGES`` (``read``,
    ``detect``, ``init``, ``fit1``, ``fit2``, ``write``, ``preview``); of ``train-prior``: ``train``;
    of ``batch``: ``batch``.
``{"event": "progress", "stage": "detect", "done": 120, "total": 300}``
    ``done`` out of ``total`` units of the current stage (``total`` may be null when unknown).
``{"event": "log", "level": "info" | "warning", "message": "..."}``
    something a user should read.
``{"event": "done", "result": "/abs/result.npz", "preview": "/abs/preview.mp4" | null, "seconds": 9.7,
"stage_seconds": {"read": 0.4, "detect": 5.1, ...}}``
    last line of a successful run; the result file is complete and validated. ``seconds``: wall time
    since the engine's reporter started (the process's start, less the imports before it);
    ``stage_seconds``: ``startup`` (from the reporter's start to the first stage: the imports of
    torch and the pipeline), then each stage's wall time, from its ``stage`` event to the next one
    (or to ``done``), in the order run; they add up to ``seconds``.
``{"event": "error", "message": "..."}``
    last line of a failed run (exit code non-zero); no result file was written.

``engine live`` (engine/commands/live/) adds two events, and its ``done`` names the take it recorded:
``{"event": "live", "take": "/abs/take.mp4", "source": "0", "width": 640, "height": 480, "fps": 30.0,
"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "frame_image": "/abs/newest.jpg" | null,
"hands": {"right": {"rest_joints": [[x, y, z] x 16], "rest_keypoints": [[x, y, z] x 21]}}}``
    once, when the source sends its first frame: the recording has begun. ``rest_joints``: the hand
    model's joints at rest (MANO order, metres, camera axes), the skeleton of a rig to pose;
    ``rest_keypoints``: its 21 keypoints at rest (MediaPipe order: the fingertips too).
``{"event": "pose", "frame": 42, "time": 1.4, "wall": 1733400000.123, "latency_ms": 38.5, "dropped": 3,
"hands": {"right": {"global_orient": [3], "hand_pose": [45], "transl": [3], "score": 0.98}}}``
    one per frame processed for the live view: ``frame`` its index in the take, ``time`` seconds from
    the take's first frame, ``wall`` when it arrived (Unix time; a file played in real time: when it
    was due), ``latency_ms`` from then to this event, ``dropped`` frames skipped for the live view so
    far (every frame is in the take);
    per hand seen (none: an empty ``hands``) the result file's pose of one frame: axis-angle root
    rotation and 15 joint rotations (MANO order), translation in metres, camera frame.
``{"event": "done", "result": "/abs/take.mp4", "frames": 300, "processed": 290, "dropped": 10,
"seconds": 10.0, "times": "/abs/take.mp4.times.json", "stopped_by": "stop"}``
    ``stopped_by``: ``stop`` (stdin), ``seconds``, ``end`` (of a file), ``signal``, ``parent``.
    An ``error`` of a take that failed while recording (the source stopped, the disk filled up)
    carries ``take`` (the take kept, or null) and ``frames``.

With ``--progress bar`` (the default at a terminal) humans get a tqdm bar on stderr instead.
"""

import json
import sys
from typing import TextIO

from .choices import BATCH_STAGE, CAPTURE_STAGES, PROGRESS_MODES, TRAIN_STAGES  # relative: also imported inside the add-on

PROTOCOL_VERSION = 1
EVENTS = ("start", "stage", "progress", "log", "done", "error", "live", "pose")
STAGES = CAPTURE_STAGES + TRAIN_STAGES + (BATCH_STAGE,)  # the names a "stage" event may carry


class ProtocolError(ValueError):
    """A line from the engine is not a valid progress event."""


def parse_line(line: str) -> dict:
    """Parse one line of engine output into an event dict; raises ``ProtocolError`` on garbage."""
    line = line.strip()
    if not line:
        raise ProtocolError("empty line")
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"not a progress event: {line[:200]!r}") from None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        raise ProtocolError(f"unknown progress event: {line[:200]!r}")
    if event["event"] == "progress":
        if not isinstance(event.get("done"), (int, float)):
            raise ProtocolError(f"progress event without 'done': {line[:200]!r}")
    if event["event"] in ("done",) and not isinstance(event.get("result"), str):
        raise ProtocolError(f"done event without 'result': {line[:200]!r}")
    if event["event"] == "error" and not isinstance(event.get("message"), str):
        raise ProtocolError(f"error event without 'message': {line[:200]!r}")
    if event["event"] == "pose" and not (isinstance(event.get("frame"), int) and isinstance(event.get("hands"), dict)):
        raise ProtocolError(f"pose event without 'frame' and 'hands': {line[:200]!r}")
    if event["event"] == "live" and not isinstance(event.get("take"), str):
        raise ProtocolError(f"live event without 'take': {line[:200]!r}")
    return event


def fraction(event: dict) -> float | None:
    """Fraction in [0, 1] of a progress event's stage, or None when the total is unknown."""
    total = event.get("total")
    if not total:
        return None
    return max(0.0, min(1.0, float(event["done"]) / float(total)))


class Reporter:
    """Emits progress either as JSON lines (machine) or as a tqdm bar and plain lines (human).

    ``reporter.stage("detect", "Detecting hands", total=300)`` then ``reporter.advance(n)``;
    ``reporter.log(msg)``, ``reporter.warn(msg)``, ``reporter.done(path)``, ``reporter.error(msg)``.
    """

    def __init__(self, mode: str = "bar", stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"unknown progress mode {mode!r} (bar, jsonl or quiet)")
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.min_interval = min_interval
        self._stage = None
        self._total = None
        self._done = 0
        self._bar = None
        self._last_emit = 0.0
        import time

        self._t0 = time.monotonic()
        self._stage_t = None
        self.stage_seconds = {}  # stage name -> wall seconds (a stage entered twice adds up)

    def _emit(self, **event):
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def start(self, command: str, engine_version: str) -> None:
        if self.mode == "jsonl":
            self._emit(event="start", protocol=PROTOCOL_VERSION, command=command, engine_version=engine_version)

    def stage(self, name: str, message: str, total: int | None = None) -> None:
        if name not in STAGES:
            raise ValueError(f"unknown progress stage {name!r} (engine.contract.choices: {', '.join(STAGES)})")
        self._close_bar()
        self._clock_stage()
        self._stage, self._total, self._done = name, total, 0
        if self.mode == "jsonl":
            self._emit(event="stage", stage=name, message=message)
            self._emit(event="progress", stage=name, done=0, total=total)
        elif self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=message, unit="it", file=sys.stderr, leave=True, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        import time

        self._done += n
        if self.mode == "jsonl":
            now = time.monotonic()
            finished = self._total is not None and self._done >= self._total
            if finished or now - self._last_emit >= self.min_interval:
                self._last_emit = now
                self._emit(event="progress", stage=self._stage, done=self._done, total=self._total)
        elif self._bar is not None:
            self._bar.update(n)

    def log(self, message: str, level: str = "info") -> None:
        if self.mode == "jsonl":
            self._emit(event="log", level=level, message=message)
        elif self.mode == "bar":
            self._write_stderr(("warning: " if level == "warning" else "") + message)

    def warn(self, message: str) -> None:
        self.log(message, level="warning")

    def event(self, kind: str, **fields: object) -> None:
        """An event with fields of its own (``live``, ``pose``; an ``error`` with more than its
        message): printed in jsonl mode only."""
        if kind not in EVENTS:
            raise ValueError(f"unknown progress event {kind!r}")
        if self.mode == "jsonl":
            self._emit(event=kind, **fields)

    def _clock_stage(self) -> None:
        """Close the running stage's clock (stage_seconds) and start the next one's."""
        import time

        now = time.monotonic()
        if self._stage_t is None:  # the first stage: what came before it is the start-up
            self.stage_seconds["startup"] = now - self._t0
        elif self._stage is not None:
            self.stage_seconds[self._stage] = self.stage_seconds.get(self._stage, 0.0) + now - self._stage_t
        self._stage_t = now

    @property
    def seconds(self) -> float:
        """Wall seconds since this reporter was made."""
        import time

        return time.monotonic() - self._t0

    def done(self, result: str, preview: str | None = None, **extra: object) -> None:
        """The run's end: ``seconds`` and ``stage_seconds`` (start-up, then each stage) unless ``extra``
        (fields of the command's own, e.g. engine live's) gives its own."""
        self._close_bar()
        self._clock_stage()
        self._stage = None
        if self.mode == "jsonl":
            fields = {"seconds": round(self.seconds, 3),
                      "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()}, **extra}
            self._emit(event="done", result=result, preview=preview, **fields)
        elif self.mode == "bar":
            self._write_stderr(f"result written to {result}" + (f", preview {preview}" if preview else "")
                               + f" ({self.seconds:.1f} s)")

    def error(self, message: str) -> None:
        self._close_bar()
        if self.mode == "jsonl":
            self._emit(event="error", message=message)
        else:
            self._write_stderr(f"error: {message}")

    def _write_stderr(self, text):
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
