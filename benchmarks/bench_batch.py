"""Throughput of `engine batch` (Ray) against sequential `engine capture` calls, and how a 2-node
local Ray cluster shares the work.

    nice -n 10 .venv/bin/python benchmarks/bench_batch.py [--clips 8] [--end 12] [--quality draft] [--cpus 2]

Clips: copies of tests/data/hand_short.mp4 and tests/data/asl_hand_50.mp4 (alternating), each
trimmed with --end; detection cache off (--no-cache) so every run detects. Progress goes to stderr;
once every run is done, stdout gets markdown tables (benchmarks/mdtable.py): **Sequential calls per
clip** (wall and CPU seconds of each `engine capture`), **Batch throughput against sequential calls**
(wall, clips/hour, frames/s and the ratio to the sequential calls, a row per run, the 2-node cluster
included), **Cost per clip** (capture and CPU seconds per clip, start-up, the batch's overhead) and
**2-node local cluster: clips per node**. Its saved run makes docs/benchmarks.md's "Batch" tables
(benchmarks/suite.py).
"""

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from mdtable import print_table  # noqa: E402

SOURCES = [os.path.join(ROOT, "tests", "data", n) for n in ("hand_short.mp4", "asl_hand_50.mp4")]


def engine(*args, env):
    """Runs `python -m engine ...`; returns (wall seconds, CPU seconds of the process and its reaped children)."""
    t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"engine {args[0]} failed: {proc.stderr.strip()[-2000:]}")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic() - t0, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def summary(out):
    with open(os.path.join(out, "batch_summary.jsonl")) as fh:
        return [json.loads(line) for line in fh]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--end", type=int, default=12, help="frames per clip (--end)")
    p.add_argument("--quality", default="draft")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for the local Ray (one worker each)")
    p.add_argument("--workers", default="2", help="batch runs to make, by worker count: e.g. 1,2 (default 2)")
    p.add_argument("--no-cluster", action="store_true", help="skip the 2-node cluster run")
    p.add_argument("--no-sequential", action="store_true", help="skip the sequential engine capture calls")
    a = p.parse_args()

    work = tempfile.mkdtemp(prefix="bench_batch_")
    env = dict(os.environ, HMP_CACHE_DIR=os.path.join(work, "cache"), OMP_NUM_THREADS="1",
               RAY_TMPDIR=tempfile.mkdtemp(prefix="rb", dir="/tmp"), PYTHONPATH=ROOT)
    clips = os.path.join(work, "clips")
    os.makedirs(clips)
    for k in range(a.clips):
        shutil.copy(SOURCES[k % 2], os.path.join(clips, f"clip{k}.mp4"))
    opts = ["--quality", a.quality, "--end", a.end, "--no-cache", "--progress", "quiet"]
    frames = a.clips * a.end
    load = os.getloadavg()
    print(f"{a.clips} clips x {a.end} frames, --quality {a.quality}, {os.cpu_count()} CPUs, "
          f"load average at start {load[0]:.1f}", file=sys.stderr, flush=True)

    # import cost a sequential call pays each time (a batch worker pays it once)
    imp = subprocess.run([sys.executable, "-c", "import time; t=time.monotonic(); import engine.capture, torch, "
                          "mediapipe, cv2, smplx; print(time.monotonic()-t)"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    import_s = float(imp.stdout.strip().splitlines()[-1])

    seq, seq_cpu = [], []
    for k in range(0 if a.no_sequential else a.clips):
        wall, cpu = engine("capture", os.path.join(clips, f"clip{k}.mp4"), "--out",
                           os.path.join(work, f"seq{k}.npz"), *opts, env=env)
        seq.append(wall)
        seq_cpu.append(cpu)
        print(f"  sequential clip {k}: {wall:.1f} s, {cpu:.1f} CPU s", file=sys.stderr, flush=True)
    seq_wall = sum(seq)

    rows, costs = [], []
    if seq:
        rows.append(("sequential `engine capture` calls", seq_wall))
        costs.append(("sequential `engine capture` calls", f"{seq_wall / a.clips:.1f}", f"{sum(seq_cpu) / a.clips:.1f}",
                      f"{import_s:.1f}", None, None))
    for n in [int(w) for w in a.workers.split(",")]:
        out = os.path.join(work, f"batch{n}")
        batch_wall, _ = engine("batch", clips, "--out", out, "--num-cpus", a.cpus, "--workers", n, *opts, env=env)
        recs = summary(out)
        workers = len({r["pid"] for r in recs})
        busy = sum(r["seconds"] for r in recs)
        startup = [r["startup_s"] for r in recs if r["startup_s"]]
        cpu = sum(r["cpu_s"] for r in recs) / len(recs)
        startup_cpu = sum(r["startup_cpu_s"] for r in recs) / max(1, len(startup))
        overhead = (batch_wall * workers - busy) / a.clips
        name = f"`engine batch`, local Ray, {workers} worker(s)"
        rows.append((name, batch_wall))
        costs.append((name, f"{busy / len(recs):.1f}", f"{cpu:.1f}", f"{sum(startup) / max(1, len(startup)):.1f}",
                      f"{startup_cpu:.1f}", f"{overhead:.1f}"))
        print(f"  {name}: {batch_wall:.1f} s", file=sys.stderr, flush=True)

    per = None
    if not a.no_cluster:
        from ray.cluster_utils import Cluster

        os.environ.update({k: env[k] for k in ("RAY_TMPDIR", "PYTHONPATH", "HMP_CACHE_DIR", "OMP_NUM_THREADS")})
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20,
                                                                "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
            cluster.wait_for_nodes()
            head = cluster.head_node.node_id
            out2 = os.path.join(work, "cluster")
            wall, _ = engine("batch", clips, "--out", out2, "--address", cluster.address, *opts, env=env)
        finally:
            cluster.shutdown()
        per = collections.defaultdict(lambda: [0, 0.0])
        for r in summary(out2):
            per[r["node"]][0] += 1
            per[r["node"]][1] += r["seconds"]
        rows.append(("`engine batch`, 2-node local cluster (1 CPU each)", wall))
        print(f"  2-node cluster: {wall:.1f} s", file=sys.stderr, flush=True)

    if seq:
        print_table("Sequential calls per clip", ["clip", "wall s", "CPU s"],
                    [[f"clip{k}", f"{w:.1f}", f"{c:.1f}"] for k, (w, c) in enumerate(zip(seq, seq_cpu))])
    print_table("Batch throughput against sequential calls",
                ["run", "wall s", "clips/hour", "frames/s", "vs sequential"],
                [[name, f"{wall:.1f}", f"{3600 * a.clips / wall:.0f}", f"{frames / wall:.2f}",
                  f"{seq_wall / wall:.2f}x" if seq else None] for name, wall in rows],
                f"{a.clips} clips x {a.end} frames, --quality {a.quality}, {os.cpu_count()} CPUs, "
                f"load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print_table("Cost per clip", ["run", "capture s per clip", "CPU s per clip", "start-up s", "start-up CPU s",
                                  "overhead s per clip"], costs,
                "sequential: a whole `engine capture` call per clip, start-up = importing the engine (torch, "
                "MediaPipe, OpenCV, smplx) in each new process; batch: capture inside a worker, start-up once "
                "per worker (imports + hand model, prior, MediaPipe loaded once), overhead (Ray start, start-up, "
                "dispatch, idle) = (wall x workers - capture time) / clips")
    if per is not None:
        print_table("2-node local cluster: clips per node", ["node", "node id", "clips", "capture s"],
                    [["head" if node == head else "worker", node[:8], n, f"{s:.1f}"]
                     for node, (n, s) in sorted(per.items(), key=lambda kv: kv[0] != head)],
                    "2 nodes of 1 CPU each, both on this machine")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)

if __name__ == "__main__":
    main()
