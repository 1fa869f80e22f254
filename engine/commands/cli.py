"""The engine's command line: ``python -m engine <command>``.

Commands
  capture       video -> result.npz (+ preview.mp4): the main job (engine.capture)
  train-prior   train the hand motion prior (engine.prior.train)
  benchmark     ground-truth benchmark on rendered clips (engine.evaluation.benchmark)
  evaluate      metrics on HO3D-v3 / DexYCB (engine.evaluation.evaluate)
  batch         many videos -> one result each, on Ray: this machine or a cluster (engine.commands.batch)
  report        how results sit on footage without truth: distance to detections, jitter (engine.evaluation.report)
  live          record a take from a camera with a live per-frame hand pose (engine.commands.live)

Every failure the user can act on is an ``EngineError``: one line ``error: ...`` on stderr (or a
jsonl ``error`` event with ``--progress jsonl``) and exit code 2, never a traceback and never a
partial result file. Anything else is a bug: exit code 1 with the traceback on stderr.
"""

import argparse
import contextlib
import importlib
import io
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from engine import __version__
from engine.commands.args import Parser, intrinsics, number
from engine.contract import choices as C
from engine.contract.progress import Reporter
from engine.keypoints import MAX_VIEWS
from engine.util.errors import EngineError

# command -> module exposing main(argv) -> int (each parses its own arguments)
DELEGATED = {
    "train-prior": "engine.prior.train",
    "benchmark": "engine.evaluation.benchmark",
    "evaluate": "engine.evaluation.evaluate",
    "batch": "engine.commands.batch",
    "report": "engine.evaluation.report",
    "live": "engine.commands.live",
}


