"""What the batch writes beside the results: ``batch_summary.jsonl`` (one line per finished clip)
and ``batch_summary.csv`` (the latest line per clip), each clip's record, the check that lets
``--resume`` skip a clip, and the sweep of killed captures' temporary files."""

import csv
import json
import os
import time

from engine import __version__
from engine.util.atomic import atomic_path

from .clips import Clip, preview_path, result_path

SUMMARY_JSONL = "batch_summary.jsonl"
SUMMARY_CSV = "batch_summary.csv"
CSV_FIELDS = ("clip", "status", "frames", "hands", "seconds", "warnings", "error", "attempts", "node", "result",
              "preview", "video")
TEMP_PREFIXES = (".hmp-result-", ".hmp-preview-")  # engine.contract.result / engine.preview temporary files


class Summary:
    """``batch_summary.jsonl`` (appended, one line per finished clip) and ``batch_summary.csv``
    (rewritten atomically: the latest line per clip)."""

    def __init__(self, out_dir: str, resume: bool) -> None:
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

    def add(self, record: dict) -> None:
        """Append ``record`` to the JSONL file (flushed to disk) and rewrite the CSV."""
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


def finished_result(out_dir: str, clip: Clip, digest: str, summary: Summary) -> tuple[int, list] | None:
    """The clip's existing result when --resume may skip it: it validates and the summary says it
    was made with the same options. Returns (frames, hands) or None."""
    from engine.contract import result as R

    previous = summary.latest.get(clip.name)
    if not previous or previous.get("status") not in ("ok", "skipped") or previous.get("options_hash") != digest:
        return None
    try:
        res = R.read(result_path(out_dir, clip))
    except R.ResultError:
        return None
    return res.num_frames, list(res.hands)


def sweep_temporaries(out_dir: str) -> None:
    """Remove the temporary files of captures that were killed (a finished result is never one)."""
    for root, _, files in os.walk(out_dir):
        for f in files:
            if f.startswith(TEMP_PREFIXES):
                try:
                    os.unlink(os.path.join(root, f))
                except OSError:
                    pass


def clip_record(clip: Clip, out_dir: str, digest: str, preview: bool = False, **fields: object) -> dict:
    """A clip's summary line: ``fields`` (status, frames, ...) with its files, options digest and engine."""
    return {"clip": clip.name, "video": clip.video, **fields,
            "result": os.path.relpath(result_path(out_dir, clip), out_dir) if fields["status"] in ("ok", "skipped")
            else "",
            "preview": os.path.relpath(preview_path(out_dir, clip), out_dir)
            if preview and fields["status"] in ("ok", "skipped") else "",
            "options_hash": digest, "engine_version": __version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
