"""Batch capture of many clips on Ray: ``python -m engine batch INPUT... --out DIR [capture options]``.

INPUT: video files, folders (searched for videos; ``--recursive`` for sub-folders) or lists: a
``.txt`` list (one video a line, ``#`` comments) or a ``.csv`` list with a header row, a ``video``
column and optional per-clip ``hands``, ``start``, ``end`` and ``intrinsics`` ("fx,fy,cx,cy")
columns (an empty cell takes the batch's option). Paths in a list are relative to the list.

Every clip runs ``engine.capture.capture`` with the options ``python -m engine capture`` accepts
(the same parser, ``engine.cli.capture_parser``). Its result is ``DIR/<relative path>.npz``, the
relative path taken from the folder the clips have in common, so two clips called ``take1.mp4`` in
different folders never collide; ``--preview`` adds ``DIR/<relative path>.preview.mp4``.

Ray runs the work: ``ray.init()`` on this machine by default, ``--address auto|HOST:PORT`` joins a
cluster. One Ray actor per worker slot (``--cpus-per-clip``, ``--gpus-per-clip``: fractions share a
GPU) keeps the engine imported and its models loaded, and captures clips one after another; this
driver only hands the next clip to the actor that finished one. ``DIR/batch_summary.jsonl`` (one
line per finished clip) and ``DIR/batch_summary.csv`` (the latest line per clip) are updated as clips
finish. See docs/batch.md.
"""

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque

from engine import __version__
from engine import choices as C
from engine.atomic import atomic_path
from engine.errors import EngineError
from engine.progress import Reporter

RAY_VERSION = "2.60.0"  # the version requirements-dev.txt pins (and the tests run)
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
LIST_EXTENSIONS = (".txt", ".csv", ".lst")
SUMMARY_JSONL = "batch_summary.jsonl"
SUMMARY_CSV = "batch_summary.csv"
CSV_FIELDS = ("clip", "status", "frames", "hands", "seconds", "warnings", "error", "attempts", "node", "result",
              "preview", "video")
TEMP_PREFIXES = (".hmp-result-", ".hmp-preview-")  # engine.result / engine.preview temporary files
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# capture options that name one clip's files: the batch sets them per clip itself
NOT_IN_BATCH = {"keypoints": "--keypoints names one clip's keypoints file: not available in batch"}


@dataclasses.dataclass
class Clip:
    name: str  # relative path without extension, "/"-separated: the result is <out>/<name>.npz
    video: str  # absolute path
    overrides: dict  # per-clip CaptureOptions fields from a list: hands, start, end, K (fov cleared)


# ---------------------------------------------------------------------------------------------- options
def parser():
    """``engine capture``'s parser, turned into the batch's: capture options keep one source."""
    from engine.cli import capture_parser

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


def parse_args(argv):
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


def base_options(args):
    from engine.capture import CaptureOptions

    clip_args = argparse.Namespace(**{**vars(args), "preview": None, "keypoints": None})  # per clip / not in batch
    return CaptureOptions.from_args(clip_args)


def clip_options(base, clip):
    """The clip's CaptureOptions: the batch's, with the list's per-clip values."""
    options = dataclasses.replace(base, **clip.overrides)
    if "K" in clip.overrides:
        options.fov = None
    return options


