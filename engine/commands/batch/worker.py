"""The Ray worker: one actor per worker slot keeps the engine imported and its models loaded, and
captures clips one after another; a clip's own failure becomes its summary record, never an
exception."""

import os
import time
from typing import TYPE_CHECKING

from engine.contract import choices as C
from engine.contract.progress import Reporter
from engine.util.errors import EngineError

if TYPE_CHECKING:  # imported in the worker, when it starts
    from engine.capture import CaptureOptions


class _CollectingReporter(Reporter):
    """A quiet reporter that keeps the capture's warnings for the summary."""

    def __init__(self):
        super().__init__("quiet")
        self.warnings = []

    def log(self, message, level="info"):
        if level == "warning":
            self.warnings.append(message)


class ClipWorker:
    """One worker slot (a Ray actor): the engine imported and its models loaded once, then clips
    captured one after another with ``engine.capture.capture``."""

    def __init__(self, device: str, hands: str, mano_dir: str | None, prior: str | None, threads: float) -> None:
        t0, c0 = time.monotonic(), time.process_time()
        import torch

        torch.set_num_threads(max(1, int(threads)))
        from engine.hand_model import load_hand_model
        from engine.keypoints.detector import HandDetector
        from engine.prior import load_prior
        from engine.util.device import resolve_device

        self.init_error = None  # a bad --device, --mano-dir or --prior: each clip reports it
        try:
            device = resolve_device(device)
            from engine.capture import keep_models, load_kept

            keep_models()  # the models loaded here are the ones every clip's capture() uses
            self._warm = [load_kept(("hand", side, mano_dir, device, None),
                                lambda side=side: load_hand_model(side, mano_dir=mano_dir, device=device))
                          for side in C.sides_of(hands)]
            self._warm.append(load_kept(("prior", prior, device), lambda: load_prior(prior, device=device)))
        except EngineError as exc:
            self.init_error = str(exc)
        HandDetector().close()  # MediaPipe's graph and model files, loaded once per worker
        self.startup_s = time.monotonic() - t0
        self.startup_cpu_s = time.process_time() - c0
        self.clips = 0

    def capture(self, video: str, out: str, options: "CaptureOptions") -> dict:
        """Capture one clip -> a summary record (never raises for a bad clip: the batch goes on)."""
        import traceback

        import ray

        from engine.capture import capture
        from engine.contract import result as R

        t0, c0 = time.monotonic(), time.process_time()
        first = self.clips == 0
        record = {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                  "startup_s": round(self.startup_s, 3) if first else 0.0,
                  "startup_cpu_s": round(self.startup_cpu_s, 3) if first else 0.0}
        self.clips += 1
        reporter = _CollectingReporter()
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            if options.preview:
                os.makedirs(os.path.dirname(options.preview), exist_ok=True)
            if self.init_error:
                raise EngineError(self.init_error)
            done = capture(video, out, options, reporter)
            res = R.read(done["result"])
            record.update(status="ok", frames=int(res.num_frames), hands=list(res.hands), error="")
        except EngineError as exc:
            record.update(status="error", frames=0, hands=[], error=str(exc))
        except Exception as exc:  # a bug on this clip: recorded with its traceback, the batch goes on
            traceback.print_exc()
            record.update(status="error", frames=0, hands=[], error=f"internal error: {type(exc).__name__}: {exc}")
        record.update(seconds=round(time.monotonic() - t0, 3), cpu_s=round(time.process_time() - c0, 3),
                      warnings=reporter.warnings)
        return record