def capture_parser() -> Parser:
    """The ``capture`` command's argument parser."""
    p = Parser(prog="python -m engine capture", description="Capture MANO hands from a video.", allow_abbrev=False)
    p.add_argument("video", help="input video file")
    p.add_argument("--out", required=True, help="result file to write (.npz, schema in engine/contract/result.py)")
    p.add_argument("--hands", choices=C.HANDS, default=C.DEFAULT_HANDS, help="hands to capture")
    p.add_argument("--device", default=C.DEFAULT_DEVICE, help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--mano-dir", default=None,
                   help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (or env HMP_MANO_DIR); default: the open hand model")
    p.add_argument("--progress", choices=C.PROGRESS_MODES, default=None,
                   help="bar at a terminal (default), jsonl for programs, quiet")
    p.add_argument("--preview", default=None, help="also write an overlay video (.mp4) of keypoints and fit")
    p.add_argument("--start", type=number(int, 0, what="a frame number >= 0"), default=0, help="first video frame to process (default 0)")
    p.add_argument("--end", type=number(int, 0, what="a frame number > 0", above=True), default=None, help="video frame after the last one to process")
    p.add_argument("--stages", type=int, choices=C.FIT_STAGES, default=C.DEFAULT_FIT_STAGES,
                   help="0: per-frame estimate only, 1: + stage I, 2: + stage II with the motion prior")
    p.add_argument("--quality", choices=C.QUALITIES, default=C.DEFAULT_QUALITY,
                   help="draft (fast), balanced, best (the method's full iteration counts and views)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--fov", type=number(float, 1.0, 170.0, what="degrees between 1 and 170"), default=None, help="horizontal field of view in degrees")
    cam.add_argument("--K", type=intrinsics, default=None, metavar="FX,FY,CX,CY", help="intrinsics in pixels")
    low, high = C.HAND_SIZE_MM
    p.add_argument("--hand-size", type=number(float, low, high, what=f"a length in mm from {low:g} to {high:g}"),
                   default=None, metavar="MM",
                   help="the hand's length from the wrist to the middle finger's knuckle, in mm (default: the hand "
                        "model's own, 92 mm for the open hand): from one camera a hand's size sets its distance")
    p.add_argument("--keypoints", default=None, help="external 2D keypoints (.json or .npz) instead of MediaPipe")
    p.add_argument("--prior", default=None, help="motion prior checkpoint (default: the shipped weights)")
    p.add_argument("--keypoint-source", choices=C.KEYPOINT_SOURCES, default=C.DEFAULT_KEYPOINT_SOURCE,
                   help="2D keypoints for the fit: blend = MediaPipe + the interpolated estimate's projection in "
                        "gaps (default), mediapipe = detected frames only")
    p.add_argument("--root-motion", choices=C.ROOT_MOTIONS, default=C.DEFAULT_ROOT_MOTION,
                   help="stage II global rotation: filtered = per frame, then a zero-lag One Euro filter (default), "
                        "prior = one rotation per window turned by the prior's root channel, free = per frame "
                        "(the method's table as written; most jitter)")
    p.add_argument("--prior-term", choices=C.PRIOR_TERMS, default=C.DEFAULT_PRIOR_TERM,
                   help="stage II prior term: anchored = mean((z - z0)^2), z0 the clip's own encoding "
                        "(default, see engine/fit/stages.py), unit = mean(z^2) (the authors' code), "
                        "posterior = -log N(z; mu, sigma) as in the HMP poster")
    p.add_argument("--literal", action="store_true",
                   help="fit with the method's table read literally (radians and metres, no finger residual, "
                        "no added smoothness terms, L_MP as one mean over windows): for comparison, see "
                        "engine/fit/stages.py")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the detection cache")
    p.add_argument("--views", type=number(int, 0, MAX_VIEWS, what=f"a number of views from 0 to {MAX_VIEWS}"),
                   default=None,
                   help="augmented views for per-joint confidence (default by --quality; 0 disables)")
    return p


def _progress_mode(argv):
    """The --progress mode (``--progress jsonl`` or ``--progress=jsonl``; the last one given wins, as
    argparse does), read leniently so that argument errors are reported in that mode too."""
    mode = "bar"
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        value = arg[len("--progress="):] if arg.startswith("--progress=") else (
            argv[i + 1] if arg == "--progress" and i + 1 < len(argv) else None)
        if value in C.PROGRESS_MODES:
            mode = value
    return mode


def check_options(args: argparse.Namespace) -> None:
    """Everything about the options that can be known before any work (the video is opened later): fail
    now rather than after minutes of detection."""
    if args.end is not None and args.end <= args.start:
        raise EngineError(f"--end {args.end} must be after --start {args.start}")
    for flag, path in (("--keypoints", args.keypoints), ("--prior", args.prior)):
        if path is not None and not os.path.isfile(path):
            raise EngineError(f"{flag} file not found: {path}")


_WATCHING = False


def exit_with_parent(interval: float = 1.0) -> None:
    """Exit when the process that launched us dies (a program that ran us with --progress jsonl and
    was killed, e.g. Blender by SIGKILL, cannot terminate us itself): a daemon thread watches for
    being re-parented. Nothing is written after that: results are only ever renamed into place."""
    import time

    global _WATCHING
    parent = os.getppid()
    if parent <= 1 or _WATCHING:
        return
    _WATCHING = True

    def watch():
        from engine.util.atomic import remove_own

        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                remove_own()  # a result or cache file half written: gone with us
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwind (temporary files are removed on the way) and exit 143."""


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM / SIGHUP into ``Terminated`` while a command runs (their default ends the process
    without running ``finally`` blocks or ``atexit``, leaving half-written files)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise Terminated()

        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# What MediaPipe's native code (TFLite, absl, glog) writes straight to file descriptor 2, from its own
# threads too, so that it cannot all be silenced around each call: start-up and info lines. Errors
# (glog E/F lines) and anything else pass.
NATIVE_CHATTER = re.compile(
    r"^(INFO: Created TensorFlow Lite|INFO: Initialized TensorFlow Lite|WARNING: All log messages before "
    r"absl::InitializeLog\(\)|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] )")


@contextlib.contextmanager
def filter_native_stderr() -> Iterator[None]:
    """While a command runs, pass file descriptor 2 through a thread that drops ``NATIVE_CHATTER`` lines;
    Python's own ``sys.stderr`` (the progress bar, errors, tracebacks) keeps writing to the real stderr
    directly, so no native line is glued into the bar. A no-op without a real fd 2."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    swapped = None
    try:
        if sys.stderr is sys.__stderr__ and sys.stderr.fileno() == 2:  # Python writes go straight out
            swapped = sys.stderr
            sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(real), "wb"), encoding=swapped.encoding,
                                          errors="backslashreplace", line_buffering=True, write_through=True)
    except (OSError, ValueError, AttributeError):
        swapped = None

    def passes(line):
        return not NATIVE_CHATTER.match(line.decode("utf-8", "replace"))

    def pump():
        pending, broken = b"", False
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if passes(line))
            if kept and not broken:
                try:
                    os.write(real, kept)
                except OSError:  # the reader of our stderr went away: keep draining the pipe
                    broken = True
        if pending and passes(pending) and not broken:
            try:
                os.write(real, pending)
            except OSError:
                pass

    thread = threading.Thread(target=pump, daemon=True, name="native-stderr")
    thread.start()
    try:
        yield
    finally:
        if swapped is not None:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = swapped
        os.dup2(real, 2)  # the pipe's last write end closes: the pump drains it and stops
        thread.join(timeout=2.0)
        os.close(real)
        if not thread.is_alive():
            os.close(read_end)


def run_capture(argv: Sequence[str]) -> int:
    """``python -m engine capture ARGV``: the exit code."""
    reporter = Reporter(_progress_mode(argv))
    if reporter.mode == "jsonl":
        exit_with_parent()
    with terminate_cleanly(), filter_native_stderr():
        return _run_capture(argv, reporter)


def _run_capture(argv, reporter):
    try:
        args = capture_parser().parse_args(argv)
        check_options(args)
        reporter.start("capture", __version__)
        from engine.capture import CaptureOptions, capture
        from engine.util.device import set_cpu_threads

        set_cpu_threads()  # torch's threads on the CPU (engine.util.device: one, unless HMP_TORCH_THREADS says)

        out = capture(args.video, args.out, CaptureOptions.from_args(args), reporter)
        reporter.done(out["result"], out.get("preview"))
        return 0
    except EngineError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted")
        return 130
    except Terminated:
        reporter.error("terminated")
        return 143
    except Exception as exc:  # a bug: the traceback on stderr, and still one final error line / event
        import traceback

        traceback.print_exc(file=sys.stderr)
        reporter.error(f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}); "
                       "please report it with the traceback above")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"hmp-hand-capture engine {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "capture":
            return run_capture(rest)
        if command in DELEGATED:
            module = importlib.import_module(DELEGATED[command])
            return int(module.main(rest) or 0)
        raise EngineError(f"unknown command {command!r}: expected capture, {', '.join(DELEGATED)}")
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
