"""`python -m engine batch` on real Ray (this machine's, and a two-node cluster on it) with real
captures of the repository's clips.

The batch runs as a subprocess, as a user runs it: on this machine's own Ray (``ray_env``: its own
RAY_TMPDIR; afterwards no process of that Ray may be left), or joining a two-node cluster started
once for the file (``cluster_env``: afterwards none of the batch's workers may be left on it).
Clips are trimmed (--end) and captured with --quality draft --stages 0 (detection + per-frame
estimate) to keep the file fast on 2 cores: the batch's behaviour does not depend on the fitting
stages.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from engine.commands import batch
from engine.contract import result as R
from engine.contract.progress import parse_line
from engine.util.errors import EngineError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
SHORT = os.path.join(DATA, "hand_short.mp4")
ASL = os.path.join(DATA, "asl_hand_50.mp4")
FAST = ["--quality", "draft", "--stages", "0", "--num-cpus", "2", "--progress", "jsonl"]

ray = pytest.importorskip("ray", reason="the batch tests need Ray: pip install -r requirements-dev.txt")


# ------------------------------------------------------------------------------------------- helpers
def _ray_processes(tmpdir):
    """PIDs of processes whose environment or command line names this test's Ray temp dir."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if f"RAY_TMPDIR={tmpdir}".encode() in env.split(b"\0") or tmpdir.encode() in cmd:
            found.append(int(pid))
    return found


def _wait_until_gone(find, seconds=30):
    """``find()`` (PIDs) once it is empty, or what it still finds after ``seconds``."""
    deadline = time.monotonic() + seconds
    while find() and time.monotonic() < deadline:
        time.sleep(0.5)
    return find()


def _no_ray_left(tmpdir):
    """Fail when a process of the Ray that used ``tmpdir`` outlives it (killed first, for the next test)."""
    left = _wait_until_gone(lambda: _ray_processes(tmpdir))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(tmpdir, ignore_errors=True)
    assert not left, f"Ray processes left behind: {left}"


