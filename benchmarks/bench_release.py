"""This tree against the release before, in one run: MediaPipe's Tasks landmarker against the legacy graph.

    .venv/bin/python benchmarks/bench_release.py --baseline /tmp/old_tree:/tmp/vold/bin/python
        [--current TREE:PYTHON] [--only frames,report,rendered,speed] [--rounds 3] [--frames 300]
        [--threads 2] [--workdir DIR] [--variants]

Every measurement runs in both trees, each in subprocesses of its own Python with the tree as the
working directory and first on ``sys.path`` (so each tree's own engine code and pinned packages run),
on the same input files. One table per measurement: the baseline, this tree, and the ratio
this/baseline. Figures only, no assertions.

- ``frames``: frames found per real clip (the demo, ``tests/data``'s ASL, squats and hand_short
  clips) and per hard clip of ``tests/test_keypoints_hard_clips.py`` (a hand entering and leaving
  with a border cut; two crossing hands; built once here with that module's functions and written to
  ``--workdir``, the same files for both trees). Plain MediaPipe of each tree, called directly (the
  baseline: ``mediapipe.solutions.hands.Hands(static_image_mode=False, max_num_hands=2)``; this tree:
  the Tasks ``HandLandmarker`` on the shipped bundle, VIDEO mode at the frames' own times,
  ``num_hands=2``, default thresholds): frames with any hand, hands, hands per label. Then the front
  end (``detect_hands``, both sides, default views, gap retries on, no cache): frames kept and filled
  per side. On the hard clips also what is right: the hand found only where there is one, each
  crossing hand's track on its own hand. ``--variants`` adds, to see what an option of the landmarker
  would change: plain MediaPipe in IMAGE mode (the baseline's ``static_image_mode=True``) and plain
  Tasks with other thresholds, and the front end with Tasks in IMAGE mode (this tree's
  ``HandDetector(tracking=False)`` put in place for that run; the engine is not changed).
- ``report``: the real-footage figures per stage, ``benchmarks/bench_real.py``'s ``run_clip`` in each
  tree (the demo and the ASL clip, right hand; the squats clip, both hands; quality balanced;
  detection into an empty cache folder per tree): the same ``engine.evaluation.report.hand_report`` that
  ``python -m engine report`` prints for results captured with ``--stages 0``, ``1``, ``2``, with one
  detection per clip instead of three captures.
- ``rendered``: ``python -m engine benchmark --quality draft`` in each tree. The clips are rendered
  once (this tree's Python and bpy, or the baseline's with ``--render-with baseline``; ``--render-only``
  into ``--workdir``/render, skipped when they are there) and copied into a folder per tree, so both
  trees detect and fit the same pixels (the renders of two Blender versions differ by more than the
  detector does).
- ``speed``: on the demo clip's first ``--frames`` frames (cache off): the plain detector
  (``engine.keypoints.detector.HandDetector`` of each tree, tracking, ``max_hands`` 1 and 2; only the
  detector's calls timed, on frames decoded beforehand) and the front end (``detect_hands``, right
  hand, views 0 and 4, everything timed). The two trees alternate, ``--rounds`` rounds (A B, B A, ...),
  and the median of each is shown, so load on the machine falls on both.

Every subprocess gets ``OMP_NUM_THREADS=--threads`` and torch ``--threads`` threads.
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
SPEED_SETTINGS = ("detector, 1 hand", "detector, 2 hands", "front end, views 0", "front end, views 4")
REAL_CLIPS = ["demo/human_hand_video.mp4", "tests/data/asl_hand_50.mp4", "tests/data/squats_two_hands.mp4",
              "tests/data/hand_short.mp4"]
REPORT_CLIPS = ["demo/human_hand_video.mp4:right", "tests/data/asl_hand_50.mp4:right",
                "tests/data/squats_two_hands.mp4:both"]
STAGES = ("per-frame", "stage I", "stage II")
# plain Tasks with other options (--variants): name -> HandLandmarkerOptions keywords / running mode
VARIANTS = {  # min_tracking_confidence is the IoU above which a palm found again is the tracked hand
    "IMAGE mode (palm detection every frame)": {"mode": "image"},
    "tracking 0.3": {"min_tracking_confidence": 0.3},
    "tracking 0.7": {"min_tracking_confidence": 0.7},
    "tracking 0.9": {"min_tracking_confidence": 0.9},
    "presence 0.3": {"min_hand_presence_confidence": 0.3},
    "presence 0.7": {"min_hand_presence_confidence": 0.7},
    "detection 0.3": {"min_hand_detection_confidence": 0.3},
    "detection 0.7": {"min_hand_detection_confidence": 0.7},
}


# ---------------------------------------------------------------------------------------------------
# workers: run inside a tree (cwd), with that tree's Python; they print nothing but write JSON


def _is_tasks():
    from engine.keypoints import detector

    return hasattr(detector, "MODEL_BUNDLE")


def _plain_legacy(video, static=False):
    import mediapipe as mp
    import numpy as np

    from engine.keypoints.detector import LABEL_TO_SIDE, quiet_native_stderr

    rows = []
    with quiet_native_stderr(), mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=2) as hands:
        for _, rgb in video.frames():
            res = hands.process(np.ascontiguousarray(rgb))
            rows.append([LABEL_TO_SIDE[h.classification[0].label] for h in (res.multi_handedness or [])])
    return rows


def _plain_tasks(video, mode="video", **thresholds):
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from engine.keypoints.detector import LABEL_TO_SIDE, MODEL_BUNDLE, quiet_native_stderr

    running = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE
    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(MODEL_BUNDLE)),
                                           running_mode=running, num_hands=2, **thresholds)
    rows, last = [], -1
    with quiet_native_stderr(), vision.HandLandmarker.create_from_options(options) as hands:
        for _, rgb, t in video.frames(with_time=True):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            if mode == "video":  # the frame's own time in ms, strictly increasing
                last = max(last + 1, int(round(t * 1000)) if t is not None and np.isfinite(t) else 0)
                res = hands.detect_for_video(image, last)
            else:
                res = hands.detect(image)
            rows.append([LABEL_TO_SIDE[h[0].category_name] for h in res.handedness])
    return rows


def worker_frames(clips, variants):
    import numpy as np

    from engine.contract import result as R
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    tasks = _is_tasks()
    out = {}
    for clip in clips:
        video = open_video(clip)
        t0 = time.perf_counter()
        plain = _plain_tasks(video) if tasks else _plain_legacy(video)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(use_cache=False))
        entry = {"plain": plain, "seconds": {"plain": t_plain, "front end": time.perf_counter() - t0},
                 "views": KeypointOptions().views, "sides": {}}
        for side, track in tracks.items():
            entry["sides"][side] = {"source": [int(s) for s in track.source],
                                    "keypoints": np.where(np.isfinite(track.keypoints_2d), track.keypoints_2d,
                                                          -1.0).round(2).tolist(),
                                    "stats": {k: int(v) for k, v in track.stats.items()}}
        entry["codes"] = {"mediapipe": int(R.SOURCE_MEDIAPIPE), "crop": int(R.SOURCE_TRACKED_CROP)}
        if variants and tasks:
            entry["variants"] = {name: _plain_tasks(video, **dict(opts)) for name, opts in VARIANTS.items()}
            entry["image_front_end"] = _front_end_image_mode(video)
        elif variants:
            entry["variants"] = {"IMAGE mode (palm detection every frame)": _plain_legacy(video, static=True)}
        out[clip] = entry
    return out


def _front_end_image_mode(video):
    """The front end with the landmarker in IMAGE mode (palm detection on every frame): the engine's
    own ``HandDetector(tracking=False)`` put in place of the tracking one for this call only."""
    import numpy as np

    from engine.keypoints import KeypointOptions, detect_hands, detector

    tracking_detector = detector.HandDetector

    class ImageMode(tracking_detector):
        def __init__(self, max_hands=2, tracking=True, **kw):
            super().__init__(max_hands=max_hands, tracking=False, **kw)

    detector.HandDetector = ImageMode
    try:
        tracks = detect_hands(video, sides=("right", "left"), options=KeypointOptions(use_cache=False))
    finally:
        detector.HandDetector = tracking_detector
    return {side: {"source": [int(s) for s in t.source],
                   "keypoints": np.where(np.isfinite(t.keypoints_2d), t.keypoints_2d, -1.0).round(2).tolist(),
                   "stats": {k: int(v) for k, v in t.stats.items()}} for side, t in tracks.items()}


def worker_report(specs, quality, threads):
    import torch
    from bench_real import run_clip

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for spec in specs:
        path, _, hands = spec.partition(":")
        rows = run_clip(path, hands, quality, {})
        out[spec] = {side: {"figures": fig, "seconds": times} for side, (fig, times) in rows.items()}
    return out


def worker_speed(video_path, frames, threads):
    import inspect

    import torch

    from engine.keypoints import KeypointOptions, detect_hands
    from engine.keypoints.detector import HandDetector
    from engine.video import open_video

    torch.set_num_threads(threads)
    video = open_video(video_path)
    end = min(frames, video.num_frames)
    decoded = list(video.frames(0, end, with_time=True))
    timed = len(inspect.signature(HandDetector.__call__).parameters) > 2  # the Tasks detector takes t
    out = {"frames": end}
    t0, c0 = time.perf_counter(), time.process_time()
    HandDetector(max_hands=2, tracking=True).close()
    out["detector start-up"] = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "found": 0}
    for hands in (1, 2):
        with HandDetector(max_hands=hands, tracking=True) as det:
            found = n = 0
            sec = cpu = 0.0
            for _, rgb, t in decoded:
                t0, c0 = time.perf_counter(), time.process_time()
                dets = det(rgb, t) if timed else det(rgb)
                sec, cpu = sec + time.perf_counter() - t0, cpu + time.process_time() - c0
                found += bool(dets)
                n += len(dets)
        out[f"detector, {hands} hand{'s' if hands > 1 else ''}"] = {"seconds": sec, "cpu": cpu, "found": found,
                                                                     "hands": n}
    del decoded
    for views in (0, 4):
        t0, c0 = time.perf_counter(), time.process_time()
        tracks = detect_hands(video, sides=("right",), options=KeypointOptions(views=views, use_cache=False, end=end))
        out[f"front end, views {views}"] = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                                            "found": int(tracks["right"].detected.sum())}
    return out


def worker_main(args):
    tree = Path(args.tree).resolve()
    # this tree's engine and benchmarks, not the ones beside this file
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(tree), str(tree / "benchmarks")] + [p for p in sys.path if Path(p or ".").resolve() != here]
    os.chdir(tree)
    if args.worker == "frames":
        res = worker_frames(args.clips, args.variants)
    elif args.worker == "report":
        res = worker_report(args.clips, args.quality, args.threads)
    else:
        res = worker_speed(args.clips[0], args.frames, args.threads)
    Path(args.json).write_text(json.dumps(res))


# ---------------------------------------------------------------------------------------------------
# the driver


class Tree:
    def __init__(self, label, spec):
        path, _, python = spec.rpartition(":")
        self.label, self.path, self.python = label, Path(path).resolve(), python

    def git(self, *args):
        return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True).stdout.strip()

    def env(self, threads, cache):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), HMP_CACHE_DIR=str(cache))
        env.pop("PYTHONPATH", None)
        return env

    def worker(self, mode, clips, out_json, opts, extra=()):
        cmd = [self.python, str(Path(__file__).resolve()), "--worker", mode, "--tree", str(self.path),
               "--json", str(out_json), "--threads", str(opts.threads), "--frames", str(opts.frames),
               "--quality", opts.quality, *extra, "--clips", *[str(c) for c in clips]]
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=self.path, env=self.env(opts.threads, opts.workdir / f"cache-{self.label}"),
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{self.label} tree, {mode}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        return json.loads(Path(out_json).read_text()), time.time() - t0


def provenance(trees, opts):
    print(f"# bench_release: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, OMP_NUM_THREADS={opts.threads}, "
          f"torch threads {opts.threads}")
    probe = ("import sys, importlib.metadata as m\n"
             "v = lambda p: next((m.version(n) for n in p.split('|') if _has(m, n)), '-')\n"
             "def _has(m, n):\n"
             "    try:\n        m.version(n); return True\n    except m.PackageNotFoundError:\n        return False\n"
             "print(f\"Python {sys.version.split()[0]}, mediapipe {v('mediapipe')}, numpy {v('numpy')}, "
             "torch {v('torch')}, "
             "LiteRT {v('ai-edge-litert')}, opencv {v('opencv-contrib-python|opencv-python')}, bpy {v('bpy')}\")")
    for tree in trees:
        dirty = tree.git("status", "--porcelain", "--untracked-files=no")
        versions = subprocess.run([tree.python, "-c", probe], capture_output=True, text=True).stdout.strip()
        print(f"# {tree.label}: {tree.path} at {tree.git('rev-parse', '--short', 'HEAD')}"
              f"{' (+ uncommitted changes)' if dirty else ''} \"{tree.git('log', '-1', '--format=%s')[:80]}\"; "
              f"{tree.python}: {versions}")
    print()


def ratio(new, old):
    return f"{new / old:.2f}x" if old else ("=" if new == old else "-")


def print_table(title, head, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    sys.stdout.flush()


def make_hard_clips(folder):
    """The hard clips of tests/test_keypoints_hard_clips.py, built with its functions (this tree's
    detection of hand_short.mp4 places the cut and gives the crossing hands' truth), written once."""
    import numpy as np

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import test_keypoints_hard_clips as hc

    frames, kp, detected = hc.source_frames()
    enter, shifts = hc.enter_leave_frames(frames, kp)
    cross, where = hc.crossing_frames(frames, kp)
    paths = {"enter_leave.mp4": folder / "enter_leave.mp4", "crossing.mp4": folder / "crossing.mp4"}
    hc.write(paths["enter_leave.mp4"], enter, (hc.W, hc.H))
    hc.write(paths["crossing.mp4"], cross, (hc.CROSSING_WIDTH, hc.H))
    truth = {"enter_leave.mp4": [None if s is None else (kp[t] - [s, 0]) for t, s in enumerate(shifts)],
             "crossing.mp4": [(np.asarray(r), np.asarray(lft)) for r, lft in where]}
    return paths, truth, bool(detected.all())


def hard_clip_checks(name, entry, truth):
    """What is right on a hard clip: (description, value) pairs."""
    import numpy as np

    src = {side: np.array(entry["sides"][side]["source"]) for side in ("right", "left")}
    kps = {side: np.array(entry["sides"][side]["keypoints"]) for side in ("right", "left")}
    out = []
    if name == "enter_leave.mp4":  # one right hand
        present = np.array([t is not None for t in truth])
        found = (src["right"] != 0) | (src["left"] != 0)
        errs = []
        for t in np.flatnonzero(found & present):
            kp = kps["right"][t] if src["right"][t] else kps["left"][t]
            vis = truth[t][:, 0] > 5
            errs.append(np.median(np.linalg.norm(kp[vis] - truth[t][vis], axis=1)))
        out.append(("a hand kept or filled where there is one (26 frames)", int((found & present).sum())))
        out.append(("  of them in the 8 frames cut by the border (26-33)", int((found & present)[26:34].sum())))
        out.append(("  of them on the right-hand track", int(((src["right"] != 0) & present).sum())))
        out.append(("a hand where there is none (14 frames)", int(found[~present].sum())))
        out.append(("median keypoint error where found, px (worst frame)",
                    f"{np.median(errs):.1f} ({max(errs):.1f})" if errs else "-"))
    else:  # a right hand and its mirror image crossing
        for side, own in (("right", 0), ("left", 1)):
            on_own = wrong = 0
            for t in np.flatnonzero(src[side] != 0):
                d_own = np.linalg.norm(kps[side][t] - truth[t][own], axis=1).mean()
                d_other = np.linalg.norm(kps[side][t] - truth[t][1 - own], axis=1).mean()
                if d_own < d_other or d_own < 15:  # the test's criterion
                    on_own += 1
                else:
                    wrong += 1
            out.append((f"{side} track: frames on its own hand / on the other hand (40 frames)", f"{on_own} / {wrong}"))
    return out


def run_frames(trees, opts):
    folder = opts.workdir / "hard_clips"
    folder.mkdir(parents=True, exist_ok=True)
    hard, truth, source_ok = make_hard_clips(folder)
    clips = [ROOT / c for c in REAL_CLIPS] + list(hard.values())
    res = {}
    for tree in trees:
        res[tree.label], sec = tree.worker("frames", clips, opts.workdir / f"frames-{tree.label}.json", opts,
                                           ["--variants"] if opts.variants else [])
        print(f"frames, {tree.label} tree: {sec:.0f} s", flush=True)
    old, new = (res[t.label] for t in trees)
    views = new[str(clips[0])]["views"]
    rows, rows_fe, rows_diff = [], [], []
    for clip in clips:
        o, n = old[str(clip)], new[str(clip)]
        name = clip.name
        T = len(n["plain"])

        def plain_figs(e):
            per = e["plain"]
            return (sum(1 for r in per if r), sum(len(r) for r in per), sum(1 for r in per if len(r) >= 2),
                    sum(1 for r in per if "right" in r), sum(1 for r in per if "left" in r))

        po, pn = plain_figs(o), plain_figs(n)
        rows.append([name, T] + [f"{a} / {b} ({ratio(b, a)})" for a, b in zip(po, pn)])
        fo = [len(o["plain"][t]) > 0 for t in range(T)]
        fn = [len(n["plain"][t]) > 0 for t in range(T)]
        lost = [t for t in range(T) if fo[t] and not fn[t]]
        gained = [t for t in range(T) if fn[t] and not fo[t]]
        flips = sum(1 for t in range(T) if len(o["plain"][t]) == 1 and len(n["plain"][t]) == 1
                    and o["plain"][t] != n["plain"][t])
        rows_diff.append([name, f"{len(lost)} {_frames(lost)}", f"{len(gained)} {_frames(gained)}", flips])

        def fe(e, side, key):
            return e["sides"][side]["stats"][key]

        cells = [name]
        for side in ("right", "left"):
            for key in ("kept_frames", "filled_frames"):
                a, b = fe(o, side, key), fe(n, side, key)
                cells.append(f"{a} / {b} ({ratio(b, a)})")
        any_o = sum(1 for t in range(T) if any(o["sides"][s]["source"][t] for s in ("right", "left")))
        any_n = sum(1 for t in range(T) if any(n["sides"][s]["source"][t] for s in ("right", "left")))
        cells.append(f"{any_o} / {any_n} ({ratio(any_n, any_o)})")
        cells.append(keypoint_agreement(o, n))
        aside = []
        for e in (o, n):
            a = []
            for side in ("right", "left"):
                st = e["sides"][side]["stats"]
                for key, what in (("duplicate_frames", "dup"), ("nested_frames", "nested"),
                                  ("extra_hand_frames", "3rd"), ("low_confidence_frames", "doubt"),
                                  ("other_side_frames", "relabelled"), ("swapped_frames", "swapped")):
                    if st.get(key):
                        a.append(f"{side[0].upper()} {st[key]} {what}")
            aside.append(", ".join(a) or "-")
        cells.append(" / ".join(aside))
        rows_fe.append(cells)
    base, cur = trees[0].label, trees[1].label
    print_table(f"Plain MediaPipe per clip ({base} / {cur} (ratio)): {base} = solutions.hands, {cur} = Tasks "
                "HandLandmarker; both tracking (VIDEO mode), two hands, default thresholds",
                ["clip", "frames", "frames with a hand", "hands", "frames with two hands", "labelled right",
                 "labelled left"], rows)
    print_table("Plain MediaPipe frame by frame: frames where only one tree finds a hand, and one-hand frames "
                "whose (un-mirrored) label differs", ["clip", f"found by {base} only", f"found by {cur} only",
                                                      "label differs"], rows_diff)
    print_table(f"Front end per clip ({base} / {cur} (ratio)): detect_hands, both sides, views {views}, gap "
                "retries on, no cache; keypoints: where both trees keep a side as MediaPipe's detection, the mean "
                f"distance between their 21 keypoints per frame)",
                ["clip", "kept R", "filled R", "kept L", "filled L", "frames with a hand kept",
                 "keypoints: frames, median / mean px, frames over 5 px", f"set aside / notes ({base} / {cur})"],
                rows_fe)
    rows_hard = []
    for name, path in hard.items():
        checks_o = hard_clip_checks(name, old[str(path)], truth[name])
        checks_n = hard_clip_checks(name, new[str(path)], truth[name])
        for (what, a), (_, b) in zip(checks_o, checks_n):
            rows_hard.append([name, what, a, b])
    print_table(f"Hard clips (front end, as above; truth from {cur}'s detection of hand_short.mp4"
                f"{'' if source_ok else ', NOT every source frame detected'})", ["clip", "", base, cur], rows_hard)
    if opts.variants:
        variants_tables(clips, old, new, base, cur, truth)


def variants_tables(clips, old, new, base, cur, truth):
    """--variants: plain MediaPipe with other options, and the front end with Tasks in IMAGE mode."""
    import numpy as np

    def cell(per):
        return f"{sum(1 for r in per if r)} / {sum(len(r) for r in per)} / {sum(1 for r in per if len(r) >= 2)}"

    rows = [[f"{base}: solutions.hands, tracking (default)"] + [cell(old[str(c)]["plain"]) for c in clips],
            [f"{base}: solutions.hands, static_image_mode"] +
            [cell(old[str(c)]["variants"]["IMAGE mode (palm detection every frame)"]) for c in clips],
            [f"{cur}: Tasks, VIDEO mode (default)"] + [cell(new[str(c)]["plain"]) for c in clips]]
    rows += [[f"{cur}: Tasks, {name}"] + [cell(new[str(c)]["variants"][name]) for c in clips] for name in VARIANTS]
    print_table("Plain MediaPipe with other options: frames with a hand / hands / frames with two hands "
                "(tracking = min_tracking_confidence, the IoU above which a palm found again is a tracked hand; "
                "presence = min_hand_presence_confidence; detection = min_hand_detection_confidence; "
                "default 0.5 each)", ["setting"] + [c.name for c in clips], rows)
    rows = []
    for c in clips:
        video, image = new[str(c)]["sides"], new[str(c)]["image_front_end"]
        cells = [c.name]
        for side in ("right", "left"):
            st_o, st_v, st_i = (e[side]["stats"] for e in (old[str(c)]["sides"], video, image))
            cells.append(" / ".join(f"{st['kept_frames']}+{st['filled_frames']}" for st in (st_o, st_v, st_i)))
        same = differ = 0
        for side in ("right", "left"):
            for t in range(len(image[side]["source"])):
                if image[side]["source"][t] and video[side]["source"][t]:
                    d = np.linalg.norm(np.array(image[side]["keypoints"][t]) - np.array(video[side]["keypoints"][t]),
                                       axis=1).mean()
                    same, differ = same + (d < 20), differ + (d >= 20)
        cells.append(f"{same} / {differ}")
        if c.name in truth:
            checks = hard_clip_checks(c.name, {"sides": image}, truth[c.name])
            cells.append("; ".join(f"{what.strip()}: {v}" for what, v in checks))
        else:
            cells.append("")
        rows.append(cells)
    print_table(f"Front end (both sides, default views) with Tasks in IMAGE mode ({cur} tree, the engine's "
                f"HandDetector(tracking=False) put in place for the run): kept+filled frames, {base} / {cur} "
                f"VIDEO mode / {cur} IMAGE mode", ["clip", "right", "left",
                                                   "frames on the same hand as VIDEO mode / on another (mean "
                                                   "keypoint distance under 20 px)", "hard clip checks (IMAGE mode)"],
                rows)


def keypoint_agreement(o, n):
    """Where both trees keep a side as MediaPipe's detection: how far apart their keypoints are."""
    import numpy as np

    d = []
    for side in ("right", "left"):
        so, sn = np.array(o["sides"][side]["source"]), np.array(n["sides"][side]["source"])
        both = (so == o["codes"]["mediapipe"]) & (sn == n["codes"]["mediapipe"])
        ko = np.array(o["sides"][side]["keypoints"])[both]
        kn = np.array(n["sides"][side]["keypoints"])[both]
        d.extend(np.linalg.norm(ko - kn, axis=-1).mean(-1).tolist())
    if not d:
        return "-"
    d = np.array(d)
    return f"{len(d)}, {np.median(d):.2f} / {d.mean():.2f}, {int((d > 5).sum())}"


def _frames(ts, most=12):
    if not ts:
        return ""
    return "(" + ", ".join(map(str, ts[:most])) + (", ..." if len(ts) > most else "") + ")"


REPORT_COLS = (("dist_px", "to detections px"), ("tips_px", "tips px"), ("wrist_px", "wrist px"),
               ("img_acc_px", "image acc px/f^2"), ("wrist_acc_mm", "wrist acc mm/f^2"),
               ("rr_acc_mm", "root-rel. acc mm/f^2"))


def run_report(trees, opts):
    res = {}
    specs = [f"{ROOT / c.split(':')[0]}:{c.split(':')[1]}" for c in REPORT_CLIPS]
    for tree in trees:
        res[tree.label], sec = tree.worker("report", specs, opts.workdir / f"report-{tree.label}.json", opts)
        print(f"report, {tree.label} tree: {sec:.0f} s", flush=True)
    old, new = (res[t.label] for t in trees)
    base, cur = trees[0].label, trees[1].label
    for spec in specs:
        for side in [s for s in ("right", "left") if s in new[spec] or s in old[spec]]:
            if side not in old[spec] or side not in new[spec]:
                print(f"\n{Path(spec).name} {side}: found only by {'new' if side in new[spec] else 'old'}")
                continue
            fo, fn = old[spec][side]["figures"], new[spec][side]["figures"]
            pf_o, pf_n = fo["per-frame"], fn["per-frame"]
            rows = [["raw MediaPipe", "-", "-", "-", pair(pf_o["raw_acc_px"], pf_n["raw_acc_px"]), "-", "-"]]
            for stage in STAGES:
                rows.append([stage] + [pair(fo[stage][key], fn[stage][key]) for key, _ in REPORT_COLS])
            rows.append(["stage II / per-frame (image acc: / raw)"] + [
                pair(fo["stage II"][key] / pf_o["raw_acc_px" if key == "img_acc_px" else key],
                     fn["stage II"][key] / pf_n["raw_acc_px" if key == "img_acc_px" else key], unit="x", ratios=False)
                for key, _ in REPORT_COLS])
            print_table(f"Real footage, {Path(spec.split(':')[0]).name}, {side} hand (bench_real.run_clip, quality "
                        f"{opts.quality}; frames detected {pf_o['detected']}/{pf_o['frames']} / "
                        f"{pf_n['detected']}/{pf_n['frames']}): {base} / {cur} ({cur}/{base})",
                        ["stage"] + [what for _, what in REPORT_COLS], rows)


def pair(a, b, unit="", ratios=True):
    """'a / b (b/a)' for a table cell; '-' for a figure with no frames."""
    import math

    if math.isnan(a) and math.isnan(b):
        return "-"
    cell = " / ".join("-" if math.isnan(v) else f"{v:.2f}{unit}" for v in (a, b))
    return cell + (f" ({b / a:.2f}x)" if ratios and a and not math.isnan(a) and not math.isnan(b) else "")


def parse_benchmark(text):
    """The "All hand tracks" table and the frames-detected lines of ``engine benchmark``'s output."""
    rows, cols, found, block = {}, [], {}, None
    for line in text.splitlines():
        if line.startswith("**"):
            block = line.strip("*")
        elif not line.strip() and rows:
            block = None  # the table ended
        elif block == "All hand tracks" and line.startswith("| method"):
            cols = [c.strip() for c in line.strip("|").split("|")][1:]
        elif block == "All hand tracks" and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = dict(zip(cols, map(float, cells[1:])))
        elif ": rendered in " in line and "frames detected" in line:
            name, _, rest = line.partition(": rendered in ")
            found[name] = (rest.split(" s,")[0], rest.split("frames detected: ")[1])
    return cols, rows, found


def run_rendered(trees, opts):
    render = opts.workdir / "render"
    cur = trees[1] if opts.render_with == "current" else trees[0]  # the tree (its bpy) that renders
    t0 = time.time()
    proc = subprocess.run([cur.python, "-m", "engine", "benchmark", "--quality", "draft", "--render-only",
                           "--workdir", str(render), "--out", str(render / "unused.md")], cwd=cur.path,
                          env=cur.env(opts.threads, opts.workdir / f"cache-{cur.label}"), capture_output=True,
                          text=True)
    if proc.returncode:
        sys.exit(f"rendering: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    print(f"rendered (or found) the clips in {render} with the {cur.label} tree's bpy: {time.time() - t0:.0f} s",
          flush=True)
    res = {}
    for tree in trees:
        work = opts.workdir / f"rendered-{tree.label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for f in render.iterdir():
            if f.suffix in (".mp4", ".npz") and not f.name.endswith(".fits.npz"):
                shutil.copy2(f, work / f.name)
        t0 = time.time()
        proc = subprocess.run([tree.python, "-m", "engine", "benchmark", "--quality", "draft", "--workdir", str(work),
                               "--out", str(work / "benchmark_gt.md")], cwd=tree.path,
                              env=tree.env(opts.threads, opts.workdir / f"cache-{tree.label}"), capture_output=True,
                              text=True)
        if proc.returncode:
            sys.exit(f"{tree.label} tree, benchmark: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        res[tree.label] = parse_benchmark(proc.stdout)
        print(f"rendered benchmark, {tree.label} tree: {time.time() - t0:.0f} s (full output: "
              f"{work / 'benchmark_gt.md'})",
              flush=True)
    (cols, old, found_o), (_, new, found_n) = (res[t.label] for t in trees)
    base, curl = trees[0].label, trees[1].label
    rows = [[clip, f"{found_o[clip][1]} / {found_n[clip][1]}", f"{found_o[clip][0]} / {found_n[clip][0]} s"]
            for clip in found_n]
    print_table(f"Rendered clips: frames detected ({base} / {curl}) and render seconds in each tree's run "
                "(0: the shared render was used)", ["clip", "frames detected", "render s"], rows)
    rows = []
    for meth in ("per-frame", "+ SLERP", "+ One Euro", "stage I", "stage II"):
        if meth in new and meth in old:
            rows.append([meth] + [f"{old[meth][k]:.2f} / {new[meth][k]:.2f} ({ratio(new[meth][k], old[meth][k])})"
                                  for k in cols])
    for meth in ("stage I", "stage II"):
        rows.append([f"{meth} / per-frame"] + [f"{old[meth][k] / old['per-frame'][k]:.2f}x / "
                                               f"{new[meth][k] / new['per-frame'][k]:.2f}x" for k in cols])
    print_table(f"Rendered benchmark, all hand tracks (`engine benchmark --quality draft`; mm, mm/frame^2, px): "
                f"{base} / {curl} ({curl}/{base})", ["method"] + cols, rows)


def run_speed(trees, opts):
    video = ROOT / "demo" / "human_hand_video.mp4"
    runs = {t.label: [] for t in trees}
    for r in range(opts.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for tree in order:
            res, sec = tree.worker("speed", [video], opts.workdir / f"speed-{tree.label}-{r}.json", opts)
            runs[tree.label].append(res)
            print(f"speed round {r + 1}, {tree.label} tree: {sec:.0f} s ("
                  + ", ".join(f"{k} {res[k]['seconds']:.1f} s" for k in SPEED_SETTINGS) + ")", flush=True)
    base, cur = trees[0].label, trees[1].label
    frames = runs[cur][0]["frames"]
    rows = []
    for key in ("detector start-up",) + SPEED_SETTINGS:
        sec = {label: [r[key]["seconds"] for r in rs] for label, rs in runs.items()}
        cpu = {label: [r[key]["cpu"] for r in rs] for label, rs in runs.items()}
        med = {label: statistics.median(v) for label, v in sec.items()}
        paired = [o / n for o, n in zip(sec[base], sec[cur])]  # old time / new time, the same round
        speed = key in SPEED_SETTINGS
        rows.append([key, f"{frames / med[base]:.1f}" if speed else "-", f"{frames / med[cur]:.1f}" if speed else "-",
                     f"{med[base] / med[cur]:.2f}x ({min(paired):.2f}-{max(paired):.2f})",
                     f"{med[base]:.2f} ({min(sec[base]):.2f}-{max(sec[base]):.2f})",
                     f"{med[cur]:.2f} ({min(sec[cur]):.2f}-{max(sec[cur]):.2f})",
                     f"{statistics.median(cpu[base]):.2f} / {statistics.median(cpu[cur]):.2f} "
                     f"({statistics.median(cpu[base]) / statistics.median(cpu[cur]):.2f}x)",
                     " / ".join(str(rs[0][key]["found"]) for rs in runs.values()) if speed else "-"])
    print_table(f"Detection speed, demo clip, first {frames} frames, cache off ({opts.rounds} rounds alternating, "
                f"medians; the detector rows time only its calls on decoded frames, the front end rows everything; "
                f"speed-up = {base} time / {cur} time, in brackets the range of the rounds' own ratios; CPU seconds "
                f"are the process's, all threads)",
                ["setting", f"{base} frames/s", f"{cur} frames/s", "speed-up", f"{base} s (min-max)",
                 f"{cur} s (min-max)", f"CPU s {base} / {cur} (ratio)", f"frames with a hand ({base} / {cur})"], rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="TREE:PYTHON of the release before, e.g. /tmp/old_tree:/tmp/vold/bin/python")
    ap.add_argument("--current", default=f"{ROOT}:{ROOT / '.venv' / 'bin' / 'python'}",
                    help="TREE:PYTHON (default: this tree and its .venv)")
    ap.add_argument("--only", default="frames,report,rendered,speed", help="parts to run, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="speed: rounds of the two trees alternating")
    ap.add_argument("--frames", type=int, default=300, help="speed: frames of the demo clip")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS and torch threads in every subprocess")
    ap.add_argument("--quality", default="balanced", help="report: the quality preset")
    ap.add_argument("--workdir", default=None,
                    help="hard clips, renders, caches and JSON (default: a temporary folder)")
    ap.add_argument("--variants", action="store_true", help="frames: plain Tasks with other options too")
    ap.add_argument("--render-with", choices=("current", "baseline"), default="current",
                    help="rendered: whose Python (and bpy) renders the clips both trees fit (default: this tree's)")
    ap.add_argument("--worker", choices=("frames", "report", "speed"), help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--clips", nargs="*", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if not args.baseline:
        ap.error("--baseline TREE:PYTHON is required")
    parts = set(args.only.split(","))
    if parts - {"frames", "report", "rendered", "speed"}:
        ap.error(f"--only: unknown part(s) {', '.join(sorted(parts - {'frames', 'report', 'rendered', 'speed'}))}")
    args.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hmp-bench-release-")).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    trees = [Tree("old", args.baseline), Tree("new", args.current)]
    provenance(trees, args)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\nworkdir: {args.workdir}\n", flush=True)
    t0 = time.time()
    for part, fn in (("frames", run_frames), ("report", run_report), ("rendered", run_rendered), ("speed", run_speed)):
        if part in parts:
            t1 = time.time()
            print(f"\n## {part}\n", flush=True)
            fn(trees, args)
            print(f"\n({part}: {(time.time() - t1) / 60:.1f} min)", flush=True)
    print(f"\ntotal {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
