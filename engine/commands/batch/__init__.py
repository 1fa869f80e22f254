"""Batch capture of many clips on Ray: ``python -m engine batch INPUT... --out DIR [capture options]``.

INPUT: video files, folders (searched for videos; ``--recursive`` for sub-folders) or lists: a
``.txt`` list (one video a line, ``#`` comments) or a ``.csv`` list with a header row, a ``video``
column and optional per-clip ``hands``, ``start``, ``end`` and ``intrinsics`` ("fx,fy,cx,cy")
columns (an empty cell takes the batch's option). Paths in a list are relative to the list.

Every clip runs ``engine.capture.capture`` with the options ``python -m engine capture`` accepts
(the same parser, ``engine.commands.cli.capture_parser``). Its result is ``DIR/<relative path>.npz``, the
relative path taken from the folder the clips have in common, so two clips called ``take1.mp4`` in
different folders never collide; ``--preview`` adds ``DIR/<relative path>.preview.mp4``.

Ray runs the work: ``ray.init()`` on this machine by default, ``--address auto|HOST:PORT`` joins a
cluster. One Ray actor per worker slot (``--cpus-per-clip``, ``--gpus-per-clip``: fractions share a
GPU) keeps the engine imported and its models loaded, and captures clips one after another; this
driver only hands the next clip to the actor that finished one. ``DIR/batch_summary.jsonl`` (one
line per finished clip) and ``DIR/batch_summary.csv`` (the latest line per clip) are updated as clips
finish. See docs/batch.md.

The package, along the batch's seams: ``clips`` (inputs -> clips, each clip's options and their
digest), ``summary`` (the summary files, each clip's record, what --resume skips), ``worker`` (the
Ray actor that captures), ``run`` (Ray, the dispatch loop, retries), ``stop`` (Ctrl-C and SIGTERM),
``progress`` (the bar and the jsonl events), ``cli`` (the command line and ``main``).
"""

from .cli import NOT_IN_BATCH, main, parse_args, parser
from .clips import (LIST_EXTENSIONS, VIDEO_EXTENSIONS, Clip, base_options, clip_options, collect_clips, options_hash,
                    preview_path, result_path)
from .progress import BatchReporter
from .run import RAY_VERSION, import_ray, run_batch, start_ray, worker_count
from .summary import CSV_FIELDS, SUMMARY_CSV, SUMMARY_JSONL, TEMP_PREFIXES, Summary, finished_result, sweep_temporaries
from .worker import ClipWorker

__all__ = ["BatchReporter", "CSV_FIELDS", "Clip", "ClipWorker", "LIST_EXTENSIONS", "NOT_IN_BATCH", "RAY_VERSION",
           "SUMMARY_CSV", "SUMMARY_JSONL", "Summary", "TEMP_PREFIXES", "VIDEO_EXTENSIONS", "base_options",
           "clip_options", "collect_clips", "finished_result", "import_ray", "main", "options_hash", "parse_args",
           "parser", "preview_path", "result_path", "run_batch", "start_ray", "sweep_temporaries", "worker_count"]
