"""``python -m engine batch INPUT... --out DIR [capture options]``: the batch's command line (the
capture's parser, turned into the batch's) and its entry point."""

import argparse
import os
import signal
import sys

from engine import __version__
from engine.contract import choices as C
from engine.util.errors import EngineError

from .progress import BatchReporter
from .run import run_batch
from .stop import STOP, catch_stop_signals
from .summary import SUMMARY_CSV

# capture options that name one clip's files: the batch sets them per clip itself
NOT_IN_BATCH = {"keypoints": "--keypoints names one clip's keypoints file: not available in batch"}


def parser() -> argparse.ArgumentParser:
    """``engine capture``'s parser, turned into the batch's: capture options keep one source."""
    from engine.commands.cli import capture_parser

    p = capture_parser()
    p.prog = "python -m engine batch"
    p.description = "Capture MANO hands from many videos on Ray (this machine, or a cluster with --address)."
    for action in p._actions:
        if action.dest == "video":  # the one positional becomes the batch's inputs
            action.dest, action.nargs, action.metavar = "inputs", "+", "INPUT"
            action.help = "video files, folders of videos, or .txt / .csv lists of videos"
        elif action.dest in NOT_IN_BATCH:
            action.help = argparse.SUPPRESS
    for container in [p] + p._action_groups:  # the options below replace capture's --out, --preview, --progress
        container.conflict_handler = "resolve"
    p.add_argument("--out", required=True, help="folder for the results (one .npz per clip) and the summary")
    p.add_argument("--preview", action="store_true", help="also write <clip>.preview.mp4 beside each result")
    p.add_argument("--progress", choices=C.PROGRESS_MODES, default=None,
                   help="bar at a terminal (default), jsonl for programs (events carry the clip), quiet")
    b = p.add_argument_group("batch")
    b.add_argument("--recursive", action="store_true", help="search folders' sub-folders for videos too")
    b.add_argument("--resume", action="store_true",
                   help="skip clips whose result exists, validates and was made with the same options")
    b.add_argument("--retries", type=int, default=1,
                   help="times a clip whose worker crashed is run again before it is recorded failed (default 1)")
    b.add_argument("--address", default=None,
                   help="join a running Ray cluster: auto or HOST:PORT (default: start Ray on this machine)")
    b.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use on this machine (default: all)")
    b.add_argument("--cpus-per-clip", type=float, default=1.0, help="CPUs reserved per clip (default 1)")
    b.add_argument("--gpus-per-clip", type=float, default=0.0,
                   help="GPUs per clip; fractions (e.g. 0.25) let several clips share a GPU (default 0)")
    b.add_argument("--workers", type=int, default=None,
                   help="at most this many clips at once (default: as many as the resources allow)")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The batch's arguments, checked: EngineError (one line, exit 2) for what the parser cannot check."""
    args = parser().parse_intermixed_args(argv)
    for dest, message in NOT_IN_BATCH.items():
        if getattr(args, dest, None):
            raise EngineError(message)
    if args.retries < 0:
        raise EngineError(f"--retries must be 0 or more, got {args.retries}")
    if args.cpus_per_clip <= 0 or args.gpus_per_clip < 0:
        raise EngineError("--cpus-per-clip must be > 0 and --gpus-per-clip >= 0")
    if args.gpus_per_clip > 1 and args.gpus_per_clip != int(args.gpus_per_clip):
        raise EngineError(f"--gpus-per-clip above 1 must be a whole number, got {args.gpus_per_clip}")
    if args.num_cpus is not None and (args.num_cpus < 1 or args.address):
        raise EngineError("--num-cpus is for Ray on this machine (1 or more) and cannot be used with --address")
    if args.workers is not None and args.workers < 1:
        raise EngineError(f"--workers must be 1 or more, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    from engine.commands.cli import _progress_mode, exit_with_parent

    argv = list(sys.argv[1:] if argv is None else argv)
    mode, saved_stdout = _progress_mode(argv), None
    if mode == "jsonl":
        # stdout carries protocol lines only: Ray prints notices (a worker died, ...) on file
        # descriptor 1 from the driver and the processes it starts; send those to stderr
        sys.stdout.flush()
        protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        saved_stdout = os.dup(1)
        os.dup2(2, 1)
        reporter = BatchReporter(mode, protocol)
        exit_with_parent()
    else:
        reporter = BatchReporter(mode)
    STOP.clear()
    previous = catch_stop_signals()
    try:
        args = parse_args(argv)
        reporter.start("batch", __version__)
        counts = run_batch(args, reporter)
        if counts["failed"]:
            print(f"error: {counts['failed']} of {counts['clips']} clips failed (see {SUMMARY_CSV})",
                  file=sys.stderr, flush=True)
            return 2
        return 0
    except EngineError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted: the finished clips' results are kept; run again with --resume to finish")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if saved_stdout is not None:
            sys.stdout.flush()
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
            reporter.stream.close()
