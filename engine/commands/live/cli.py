"""``python -m engine live``: the command's parser and ``main`` (signals, the stdin ``stop`` line, the
launcher's death), around ``engine.commands.live.session.Live``."""

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from engine import __version__
from engine.commands.args import Parser, intrinsics, number
from engine.commands.live.session import Live, LiveError
from engine.contract import choices as C
from engine.contract.progress import Reporter
from engine.util.errors import EngineError

FRAME_TIMEOUT_S = 5.0  # no frame from a camera for this long: it stopped sending
RESERVE_MB = 200.0  # the take stops (and is closed) when its disk has less free space than this


def live_parser() -> Parser:
    """The command's argument parser (errors as EngineError)."""
    p = Parser(prog="python -m engine live", allow_abbrev=False,
               description="Record a take from a camera (or a file played as one) with a live per-frame hand pose.")
    p.add_argument("--source", required=True,
                   help="camera index (0), device path (/dev/video0), stream URL, or a video file")
    p.add_argument("--record", required=True, help="the take to write (.mp4); its frame times go beside it")
    p.add_argument("--hands", choices=C.HANDS, default=C.DEFAULT_HANDS, help="hands to follow live")
    p.add_argument("--seconds", type=number(float, 0.0, what="seconds > 0", above=True), default=None,
                   help="stop after this long (default: until stopped)")
    p.add_argument("--realtime", action="store_true",
                   help="a file source plays at its own frame rate (a stand-in camera); without it, as fast as it decodes")
    p.add_argument("--progress", choices=C.PROGRESS_MODES, default=None, help="bar (default), jsonl, quiet")
    p.add_argument("--frame-image", default=None,
                   help="keep the newest processed frame in this .jpg/.png (replaced atomically), for a viewer")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--fov", type=number(float, 1.0, 170.0, what="degrees between 1 and 170"), default=None,
                     help="horizontal field of view in degrees")
    cam.add_argument("--K", type=intrinsics, default=None, metavar="FX,FY,CX,CY", help="intrinsics in pixels")
    low, high = C.HAND_SIZE_MM
    p.add_argument("--hand-size", type=number(float, low, high, what=f"a length in mm from {low:g} to {high:g}"),
                   default=None, metavar="MM", help="wrist to middle-finger knuckle, mm (default: the model's)")
    p.add_argument("--mano-dir", default=None, help="MANO folder (default: the open hand model)")
    p.add_argument("--frame-timeout", type=number(float, 0.0, 600.0, what="seconds > 0", above=True),
                   default=FRAME_TIMEOUT_S, help=f"a camera silent this long has stopped (default {FRAME_TIMEOUT_S:g} s)")
    p.add_argument("--reserve-mb", type=number(float, 0.0, what="megabytes >= 0"), default=RESERVE_MB,
                   help=f"stop recording when the take's disk has less free space than this (default {RESERVE_MB:g})")
    return p


def _watch_stdin(live):
    """A ``stop`` line on stdin ends the take (end of stdin does not: a shell may give none)."""
    try:
        for line in sys.stdin:
            if line.strip().lower() in ("stop", "q", "quit"):
                live.stop("stop")
                return
    except (OSError, ValueError):
        pass


def _watch_parent(live, interval=0.5):
    """The launcher died (Blender killed): end the take cleanly, as a stop."""
    parent = os.getppid()
    if parent <= 1:
        return

    def watch():
        while not live.stop_event.is_set():
            time.sleep(interval)
            if os.getppid() != parent:
                live.stop("parent")
                return

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine live ARGS`` -> exit code: 0 (a take recorded), 2 (EngineError: one line / event), 1 (a bug)."""
    from engine.commands.cli import _progress_mode, filter_native_stderr

    argv = list(sys.argv[1:] if argv is None else argv)
    reporter = Reporter(_progress_mode(argv))
    with filter_native_stderr():
        return _main(argv, reporter)


def _main(argv, reporter):
    live = None
    previous = {}
    try:
        args = live_parser().parse_args(argv)
        if args.K is not None and (args.K[2] < 0 or args.K[3] < 0):
            raise EngineError("--K: the principal point must be inside the image (cx, cy >= 0)")
        reporter.start("live", __version__)
        live = Live(args, reporter)

        def on_signal(signum, frame):
            live.stop("signal")

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    previous[sig] = signal.signal(sig, on_signal)
        threading.Thread(target=_watch_stdin, args=(live,), daemon=True, name="stdin").start()
        if reporter.mode == "jsonl":
            _watch_parent(live)
        out = live.run()
        try:
            reporter.done(out.pop("result"), None, **out)
        except (BrokenPipeError, OSError):  # the launcher is gone; the take is written
            pass
        return 0
    except LiveError as exc:
        reporter.event("error", message=str(exc), take=exc.take, frames=exc.frames)
        if reporter.mode != "jsonl":
            reporter.error(str(exc))
        return 2
    except EngineError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except Exception as exc:  # a bug: the traceback, and still one final error line / event
        import traceback

        traceback.print_exc(file=sys.stderr)
        take = getattr(live, "take", None)
        kept = (f"; the take so far is kept in {take.path}" if take is not None and os.path.isfile(take.path) else "")
        reporter.error(f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''})"
                       f"{kept}; please report it with the traceback above")
        return 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
