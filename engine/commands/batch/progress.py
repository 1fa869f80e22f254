"""The batch's progress: an overall bar, or the jsonl protocol's events with the clip in each."""

import sys
import time
from typing import TYPE_CHECKING, TextIO

from engine.contract import choices as C
from engine.contract.progress import Reporter

if TYPE_CHECKING:
    from .summary import Summary


class BatchReporter(Reporter):
    """The batch's progress: an overall bar (clips, frames/s, ETA) or jsonl events that carry the clip.

    jsonl events (the protocol of engine.contract.progress, with extra fields):
    ``stage`` ``{"stage": "batch", "total": clips}``; per clip ``log`` events with ``clip`` and
    ``status`` (``running``, ``ok``, ``skipped``, ``retry``, ``error``, ``failed``); ``progress``
    ``{"stage": "batch", "done", "total", "clip", "status", "frames", "fps", "eta_s"}`` after each clip;
    ``done`` ``{"result": summary.jsonl, "summary_csv", "ok", "skipped", "failed"}``.
    """

    def __init__(self, mode: str, stream: TextIO | None = None) -> None:
        super().__init__(mode, stream)
        self.total = self.finished = self.frames = self.ran = 0
        self.t0 = time.monotonic()
        self.run_time = 0.0

    def begin(self, total: int, todo: int, workers: int) -> None:
        self.total, self.t0 = total, time.monotonic()
        message = f"Capturing {todo} of {total} clips on {workers} Ray worker(s)"
        if self.mode == "jsonl":
            self._emit(event="stage", stage=C.BATCH_STAGE, message=message, total=total)
            self._emit(event="progress", stage=C.BATCH_STAGE, done=0, total=total, frames=0, fps=0.0, eta_s=None)
        elif self.mode == "bar":
            from tqdm import tqdm

            self._write_stderr(message)
            self._bar = tqdm(total=total, desc="Clips", unit="clip", file=sys.stderr, dynamic_ncols=True)

    def clip_event(self, clip: str, status: str, message: str, level: str = "info", **extra: object) -> None:
        if self.mode == "jsonl":
            self._emit(event="log", level=level, message=f"{clip}: {message}", clip=clip, status=status, **extra)
        elif self.mode == "bar" and (level == "warning" or status in ("retry",)):
            self._write_stderr(f"{'warning: ' if level == 'warning' else ''}{clip}: {message}")

    def clip_finished(self, record: dict, ran: bool) -> None:
        self.finished += 1
        self.frames += (record.get("frames") or 0) if ran else 0
        self.ran += int(ran)
        elapsed = time.monotonic() - self.t0
        fps = self.frames / elapsed if elapsed > 0 else 0.0
        eta = elapsed / self.ran * (self.total - self.finished) if self.ran else None
        if self.mode == "jsonl":
            self._emit(event="progress", stage=C.BATCH_STAGE, done=self.finished, total=self.total, clip=record["clip"],
                       status=record["status"], frames=self.frames, fps=round(fps, 3),
                       eta_s=None if eta is None else round(eta, 1))
        elif self._bar is not None:
            self._bar.set_postfix_str(f"{fps:.1f} frames/s", refresh=False)
            self._bar.update(1)

    def finish(self, summary: "Summary", counts: dict[str, int]) -> None:
        self._close_bar()
        if self.mode == "jsonl":
            self._emit(event="done", result=summary.jsonl, preview=None, summary_csv=summary.csv, **counts)
        elif self.mode == "bar":
            self._write_stderr(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; "
                               f"summary: {summary.csv}")