def options_hash(options, video):
    """What makes a result current: the capture options (but not where the preview goes), the engine
    version and the video file (path, size, modification time)."""
    fields = dataclasses.asdict(options)
    fields.pop("preview", None)
    if fields.get("hand_size") is None:  # added later: at its default, results made before it stay current
        fields.pop("hand_size", None)
    try:
        st = os.stat(video)
        identity = [video, st.st_size, st.st_mtime_ns]
    except OSError:
        identity = [video, None, None]
    text = json.dumps({"options": fields, "engine": __version__, "video": identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- inputs
def _is_video(path):
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _folder_videos(folder, recursive):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [os.path.join(root, f) for f in files if _is_video(f) and not f.startswith(".")]
    return sorted(found)


def _override(where, field, text):
    from engine.args import intrinsics

    text = text.strip()
    if field == "hands":
        if text not in C.HANDS:
            raise EngineError(f"{where}: hands must be right, left or both, got {text!r}")
        return {"hands": text}
    if field in ("start", "end"):
        try:
            value = int(text)
        except ValueError:
            raise EngineError(f"{where}: {field} must be a whole frame number, got {text!r}") from None
        if value < 0:
            raise EngineError(f"{where}: {field} must be 0 or more, got {value}")
        return {field: value}
    try:  # intrinsics: "fx,fy,cx,cy" (quoted in a CSV) or space-separated
        return {"K": intrinsics(",".join(text.replace(",", " ").split()))}
    except Exception as exc:
        raise EngineError(f"{where}: {exc}") from None


def _read_list(path):
    """[(video abs path, overrides)] from a .txt or .csv list."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read the list {path}: {exc}") from None
    entries = []
    if path.lower().endswith(".csv"):
        rows = csv.DictReader(io.StringIO(text))
        columns = [c.strip().lower() for c in rows.fieldnames or []]
        if "video" not in columns:
            raise EngineError(f"{path}: a CSV list needs a header row with a 'video' column "
                              f"(and optional hands, start, end, intrinsics), got {rows.fieldnames}")
        unknown = set(columns) - {"video", "hands", "start", "end", "intrinsics"}
        if unknown:
            raise EngineError(f"{path}: unknown column(s) {', '.join(sorted(unknown))}: "
                              f"use video, hands, start, end, intrinsics")
        for row in rows:
            row = {(k or "").strip().lower(): (v or "") for k, v in row.items() if k is not None}
            video = row.get("video", "").strip()
            if not video or video.startswith("#"):
                continue
            where = f"{path}:{rows.line_num}"
            overrides = {}
            for field in ("hands", "start", "end", "intrinsics"):
                if row.get(field, "").strip():
                    overrides.update(_override(where, field, row[field]))
            entries.append((os.path.join(folder, video), overrides))
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                entries.append((os.path.join(folder, line), {}))
    if not entries:
        raise EngineError(f"the list {path} names no video")
    return entries


def collect_clips(inputs, recursive=False):
    """Inputs -> [Clip], named by their path relative to the folder the videos have in common."""
    entries = []
    for item in inputs:
        if os.path.isdir(item):
            videos = _folder_videos(item, recursive)
            if not videos:
                raise EngineError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in the folder {item}"
                                  + ("" if recursive else " (use --recursive to search its sub-folders)"))
            entries += [(v, {}) for v in videos]
        elif os.path.isfile(item):
            if item.lower().endswith(LIST_EXTENSIONS):
                entries += _read_list(item)
            else:
                entries.append((item, {}))  # a bad video is the clip's own error, recorded in the summary
        else:
            raise EngineError(f"input not found: {item}")
    entries = [(os.path.abspath(v), o) for v, o in entries]
    common = os.path.commonpath([os.path.dirname(v) for v, _ in entries])
    clips, seen = [], {}
    for video, overrides in entries:
        name = os.path.relpath(os.path.splitext(video)[0], common).replace(os.sep, "/")
        key = (video, json.dumps(overrides, sort_keys=True))
        if key in seen:
            continue  # listed twice with the same options: one result
        n = sum(1 for c in clips if c.name == name or c.name.startswith(name + "~"))
        seen[key] = True
        clips.append(Clip(name if n == 0 else f"{name}~{n + 1}", video, overrides))
    return clips


def result_path(out_dir, clip):
    return os.path.join(out_dir, *clip.name.split("/")) + ".npz"


def preview_path(out_dir, clip):
    return os.path.join(out_dir, *clip.name.split("/")) + ".preview.mp4"


# ---------------------------------------------------------------------------------------------- summary
class Summary:
    """``batch_summary.jsonl`` (appended, one line per finished clip) and ``batch_summary.csv``
    (rewritten atomically: the latest line per clip)."""

    def __init__(self, out_dir, resume):
        self.jsonl = os.path.join(out_dir, SUMMARY_JSONL)
        self.csv = os.path.join(out_dir, SUMMARY_CSV)
        self.latest = {}
        if resume and os.path.isfile(self.jsonl):
            with open(self.jsonl, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                        self.latest[record["clip"]] = record
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a crash: that clip simply runs again
        elif os.path.exists(self.jsonl):
            os.unlink(self.jsonl)

    def add(self, record):
        self.latest[record["clip"]] = record
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with atomic_path(self.csv, ".hmp-summary-", ".csv") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
                writer.writeheader()
                for rec in self.latest.values():
                    row = dict(rec)
                    row["warnings"] = "; ".join(rec.get("warnings") or [])
                    row["hands"] = "+".join(rec.get("hands") or [])
                    writer.writerow(row)


def finished_result(out_dir, clip, digest, summary):
    """The clip's existing result when --resume may skip it: it validates and the summary says it
    was made with the same options. Returns (frames, hands) or None."""
    from engine import result as R

    previous = summary.latest.get(clip.name)
    if not previous or previous.get("status") not in ("ok", "skipped") or previous.get("options_hash") != digest:
        return None
    try:
        res = R.read(result_path(out_dir, clip))
    except R.ResultError:
        return None
    return res.num_frames, list(res.hands)


def sweep_temporaries(out_dir):
    """Remove the temporary files of captures that were killed (a finished result is never one)."""
    for root, _, files in os.walk(out_dir):
        for f in files:
            if f.startswith(TEMP_PREFIXES):
                try:
                    os.unlink(os.path.join(root, f))
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------------- worker
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

    def __init__(self, device, hands, mano_dir, prior, threads):
        t0, c0 = time.monotonic(), time.process_time()
        import torch

        torch.set_num_threads(max(1, int(threads)))
        from engine.device import resolve_device
        from engine.hand_model import load_hand_model
        from engine.keypoints.detector import HandDetector
        from engine.prior import load_prior

        self.init_error = None  # a bad --device, --mano-dir or --prior: each clip reports it
        try:
            device = resolve_device(device)
            from engine.capture import _load, keep_models

            keep_models()  # the models loaded here are the ones every clip's capture() uses
            self._warm = [_load(("hand", side, mano_dir, device, None),
                                lambda side=side: load_hand_model(side, mano_dir=mano_dir, device=device))
                          for side in C.sides_of(hands)]
            self._warm.append(_load(("prior", prior, device), lambda: load_prior(prior, device=device)))
        except EngineError as exc:
            self.init_error = str(exc)
        HandDetector().close()  # MediaPipe's graph and model files, loaded once per worker
        self.startup_s = time.monotonic() - t0
        self.startup_cpu_s = time.process_time() - c0
        self.clips = 0

    def capture(self, video, out, options):
        """Capture one clip -> a summary record (never raises for a bad clip: the batch goes on)."""
        import traceback

        import ray

        from engine import result as R
        from engine.capture import capture

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


# ---------------------------------------------------------------------------------------------- progress
class BatchReporter(Reporter):
    """The batch's progress: an overall bar (clips, frames/s, ETA) or jsonl events that carry the clip.

    jsonl events (the protocol of engine.progress, with extra fields):
    ``stage`` ``{"stage": "batch", "total": clips}``; per clip ``log`` events with ``clip`` and
    ``status`` (``running``, ``ok``, ``skipped``, ``retry``, ``error``, ``failed``); ``progress``
    ``{"stage": "batch", "done", "total", "clip", "status", "frames", "fps", "eta_s"}`` after each clip;
    ``done`` ``{"result": summary.jsonl, "summary_csv", "ok", "skipped", "failed"}``.
    """

    def __init__(self, mode, stream=None):
        super().__init__(mode, stream)
        self.total = self.finished = self.frames = self.ran = 0
        self.t0 = time.monotonic()
        self.run_time = 0.0

    def begin(self, total, todo, workers):
        self.total, self.t0 = total, time.monotonic()
        message = f"Capturing {todo} of {total} clips on {workers} Ray worker(s)"
        if self.mode == "jsonl":
            self._emit(event="stage", stage=C.BATCH_STAGE, message=message, total=total)
            self._emit(event="progress", stage=C.BATCH_STAGE, done=0, total=total, frames=0, fps=0.0, eta_s=None)
        elif self.mode == "bar":
            from tqdm import tqdm

            self._write_stderr(message)
            self._bar = tqdm(total=total, desc="Clips", unit="clip", file=sys.stderr, dynamic_ncols=True)

    def clip_event(self, clip, status, message, level="info", **extra):
        if self.mode == "jsonl":
            self._emit(event="log", level=level, message=f"{clip}: {message}", clip=clip, status=status, **extra)
        elif self.mode == "bar" and (level == "warning" or status in ("retry",)):
            self._write_stderr(f"{'warning: ' if level == 'warning' else ''}{clip}: {message}")

    def clip_finished(self, record, ran):
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

    def finish(self, summary, counts):
        self._close_bar()
        if self.mode == "jsonl":
            self._emit(event="done", result=summary.jsonl, preview=None, summary_csv=summary.csv, **counts)
        elif self.mode == "bar":
            self._write_stderr(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; "
                               f"summary: {summary.csv}")


# ---------------------------------------------------------------------------------------------- driver
def import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError(f"the batch command needs Ray, which is not installed: pip install ray=={RAY_VERSION}") \
            from None
    return ray


def start_ray(ray, args):
    if ray.is_initialized():  # a caller (a test, a notebook) already connected us: use that
        return False
    term = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        _init_ray(ray, args)
    finally:
        if term is not None:  # ray.init sets a SIGTERM handler that exits at once, skipping the clean-up
            signal.signal(signal.SIGTERM, term)
    return True


def _init_ray(ray, args):
    common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    if args.address:
        try:
            ray.init(address=args.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot join the Ray cluster at {args.address}: {str(exc).splitlines()[0]}") from None
    else:
        # workers started on this machine import the engine from this checkout
        path = os.environ.get("PYTHONPATH", "")
        if ROOT not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + ([path] if path else []))
        ray.init(num_cpus=args.num_cpus or os.cpu_count() or 1, object_store_memory=100 * 1024 * 1024, **common)


def worker_count(ray, args, todo):
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 0) // args.cpus_per_clip)
    if args.gpus_per_clip > 0:
        slots = min(slots, int(resources.get("GPU", 0) // args.gpus_per_clip))
    if slots < 1:
        raise EngineError(f"the Ray cluster has {resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} "
                          f"GPU(s): not enough for one clip with --cpus-per-clip {args.cpus_per_clip:g} "
                          f"--gpus-per-clip {args.gpus_per_clip:g}")
    return max(1, min(slots, todo, args.workers or slots))


def run_batch(args, reporter):
    out_dir = os.path.abspath(args.out)
    clips = collect_clips(args.inputs, args.recursive)
    base = base_options(args)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise EngineError(f"--out must be a folder: {out_dir} is a file")
    os.makedirs(out_dir, exist_ok=True)
    ray = import_ray()
    summary = Summary(out_dir, args.resume)

    jobs, skipped = [], []
    for clip in clips:
        options = clip_options(base, clip)
        if args.preview:
            options.preview = preview_path(out_dir, clip)
        digest = options_hash(options, clip.video)
        previous = finished_result(out_dir, clip, digest, summary) if args.resume else None
        if previous is not None:
            skipped.append((clip, digest, previous))
        else:
            jobs.append((clip, options, digest))

    started = start_ray(ray, args) if jobs else False
    counts = {"clips": len(clips), "ok": 0, "skipped": 0, "failed": 0}
    actors = []
    try:
        n_workers = worker_count(ray, args, len(jobs)) if jobs else 0
        reporter.begin(len(clips), len(jobs), n_workers)
        for clip, digest, (frames, hands) in skipped:
            record = _record(clip, out_dir, digest, status="skipped", frames=frames, hands=hands, seconds=0.0,
                             warnings=[], error="", attempts=0, node="", preview=args.preview)
            summary.add(record)
            counts["skipped"] += 1
            reporter.clip_event(clip.name, "skipped", "result exists with the same options (--resume)")
            reporter.clip_finished(record, ran=False)
        if jobs:
            Worker = ray.remote(ClipWorker).options(num_cpus=args.cpus_per_clip, num_gpus=args.gpus_per_clip,
                                                    max_restarts=0, scheduling_strategy="SPREAD")
            hands = base.hands if all("hands" not in c.overrides for c, _, _ in jobs) else "both"

            def new_actor():
                actor = Worker.remote(base.device, hands, base.mano_dir, base.prior, args.cpus_per_clip)
                actors.append(actor)
                return actor

            for _ in range(n_workers):
                new_actor()
            _dispatch(ray, list(actors), new_actor, jobs, out_dir, args, summary, reporter, counts)
    except KeyboardInterrupt:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        sweep_temporaries(out_dir)
        raise
    finally:
        if started:
            ray.shutdown()
    sweep_temporaries(out_dir)
    reporter.finish(summary, counts)
    return counts


def _record(clip, out_dir, digest, preview=False, **fields):
    return {"clip": clip.name, "video": clip.video, **fields,
            "result": os.path.relpath(result_path(out_dir, clip), out_dir) if fields["status"] in ("ok", "skipped")
            else "",
            "preview": os.path.relpath(preview_path(out_dir, clip), out_dir)
            if preview and fields["status"] in ("ok", "skipped") else "",
            "options_hash": digest, "engine_version": __version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _dispatch(ray, actors, new_actor, jobs, out_dir, args, summary, reporter, counts):
    """Give each idle actor the next clip; record each clip as it finishes; when a worker died, put a
    new actor in its place and run its clip again, up to --retries times."""
    from ray.exceptions import RayError, RayTaskError

    queue, idle, running, attempts = deque(jobs), list(actors), {}, {}
    while queue or running:
        _check_stop()
        while queue and idle:
            actor = idle.pop(0)
            clip, options, digest = job = queue.popleft()
            attempts[clip.name] = attempts.get(clip.name, 0) + 1
            ref = actor.capture.remote(clip.video, result_path(out_dir, clip), options)
            running[ref] = (job, actor)
            reporter.clip_event(clip.name, "running", f"started (attempt {attempts[clip.name]})",
                                attempt=attempts[clip.name])
        ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
        _check_stop()
        for ref in ready:
            job, actor = running.pop(ref)
            clip, options, digest = job
            try:
                out = ray.get(ref)
                idle.append(actor)
            except RayTaskError as exc:  # not the clip's own error (those are returned): a bug
                idle.append(actor)
                out = {"status": "error", "frames": 0, "hands": [], "seconds": 0.0, "warnings": [], "node": "",
                       "error": f"internal error: {str(exc).strip().splitlines()[-1][:300]}"}
            except RayError as exc:  # the worker process died (killed, out of memory, node lost)
                reason = f"worker died ({type(exc).__name__})"
                ray.kill(actor, no_restart=True)
                idle.append(new_actor())
                if attempts[clip.name] <= args.retries:
                    reporter.clip_event(clip.name, "retry", f"{reason}: running it again", level="warning")
                    queue.appendleft(job)
                    continue
                out = {"status": "failed", "frames": 0, "hands": [], "seconds": 0.0, "warnings": [], "node": "",
                       "error": f"{reason} on each of {attempts[clip.name]} attempt(s)"}
            record = _record(clip, out_dir, digest, preview=args.preview, status=out["status"], frames=out["frames"],
                             hands=out["hands"], seconds=out["seconds"], warnings=out["warnings"], error=out["error"],
                             attempts=attempts[clip.name], node=out.get("node", ""), pid=out.get("pid"),
                             cpu_s=out.get("cpu_s"), startup_s=out.get("startup_s", 0.0),
                             startup_cpu_s=out.get("startup_cpu_s", 0.0))
            summary.add(record)
            if record["status"] == "ok":
                counts["ok"] += 1
                for w in record["warnings"]:
                    reporter.clip_event(clip.name, "ok", w, level="warning")
                reporter.clip_event(clip.name, "ok", f"{record['frames']} frames in {record['seconds']:.1f} s",
                                    result=os.path.join(out_dir, record["result"]))
            else:
                counts["failed"] += 1
                reporter.clip_event(clip.name, record["status"], f"{record['status']}: {record['error']}",
                                    level="warning")
            reporter.clip_finished(record, ran=True)


# Ctrl-C and SIGTERM only set this; the dispatch loop stops the batch at its next turn. An exception
# raised by the handler itself lands wherever the main thread happens to be, often inside Ray's own
# code: once, under load, such a Ctrl-C was lost and the batch ran on to the end.
_STOP = threading.Event()
POLL_S = 0.25  # the dispatch loop's turn: how soon a stop request or a finished clip is seen


def _request_stop(signum, frame):
    _STOP.set()


def _catch_stop_signals():
    """Route SIGINT and SIGTERM to ``_request_stop`` (from the main thread only, as Python requires).
    Returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _check_stop():
    if _STOP.is_set():
        raise KeyboardInterrupt


def main(argv=None):
    from engine.cli import _progress_mode, exit_with_parent

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
    _STOP.clear()
    previous = _catch_stop_signals()
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


if __name__ == "__main__":
    sys.exit(main())
