"""Whole-capture speed: this tree against an earlier commit, in the same run, per stage.

    .venv/bin/python benchmarks/bench_capture.py [--base bf33a72] [--rounds 3] [--quality balanced]
        [--clips one,two] [--threads 2]

Each round runs ``python -m engine capture CLIP --progress jsonl --no-cache`` once with the base tree
and once with this tree (alternating which goes first), as a fresh process each, and reads the time
of every jsonl event as it arrives: start-up (process launch to the ``start`` event), then each stage
(``read``, ``detect``, ``init``, ``fit1``, ``fit2``, ``write``) up to the ``done`` event. CPU seconds
(user + system, the process and its threads) and peak memory come from ``os.wait4``. Prints the
median of the rounds per stage, the ratio of the whole capture to the clip's duration, and this tree
against the base.

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
STAGES = ("startup", "read", "detect", "init", "fit1", "fit2", "write")


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
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hmp-bench-capture-")
    trees = {"this tree": str(ROOT)}
    base_tree = None
    try:
        if args.base:
            base_tree = os.path.join(tmp, "base")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", base_tree, args.base],
                           check=True, capture_output=True)
            trees = {args.base: base_tree, "this tree": str(ROOT)}
        clips = make_clips(tmp, args.clips.split(","))
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        print(f"quality {args.quality}, --no-cache, {args.rounds} rounds, OMP_NUM_THREADS={args.threads}, "
              f"{os.cpu_count()} CPUs; trees: {', '.join(trees)}")
        for name, (clip, hands, duration) in clips.items():
            rows = {label: [] for label in trees}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for label in order:
                    rows[label].append(run_once(trees[label], clip, hands, args.quality, out_dir, args.threads))
            med = {label: median_rows(rs) for label, rs in rows.items()}
            print(f"\nclip '{name}': {Path(clip).name}, --hands {hands}, {duration:.0f} s of video "
                  f"(median of {args.rounds}; seconds)")
            labels = list(trees)
            two = len(labels) == 2
            print(f"\n**{name}, {args.quality}**\n")  # the table's title (tools/benchmark_tables.py)
            print("| seconds | " + " | ".join(labels) + (" | new / base |" if two else " |"))
            print("|---" * (len(labels) + 1 + two) + "|")
            for key in STAGES + ("total", "cpu", "rss_mib"):
                vals = [med[lab][key] for lab in labels]
                ratio = f" {vals[1] / vals[0]:.2f}x |" if two and vals[0] > 0 else (" - |" if two else "")
                title = {"total": "whole capture, wall", "cpu": "CPU seconds", "rss_mib": "peak memory, MiB",
                         "startup": "start-up to `start`"}.get(key, key)
                print(f"| {title} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" + ratio)
            print("| x real time (wall / clip length) | " + " | ".join(f"{med[lab]['total'] / duration:.2f}"
                                                               for lab in labels) + (" | |" if two else " |"))
            stage_s = rows["this tree"][-1]["done_event"].get("stage_seconds")
            if stage_s:
                print(f"this tree's done event (last round): stage_seconds {stage_s}")
    finally:
        if base_tree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", base_tree], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
