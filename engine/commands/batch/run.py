"""The driver: start or join Ray, make the worker actors, hand each idle one the next clip, record
each clip as it finishes, retry a clip whose worker died."""

import argparse
import logging
import os
import signal
import threading
from collections import deque
from types import ModuleType

from engine.util.errors import EngineError

from .clips import base_options, clip_options, collect_clips, options_hash, preview_path, result_path
from .progress import BatchReporter
from .stop import POLL_S, check_stop
from .summary import Summary, clip_record, finished_result, sweep_temporaries
from .worker import ClipWorker

RAY_VERSION = "2.60.0"  # the version requirements-dev.txt pins (and the tests run)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the checkout


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise EngineError(f"the batch command needs Ray, which is not installed: pip install ray=={RAY_VERSION}") \
            from None
    return ray


def start_ray(ray: ModuleType, args: argparse.Namespace) -> bool:
    """Start Ray here or join ``--address``; False when the caller had connected it already (then
    this batch does not shut it down)."""
    if ray.is_initialized():  # a caller (a test, a notebook) already connected us: use that
        return False
    term = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        _init_ray(ray, args)
    finally:
        if term is not None:  # ray.init sets a SIGTERM handler that exits at once, skipping the clean-up
            signal.signal(signal.SIGTERM, term)
    return True


def _init_ray(ray: ModuleType, args: argparse.Namespace) -> None:
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


def worker_count(ray: ModuleType, args: argparse.Namespace, todo: int) -> int:
    """Worker actors to start: what the cluster's CPUs and GPUs allow per clip, at most ``todo`` and
    ``--workers``; EngineError when not even one clip fits."""
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 0) // args.cpus_per_clip)
    if args.gpus_per_clip > 0:
        slots = min(slots, int(resources.get("GPU", 0) // args.gpus_per_clip))
    if slots < 1:
        raise EngineError(f"the Ray cluster has {resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} "
                          f"GPU(s): not enough for one clip with --cpus-per-clip {args.cpus_per_clip:g} "
                          f"--gpus-per-clip {args.gpus_per_clip:g}")
    return max(1, min(slots, todo, args.workers or slots))


def run_batch(args: argparse.Namespace, reporter: BatchReporter) -> dict[str, int]:
    """The whole batch: clips collected, finished ones skipped (--resume), the rest dispatched to the
    workers; -> counts {clips, ok, skipped, failed}."""
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
            record = clip_record(clip, out_dir, digest, status="skipped", frames=frames, hands=hands, seconds=0.0,
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


def _dispatch(ray, actors, new_actor, jobs, out_dir, args, summary, reporter, counts):
    """Give each idle actor the next clip; record each clip as it finishes; when a worker died, put a
    new actor in its place and run its clip again, up to --retries times."""
    from ray.exceptions import RayError, RayTaskError

    queue, idle, running, attempts = deque(jobs), list(actors), {}, {}
    while queue or running:
        check_stop()
        while queue and idle:
            actor = idle.pop(0)
            clip, options, digest = job = queue.popleft()
            attempts[clip.name] = attempts.get(clip.name, 0) + 1
            ref = actor.capture.remote(clip.video, result_path(out_dir, clip), options)
            running[ref] = (job, actor)
            reporter.clip_event(clip.name, "running", f"started (attempt {attempts[clip.name]})",
                                attempt=attempts[clip.name])
        ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
        check_stop()
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
            record = clip_record(clip, out_dir, digest, preview=args.preview, status=out["status"], frames=out["frames"],
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
