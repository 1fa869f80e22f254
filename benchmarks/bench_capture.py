"""Whole-capture speed: this tree against an earlier commit, in the same run, per stage.

    .venv/bin/python benchmarks/bench_capture.py [--base bf33a72] [--rounds 3] [--quality balanced]
        [--clips one,two] [--threads 2]
    .venv/bin/python benchmarks/bench_capture.py --configs one:balanced,one:draft,two:balanced

Each round runs ``python -m engine capture CLIP --progress jsonl --no-cache`` once with the base tree
and once with this tree (alternating which goes first), as a fresh process each, and reads the time
of every jsonl event as it arrives: start-up (process launch to the ``start`` event), then each stage
(``read``, ``detect``, ``init``, ``fit1``, ``fit2``, ``write``) up to the ``done`` event. CPU seconds
(user + system, the process and its threads) and peak memory come from ``os.wait4``. Prints, per clip
and quality, the median of the rounds per stage, the ratio of the whole capture to the clip's
duration, and this tree against the base (a table titled ``**CLIP, QUALITY**``); then ``**Whole
capture**``, a row per clip and quality against issue 22's targets.

The clips are made here (under a temporary folder) from the repository's own footage:
  one  the first 300 frames of demo/human_hand_video.mp4 (a right hand), resized to 640x480, 30 fps:
       captured with --hands right
  two  tests/data/squats_two_hands.mp4 (65 frames, 640x640, both hands), played forward and backward
       to 300 frames and written at 30 fps (a 10-second clip): captured with --hands both
The base tree is a ``git worktree`` of the named commit (made under the temporary folder, removed
after) run with this interpreter.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from mdtable import print_table  # noqa: E402

STAGES = ("startup", "read", "detect", "init", "fit1", "fit2", "write")
TARGETS = {("one", "balanced"): 10.0, ("one", "draft"): 5.0, ("two", "balanced"): 15.0}  # issue 22, wall s


def make_clips(folder, which):
    import cv2

    clips = {}
    if "one" in which:
        path = os.path.join(folder, "one_hand_640x480.mp4")
        cap = cv2.VideoCapture(str(ROOT / "demo" / "human_hand_video.mp4"))
        out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
        for _ in range(300):
            ok, frame = cap.read()
            if not ok:
                break
            out.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
        out.release()
        clips["one"] = (path, "right", 300 / 30.0)
    if "two" in which:
        path = os.path.join(folder, "two_hands_640x640.mp4")
        cap = cv2.VideoCapture(str(ROOT / "tests" / "data" / "squats_two_hands.mp4"))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        loop = frames + frames[-2:0:-1]
        out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, frames[0].shape[1::-1])
        for i in range(300):
            out.write(loop[i % len(loop)])
        out.release()
        clips["two"] = (path, "both", 300 / 30.0)
    return clips


def run_once(tree, clip, hands, quality, out_dir, threads, extra=()):
    """One capture in a fresh process -> {stage: seconds, "total", "cpu", "rss_mib", "done_event"}."""
    out = os.path.join(out_dir, "result.npz")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "engine", "capture", clip, "--out", out, "--hands", hands, "--quality", quality,
           "--progress", "jsonl", "--no-cache", *extra]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    marks, done = [], None
    for line in proc.stdout:
        now = time.monotonic() - t0
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "start":
            marks.append(("startup", now))
        elif event.get("event") == "stage":
            marks.append((event["stage"], now))
        elif event.get("event") in ("done", "error"):
            marks.append(("end", now))
            done = event
    _, status, usage = os.wait4(proc.pid, 0)
    if done is None or done.get("event") != "done":
        raise SystemExit(f"capture failed in {tree}: {done}")
    row = {name: 0.0 for name in STAGES}
    row["startup"] = marks[0][1]
    for (name, t), (_, t_next) in zip(marks[1:], marks[2:]):
        row[name] = row.get(name, 0.0) + t_next - t
    row["total"] = marks[-1][1]
    row["cpu"] = usage.ru_utime + usage.ru_stime
    row["rss_mib"] = usage.ru_maxrss / 1024.0
    row["done_event"] = done
    return row


def median_rows(rows):
    keys = [k for k in rows[0] if k != "done_event"]
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="bf33a72", help="earlier commit to compare with ('' for none)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quality", default="balanced", choices=("draft", "balanced", "best"))
    ap.add_argument("--clips", default="one,two", help="one, two or one,two")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the engine processes")
    ap.add_argument("--configs", default=None,
                    help="CLIP:QUALITY,... to run instead of --clips x --quality, e.g. one:balanced,one:draft")
    args = ap.parse_args()
    if args.configs:
        configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    else:
        configs = [(c, args.quality) for c in args.clips.split(",")]

    tmp = tempfile.mkdtemp(prefix="hmp-bench-capture-")
    trees = {"this tree": str(ROOT)}
    base_tree = None
    try:
        if args.base:
            base_tree = os.path.join(tmp, "base")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", base_tree, args.base],
                           check=True, capture_output=True)
            trees = {args.base: base_tree, "this tree": str(ROOT)}
        clips = make_clips(tmp, {c for c, _ in configs})
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        print(f"--no-cache, {args.rounds} rounds, OMP_NUM_THREADS={args.threads}, {os.cpu_count()} CPUs; "
              f"trees: {', '.join(trees)}")
        summary = []
        for name, quality in configs:
            clip, hands, duration = clips[name]
            rows = {label: [] for label in trees}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for label in order:
                    rows[label].append(run_once(trees[label], clip, hands, quality, out_dir, args.threads))
            med = {label: median_rows(rs) for label, rs in rows.items()}
            labels = list(trees)
            two = len(labels) == 2
            names = {"total": "whole capture, wall", "cpu": "CPU seconds", "rss_mib": "peak memory, MiB",
                     "startup": "start-up to `start`"}
            table = []
            for key in STAGES + ("total", "cpu", "rss_mib"):
                vals = [med[lab][key] for lab in labels]
                ratio = ([f"{vals[1] / vals[0]:.2f}x" if vals[0] > 0 else None] if two else [])
                table.append([names.get(key, key), *(f"{v:.2f}" for v in vals), *ratio])
            table.append(["x real time (wall / clip length)",
                          *(f"{med[lab]['total'] / duration:.2f}" for lab in labels), *([""] if two else [])])
            print_table(f"{name}, {quality}", ["seconds", *labels, *(["new / base"] if two else [])], table,
                        detail=f"clip '{name}': {Path(clip).name}, --hands {hands}, {duration:.0f} s of video, "
                               f"quality {quality} (median of {args.rounds}; seconds)")
            stage_s = rows["this tree"][-1]["done_event"].get("stage_seconds")
            if stage_s:
                print(f"\nthis tree's done event (last round): stage_seconds {stage_s}")
            summary.append((name, quality, hands, duration, med))
        base = labels[0] if two else None
        table = []
        for name, quality, hands, duration, med in summary:
            new = med["this tree"]
            target = TARGETS.get((name, quality))
            verdict = None if target is None else f"{target:g} ({'met' if new['total'] <= target else 'not met'})"
            cells = [name, hands, quality, f"{new['total']:.1f}", f"{new['total'] / duration:.2f}", f"{new['cpu']:.1f}",
                     f"{new['rss_mib']:.0f}", verdict]
            if two:
                cells += [f"{med[base]['total']:.1f}", f"{new['total'] / med[base]['total']:.2f}x"]
            table.append(cells)
        print_table("Whole capture", ["clip", "hands", "quality", "wall s", "x real time", "CPU s", "peak memory MiB",
                                      "target s", *([f"{base} wall s", f"this tree / {base}"] if two else [])], table,
                    detail="10 s of video each; this tree's wall seconds against issue 22's targets (2 cores, nothing "
                           "else running), and against the base tree's in the same run")
    finally:
        if base_tree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", base_tree], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
