"""The benchmark runs behind the figures in the docs: what each runs, and where its output is kept.

``python tools/benchmark_tables.py --run`` runs them all (or ``--run NAME ...`` some), saves each
run's whole output as ``docs/runs/NAME.txt`` (``.md`` for the rendered benchmark's page), then
rewrites every table in the docs that is marked with that file as its source. ``{work}`` in a command
is a folder kept between runs (``--work``, default ``~/.cache/hmp-benchmarks``) where the rendered
benchmark keeps its renders: its first run renders the clips (Cycles, minutes), later runs reuse them
and fit again.

Each run's minutes are what it took on the development machine (2 CPU cores, no GPU, quiet) with the
renders and the detection cache of an earlier run: the whole suite takes about 20 minutes there (a
first run also renders the 7 clips, several minutes each). Speed figures are only worth reading from
a quiet machine.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    name: str  # docs/runs/{name}.txt (.md when ``page``)
    commands: tuple[tuple[str, ...], ...]  # each a command line after the Python interpreter
    about: str  # what it measures, one line
    minutes: float  # about, on the development machine
    page: bool = False  # the command writes its own markdown page to {out} (else its stdout is kept)


RUNS = (
    Run("rendered", (("-m", "engine", "benchmark", "--quality", "draft", "--workdir", "{work}/rendered",
                      "--out", "{out}"),),
        "accuracy against rendered ground truth: held-out motion, a hand that is not the model", 1.5, page=True),
    Run("orientation", (("benchmarks/bench_orientation.py", "{work}/rendered"),),
        "the rendered benchmark's root-aligned error split into tilt, turn and the rest", 0.1),
    Run("real", (("benchmarks/bench_real.py",),),
        "real footage at the default quality: distance to the detections, jitter", 1.0),
    Run("real_draft", (("benchmarks/bench_real.py", "--quality", "draft"),),
        "real footage at draft quality (as the rendered benchmark)", 0.5),
    Run("fingers", (("benchmarks/bench_fingers.py",),),
        "held poses on real footage: finger states against MediaPipe's 3D landmarks", 1.0),
    Run("tradeoff", (("benchmarks/bench_tradeoff.py", "--quality", "draft"),),
        "stage II's weights: distance to the detections against jitter", 2.0),
    Run("capture", (("benchmarks/bench_capture.py", "--base", "bf33a72", "--rounds", "2", "--threads", "1",
                     "--configs", "one:balanced,one:draft,two:balanced"),),
        "whole-capture speed against bf33a72 (before issue 22), in the same run", 5.5),
    Run("live", (("benchmarks/bench_live.py",),),
        "live capture from a clip played as a camera: poses per second, latency", 1.0),
    Run("memory", (("benchmarks/bench_memory.py",),),
        "peak memory by clip length", 2.0),
    Run("keypoints", (("benchmarks/bench_keypoints.py",),),
        "the keypoint front end: frames kept per clip, detection speed", 1.5),
    Run("ik", (("benchmarks/bench_ik.py",),),
        "the per-frame inverse kinematics: speed and error on its own keypoints", 0.2),
    Run("prior", (("benchmarks/bench_prior.py",),),
        "the motion prior: reconstruction of held-out motion, speed", 0.1),
    Run("bake", (("benchmarks/bench_bake.py",),),
        "baking keyframes into Blender: foreach_set against keyframe_insert", 0.5),
    Run("fit", (("benchmarks/bench_fit.py",),),
        "the fit on held-out motion projected to a camera, per stage", 0.3),
    Run("batch", (("benchmarks/bench_batch.py", "--clips", "8", "--end", "8", "--workers", "1,2"),),
        "engine batch on Ray against sequential captures", 2.0),
)
BY_NAME = {run.name: run for run in RUNS}
