"""The batch's clips: inputs (videos, folders, .txt / .csv lists) -> ``Clip`` list, each clip's
capture options and their digest (what makes a result current), and where its files go."""

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import TYPE_CHECKING

from engine import __version__
from engine.contract import choices as C
from engine.util.errors import EngineError

if TYPE_CHECKING:  # engine.capture (torch, MediaPipe) is imported when the options are made
    from engine.capture import CaptureOptions

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
LIST_EXTENSIONS = (".txt", ".csv", ".lst")


@dataclasses.dataclass
class Clip:
    name: str  # relative path without extension, "/"-separated: the result is <out>/<name>.npz
    video: str  # absolute path
    overrides: dict  # per-clip CaptureOptions fields from a list: hands, start, end, K (fov cleared)


def base_options(args: argparse.Namespace) -> "CaptureOptions":
    """The capture options every clip starts from (the batch's flags, as ``engine capture`` reads them)."""
    from engine.capture import CaptureOptions

    clip_args = argparse.Namespace(**{**vars(args), "preview": None, "keypoints": None})  # per clip / not in batch
    return CaptureOptions.from_args(clip_args)


def clip_options(base: "CaptureOptions", clip: Clip) -> "CaptureOptions":
    """The clip's CaptureOptions: the batch's, with the list's per-clip values."""
    options = dataclasses.replace(base, **clip.overrides)
    if "K" in clip.overrides:
        options.fov = None
    return options


def options_hash(options: "CaptureOptions", video: str) -> str:
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
    from engine.commands.args import intrinsics

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


def collect_clips(inputs: list[str], recursive: bool = False) -> list[Clip]:
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


def result_path(out_dir: str, clip: Clip) -> str:
    """``out_dir/<clip name>.npz``."""
    return os.path.join(out_dir, *clip.name.split("/")) + ".npz"


def preview_path(out_dir: str, clip: Clip) -> str:
    """``out_dir/<clip name>.preview.mp4``."""
    return os.path.join(out_dir, *clip.name.split("/")) + ".preview.mp4"
