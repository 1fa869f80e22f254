"""Live capture (issue 23): ``engine live`` on a 640x480 30 fps file played in real time, as a webcam.

    .venv/bin/python benchmarks/bench_live.py [--seconds 10] [--quality draft] [--cores 2]

1. A 640x480 30 fps clip of ``--seconds`` made from demo/human_hand_video.mp4 (scaled, MPEG-4).
2. ``python -m engine live --source CLIP --realtime --record TAKE.mp4 --progress jsonl`` pinned to
   ``--cores`` CPU cores: live ``pose`` events per second of the take, latency from each frame's arrival
   to its event (the engine's ``latency_ms``, and measured here: the line's arrival minus the frame's
   ``wall`` time), frames and size of the take against the source.
3. After Stop: ``engine capture TAKE.mp4`` (what the add-on runs) against ``engine capture CLIP`` (the
   same file captured directly), same options: frame count and the difference of the fitted joints
   (the take is the clip encoded once more, so detections differ by the encoding); and how far the
   live poses were from that fit (joints, mm, wrist-relative and in the camera).
4. In Blender (bpy as a module): the time of each tick of the live operator's timer while recording.
Prints one markdown table, ``**Live capture**``: each figure, issue 23's target where it sets one,
and what was measured.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from mdtable import print_table  # noqa: E402


def make_clip(path, seconds):
    import cv2

    cap = cv2.VideoCapture(os.path.join(ROOT, "demo", "human_hand_video.mp4"))
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    n = 0
    while n < int(round(seconds * 30)):
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
        n += 1
    out.release()
    return n


def count(path):
    import cv2

    cap = cv2.VideoCapture(path)
    n = 0
    while cap.grab():
        n += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return n, size


def pinned(cores):
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, set(available[:cores]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--quality", default="draft")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS=str(args.cores))
    work = tempfile.mkdtemp(prefix="bench_live_")
    env["HMP_CACHE_DIR"] = os.path.join(work, "cache")
    clip, take = os.path.join(work, "clip.mp4"), os.path.join(work, "take.mp4")
    frames = make_clip(clip, args.seconds)
    rows = []  # (figure, target, measured)

    proc = subprocess.Popen([sys.executable, "-m", "engine", "live", "--source", clip, "--record", take, "--realtime",
                             "--progress", "jsonl"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                            preexec_fn=pinned(args.cores))
    events, arrived = [], []
    for line in proc.stdout:
        arrived.append(time.time())
        events.append(json.loads(line))
    proc.wait()
    done = events[-1]
    assert done["event"] == "done", events[-1]
    poses = [(e, t) for e, t in zip(events, arrived) if e["event"] == "pose"]
    take_seconds = done["seconds"]
    engine_ms = np.array([e["latency_ms"] for e, _ in poses])
    outside_ms = np.array([1000 * (t - e["wall"]) for e, t in poses])
    n_take, size = count(take)
    n_clip, size_clip = count(clip)
    rows.append(("live `pose` events per second of the take", ">= 15",
                 f"{len(poses) / take_seconds:.1f} ({len(poses)} events in {take_seconds:.2f} s; {done['dropped']} "
                 f"frames skipped for the live view, {sum(1 for e, _ in poses if e['hands'])} with a hand)"))
    rows.append(("latency, frame due -> its `pose` event, median", "<= 150 ms",
                 f"{np.median(outside_ms):.0f} ms (p90 {np.percentile(outside_ms, 90):.0f}, max "
                 f"{outside_ms.max():.0f}; the engine's own `latency_ms`: median {np.median(engine_ms):.0f}, p90 "
                 f"{np.percentile(engine_ms, 90):.0f})"))
    rows.append(("the take", "every frame, same size",
                 f"{n_take} frames, {size[0]}x{size[1]} (source: {n_clip}, {size_clip[0]}x{size_clip[1]})"))

    from engine.contract import result as R

    results = {}
    for name, video in (("take", take), ("clip", clip)):
        out = os.path.join(work, f"{name}.npz")
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "engine", "capture", video, "--out", out, "--quality", args.quality,
                        "--device", "cpu", "--progress", "quiet"], cwd=ROOT, env=env, check=True,
                       preexec_fn=pinned(args.cores))
        results[name] = R.read(out)
        rows.append((f"`engine capture` of the {name}, seconds ({args.quality})", "-", f"{time.monotonic() - t0:.0f}"))
    a, b = results["take"], results["clip"]
    ja, jb = a.hands["right"]["joints"], b.hands["right"]["joints"]
    both = a.hands["right"]["valid"] & b.hands["right"]["valid"]
    d = np.linalg.norm(ja[both] - jb[both], axis=-1) * 1000
    rel = np.linalg.norm((ja - ja[:, :1])[both] - (jb - jb[:, :1])[both], axis=-1) * 1000
    rows.append((f"`engine capture TAKE.mp4` against `engine capture clip.mp4` ({args.quality}), joints", "-",
                 f"{len(a['frame_ids'])} / {len(b['frame_ids'])} rows; median {np.median(d):.2f} mm, p90 "
                 f"{np.percentile(d, 90):.2f}, max {d.max():.1f} (wrist-relative median {np.median(rel):.2f})"))

    from engine.fit.per_frame import forward_joints
    from engine.hand_model import load_hand_model

    model = load_hand_model("right")
    live_rows = [(e["frame"], e["hands"]["right"]) for e, _ in poses if "right" in e["hands"]]
    idx = np.array([f for f, _ in live_rows])
    live = forward_joints(model, np.array([h["global_orient"] for _, h in live_rows]),
                          np.array([h["hand_pose"] for _, h in live_rows]), np.zeros(10),
                          np.array([h["transl"] for _, h in live_rows]))
    fit = ja[idx]
    cam = np.linalg.norm(live - fit, axis=-1) * 1000
    rel = np.linalg.norm((live - live[:, :1]) - (fit - fit[:, :1]), axis=-1) * 1000
    rows.append((f"the live poses against the fit of the take ({len(live_rows)} frames), joints", "-",
                 f"median {np.median(cam):.1f} mm in the camera, {np.median(rel):.1f} mm wrist-relative"))
    rows.append(blender_step(clip, work, env))
    print_table("Live capture", ["figure", "target", "measured"], rows,
                detail=f"{os.cpu_count()} CPUs, the engine pinned to {args.cores}; a 640x480 30 fps clip of {frames} "
                       "frames played in real time")


def blender_step(clip, work, env):
    """4. In Blender (bpy): what the modal operator's 1/30 s timer does per tick while recording (read
    the engine's events, pose the rig with the newest one, reload the camera image), timed -> a row of
    the table."""
    os.environ.update({k: env[k] for k in ("HMP_CACHE_DIR",)})
    os.environ["HMP_ENGINE_PYTHON"] = sys.executable
    import bpy

    import hmp_addon
    from hmp_addon import live, live_ui

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    s = bpy.context.scene.hmp_live
    s.source, s.folder = clip, os.path.join(work, "blender")
    job = live.start(bpy.context)
    job.fit = False  # the recording only: the fit is the capture timed above
    steps = []
    while job.state == "recording":
        t0 = time.perf_counter()
        job.step(bpy.context)
        steps.append(time.perf_counter() - t0)
        time.sleep(max(0.0, live_ui.TICK_S - steps[-1]))
    ms = np.array(steps) * 1000
    hmp_addon.unregister()
    return (f"Blender {bpy.app.version_string}: the live operator's timer tick while recording", "responsive",
            f"{np.median(ms):.2f} ms median (p99 {np.percentile(ms, 99):.1f}, max {ms.max():.1f}; {len(ms)} ticks; "
            f"{job.poses_applied} of the {job.poses_seen} pose events seen applied, the newest at each tick)")


if __name__ == "__main__":
    main()