@pytest.fixture
def ray_env(tmp_path):
    """Environment for a batch subprocess: its own Ray temp dir (short: Ray's socket paths) and
    detection cache; after the test, no process of that Ray may remain."""
    tmpdir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=tmpdir, HMP_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT)
    yield env
    _no_ray_left(tmpdir)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray cluster of two nodes of one CPU each on this machine, started once for this file; its
    workers import the engine from this checkout. After the file no process of it may remain."""
    from ray.cluster_utils import Cluster

    tmpdir = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    env = {"RAY_TMPDIR": tmpdir, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1",
           "HMP_CACHE_DIR": str(tmp_path_factory.mktemp("cluster-cache"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():  # the nodes (and so their workers) inherit this environment
            mp.setenv(key, value)
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20,
                                                              "include_dashboard": False})
        try:
            nodes.add_node(num_cpus=1, object_store_memory=80 * 2**20)
            nodes.wait_for_nodes()
            yield nodes, dict(os.environ)
        finally:
            nodes.shutdown()
    _no_ray_left(tmpdir)


@pytest.fixture
def cluster_env(cluster):
    """(cluster, environment) for a batch that joins the shared cluster with --address; after the test
    no worker of the batch (an actor, owned by the batch's driver) may be left on the cluster."""
    nodes, env = cluster
    yield nodes, env
    assert not _wait_until_gone(lambda: _clip_workers(env["RAY_TMPDIR"])), "the batch's workers outlived it"


def joined(nodes):
    """The fast capture options, joining ``nodes`` (a cluster's CPUs are its own: no --num-cpus)."""
    return ["--address", nodes.address, *[a for a in FAST if a not in ("--num-cpus", "2")]]


def run_batch(env, *args, timeout=900):  # a guard against a hung batch, not a timing
    proc = subprocess.run([sys.executable, "-m", "engine", "batch", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    events = [parse_line(line) for line in proc.stdout.splitlines()]  # stdout holds protocol lines only
    return proc, events


def summary(out):
    with open(os.path.join(out, batch.SUMMARY_CSV), newline="") as fh:
        return {row["clip"]: row for row in csv.DictReader(fh)}


def jsonl(out):
    with open(os.path.join(out, batch.SUMMARY_JSONL)) as fh:
        return [json.loads(line) for line in fh]


# ------------------------------------------------------------------------------------------- no Ray
def test_inputs_folders_lists_and_relative_names(tmp_path):
    for rel in ("shoot/a/take1.mp4", "shoot/b/take1.mp4", "shoot/b/deep/take2.MOV", "shoot/notes.txt.bak"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    top = batch.collect_clips([str(tmp_path / "shoot" / "b")])
    assert [c.name for c in top] == ["take1"]
    clips = batch.collect_clips([str(tmp_path / "shoot")], recursive=True)
    assert [c.name for c in clips] == ["a/take1", "b/deep/take2", "b/take1"]
    assert len({batch.result_path("/o", c) for c in clips}) == 3

    (tmp_path / "list.csv").write_text('video,hands,start,end,intrinsics\n'
                                       'shoot/a/take1.mp4,left,2,9,"900,900,320,180"\n'
                                       'shoot/b/take1.mp4,,,,\n')
    listed = batch.collect_clips([str(tmp_path / "list.csv")])
    assert [c.name for c in listed] == ["a/take1", "b/take1"]
    assert listed[0].overrides == {"hands": "left", "start": 2, "end": 9, "K": [900.0, 900.0, 320.0, 180.0]}
    assert listed[1].overrides == {}
    base = batch.base_options(batch.parse_args(["x.mp4", "--out", "o", "--fov", "70", "--quality", "draft"]))
    opts = batch.clip_options(base, listed[0])
    assert (opts.hands, opts.start, opts.end, opts.fov, opts.quality) == ("left", 2, 9, None, "draft")
    assert batch.options_hash(opts, listed[0].video) != batch.options_hash(base, listed[0].video)

    (tmp_path / "list.txt").write_text("# takes\nshoot/a/take1.mp4\n\nshoot/b/deep/take2.MOV\n")
    assert [c.name for c in batch.collect_clips([str(tmp_path / "list.txt")])] == ["a/take1", "b/deep/take2"]

    (tmp_path / "bad.csv").write_text("video,hands\nshoot/a/take1.mp4,middle\n")
    with pytest.raises(EngineError, match=r"bad.csv:2: hands must be right, left or both"):
        batch.collect_clips([str(tmp_path / "bad.csv")])
    (tmp_path / "nohead.csv").write_text("shoot/a/take1.mp4,left\n")
    with pytest.raises(EngineError, match="header row with a 'video' column"):
        batch.collect_clips([str(tmp_path / "nohead.csv")])
    with pytest.raises(EngineError, match="use --recursive"):
        batch.collect_clips([str(tmp_path / "shoot")])
    with pytest.raises(EngineError, match="input not found"):
        batch.collect_clips([str(tmp_path / "nope.mp4")])
    with pytest.raises(EngineError, match="not available in batch"):
        batch.parse_args(["x.mp4", "--out", "o", "--keypoints", "k.json"])


def test_ray_missing_is_one_line_with_the_install_command(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from engine.commands.cli import main; "
            f"sys.exit(main(['batch', {SHORT!r}, '--out', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: the batch command needs Ray, which is not installed: "
                                   f"pip install ray=={batch.RAY_VERSION}")
    with open(os.path.join(ROOT, "requirements-dev.txt")) as fh:
        assert f"ray=={batch.RAY_VERSION}" in fh.read()  # the message names the version the tests run


# ------------------------------------------------------------------------------------------- real Ray
def test_bad_clip_is_recorded_and_the_batch_goes_on(tmp_path, cluster_env):
    nodes, env = cluster_env
    (tmp_path / "in" / "bad").mkdir(parents=True)
    short, asl = shutil.copy(SHORT, tmp_path / "in"), shutil.copy(ASL, tmp_path / "in")
    broken = tmp_path / "in" / "bad" / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    proc, events = run_batch(env, short, asl, broken, "--out", out, "--end", "4", "--preview", *joined(nodes))
    assert proc.returncode == 2, proc.stderr
    assert "1 of 3 clips failed" in proc.stderr and "Traceback" not in proc.stderr
    rows = summary(out)
    assert set(rows) == {"hand_short", "asl_hand_50", "bad/broken"}
    for name in ("hand_short", "asl_hand_50"):
        assert rows[name]["status"] == "ok" and rows[name]["hands"] == "right" and rows[name]["frames"] == "4"
        assert R.read(out / f"{name}.npz").num_frames == 4
        assert (out / f"{name}.preview.mp4").stat().st_size > 0
    assert rows["bad/broken"]["status"] == "error" and "not a video file" in rows["bad/broken"]["error"]
    assert not (out / "bad" / "broken.npz").exists()
    # progress: every clip event names its clip; the overall progress reaches 3 of 3; done is last
    clip_events = [e for e in events if e["event"] == "log"]
    assert {e["clip"] for e in clip_events} == set(rows)
    assert [e["done"] for e in events if e["event"] == "progress"] == [0, 1, 2, 3]
    assert events[-1]["event"] == "done" and (events[-1]["ok"], events[-1]["failed"]) == (2, 1)
    assert all(len(r["options_hash"]) == 16 for r in jsonl(out))


def test_a_cluster_spreads_the_clips_same_names_stay_apart_and_resume_runs_nothing(tmp_path, cluster_env):
    nodes, env = cluster_env
    for sub in ("day1", "day2"):
        (tmp_path / "shoot" / sub).mkdir(parents=True)
        shutil.copy(SHORT if sub == "day1" else ASL, tmp_path / "shoot" / sub / "take.mp4")
    out = tmp_path / "out"
    proc, _ = run_batch(env, tmp_path / "shoot", "--recursive", "--out", out, "--end", "3", *joined(nodes))
    assert proc.returncode == 0, proc.stderr
    rows = summary(out)
    assert {r["status"] for r in rows.values()} == {"ok"} and len(rows) == 2
    used = {r["node"] for r in rows.values()}  # one worker per 1-CPU node: both nodes captured a clip
    assert len(used) == 2, used
    if hasattr(nodes, "list_all_nodes"):
        assert used == {n.node_id for n in nodes.list_all_nodes()}
    a, b = R.read(out / "day1" / "take.npz"), R.read(out / "day2" / "take.npz")
    assert str(a["video"]).endswith("day1/take.mp4") and str(b["video"]).endswith("day2/take.mp4")
    assert tuple(a["image_size"]) != tuple(b["image_size"])  # two different clips, both kept
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}

    proc, events = run_batch(env, tmp_path / "shoot", "--recursive", "--out", out, "--end", "3", "--resume",
                             *joined(nodes))
    assert proc.returncode == 0, proc.stderr
    assert {e["status"] for e in events if e["event"] == "log"} == {"skipped"}  # nothing ran
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == mtimes
    assert {r["status"] for r in summary(out).values()} == {"skipped"}

    # what --resume decides, on these files: current with the same options, not with others
    args = batch.parse_args([str(tmp_path / "shoot"), "--recursive", "--out", str(out), "--end", "3",
                             "--quality", "draft", "--stages", "0"])
    clips = batch.collect_clips(args.inputs, args.recursive)
    record = batch.Summary(str(out), resume=True)
    for end, current in ((3, True), (2, False)):
        options = batch.clip_options(batch.base_options(args), clips[1])
        options.end = end
        found = batch.finished_result(str(out), clips[1], batch.options_hash(options, clips[1].video), record)
        assert (found == (3, ["right"])) if current else found is None


def _clip_workers(tmpdir, title=b"ray::ClipWorker"):
    """PIDs of this Ray's worker processes whose title starts with ``title`` (the batch's actors)."""
    found = []
    for pid in _ray_processes(tmpdir):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read().startswith(title):
                    found.append(pid)
        except OSError:
            pass
    return found


def _capturing_worker(tmpdir):
    return next(iter(_clip_workers(tmpdir, b"ray::ClipWorker.capture")), None)


def test_killed_worker_is_retried(tmp_path, cluster_env):
    nodes, env = cluster_env
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "batch", ASL, "--out", str(out), "--end", "20",
                             "--retries", "1", "--no-cache", *joined(nodes)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, victim = time.monotonic() + 120, None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            victim = _capturing_worker(env["RAY_TMPDIR"])
            time.sleep(0.2)
        assert victim is not None, "no worker was seen capturing the clip"
        time.sleep(0.2)  # mid-clip: a 20-frame draft clip takes over a second on an idle machine
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    events = [parse_line(line) for line in stdout.splitlines()]
    assert [e["status"] for e in events if e["event"] == "log"] == ["running", "retry", "running", "ok"]
    row = summary(out)["asl_hand_50"]
    assert (row["status"], row["attempts"], row["frames"]) == ("ok", "2", "20")
    assert not [p for p in out.rglob("*") if p.name.startswith(".hmp-")]  # the killed capture left nothing


@pytest.mark.parametrize("signame, where", [("SIGINT", "this machine's Ray"), ("SIGTERM", "a cluster")])
def test_ctrl_c_or_sigterm_stops_cleanly_keeping_only_finished_results(tmp_path, request, signame, where):
    """Ctrl-C on this machine's own Ray; SIGTERM (what `kill` and job schedulers send) joined to a
    cluster. ray.init sets a SIGTERM handler that exits at once: the batch used to die with exit code
    15, a native stack dump and no clean-up."""
    if where == "a cluster":
        nodes, env = request.getfixturevalue("cluster_env")
        options = joined(nodes)
    else:
        env, options = request.getfixturevalue("ray_env"), FAST
    out = tmp_path / "out"
    clips = []
    for k in range(8):  # one worker and eight clips: the interrupt always lands with clips still to do
        clips.append(tmp_path / "in" / f"clip{k}.mp4")
        clips[-1].parent.mkdir(exist_ok=True)
        shutil.copy(SHORT if k % 2 else ASL, clips[-1])
    proc = subprocess.Popen([sys.executable, "-m", "engine", "batch", *map(str, clips), "--out", str(out),
                             "--end", "12", "--workers", "1", *options], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # interrupt as soon as the first clip is done (its "ok" event): seven are still to do on the one
        # worker, however fast this machine is (a process-title poll could miss a short clip entirely)
        seen = []
        for line in proc.stdout:
            seen.append(line)
            event = parse_line(line)
            if event.get("event") == "log" and event.get("status") == "ok":
                break
        proc.send_signal(getattr(signal, signame))
        rest, stderr = proc.communicate(timeout=120)
        stdout = "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    events = [parse_line(line) for line in stdout.splitlines()]
    assert events[-1]["event"] == "error" and "interrupted" in events[-1]["message"]
    finished = {e["clip"] for e in events if e["event"] == "log" and e["status"] == "ok"}
    assert 1 <= len(finished) < len(clips)
    assert {p.stem for p in out.glob("*.npz")} == finished  # only finished results, each valid
    for p in out.glob("*.npz"):
        R.read(p)
    assert not [p for p in out.rglob("*") if p.name.startswith(".hmp-")]


# ------------------------------------------------------------------------------------------- Blender
@pytest.mark.parametrize("one_rig", [False, True])
def test_headless_batch_bakes_one_action_per_clip(tmp_path, one_rig):
    bpy = pytest.importorskip("bpy")
    from addon_support import make_result

    from hmp_addon import bake

    out = tmp_path / "batch"
    for name, T in (("day1/take", 6), ("day2/take", 9)):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        make_result(out / f"{name}.npz", T=T, seed=T, mesh=False)
    make_result(out / "old.npz", T=4, mesh=False)  # a result the summary says is not current
    records = [{"clip": "day1/take", "status": "ok", "result": "day1/take.npz"},
               {"clip": "old", "status": "ok", "result": "old.npz"},
               {"clip": "day2/take", "status": "skipped", "result": "day2/take.npz"},
               {"clip": "broken", "status": "error", "result": ""},
               {"clip": "old", "status": "failed", "result": ""}]
    (out / batch.SUMMARY_JSONL).write_text("".join(json.dumps(r) + "\n" for r in records))
    blend = tmp_path / "all.blend"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script finds the repository itself
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "headless_batch.py"), "--results", out,
                           "--save", blend, "--no-camera", *(["--one-rig"] if one_rig else [])],
                          cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 clips, 2 Actions" in proc.stdout
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    actions = {a.name: a for a in bpy.data.actions}
    assert set(actions) == {"day1/take_right_hand", "day2/take_right_hand"}
    assert set(bake.count_keys(actions["day1/take_right_hand"]).values()) == {6}
    assert set(bake.count_keys(actions["day2/take_right_hand"]).values()) == {9}
    rigs = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(rigs) == (1 if one_rig else 2)


def test_headless_batch_without_results_exits_2(tmp_path):
    pytest.importorskip("bpy")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "headless_batch.py"), "--results",
                           tmp_path, "--save", tmp_path / "x.blend"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: no finished clip results in {tmp_path}"
    assert not (tmp_path / "x.blend").exists()
