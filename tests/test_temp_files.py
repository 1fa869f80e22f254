"""Temporary files of an interrupted write (issue 12, item 20): a SIGTERM during the result write removes its
temporary file; one left by a SIGKILL is removed by the next run (its writer no longer runs); native stderr
chatter is filtered."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.commands import cli
from engine.contract import result as R
from engine.util import atomic
from tests.addon_support import make_result

ROOT = Path(__file__).resolve().parents[1]

# writes a valid result of 60,000 noisy frames (a few seconds of compression) under terminate_cleanly(), as
# the engine's capture command does
WRITER = """
import sys
import numpy as np
from engine.commands import cli
from engine.contract import result as R
from tests.addon_support import make_result

T = 60000
arrays = make_result(sys.argv[1] + '/seed.npz', T=6)
rng = np.random.default_rng(0)
for key, value in list(arrays.items()):
    if key == 'frame_ids':
        arrays[key] = np.arange(T)
    elif '/' in key and value.ndim and value.shape[0] == 6 and not key.endswith(('betas', 'rest_joints')):
        arrays[key] = np.repeat(value, T // 6, axis=0)
arrays['right/joints'] = arrays['right/joints'] + rng.normal(0, 1e-3, arrays['right/joints'].shape)
arrays['right/hand_pose'] = arrays['right/hand_pose'] + rng.normal(0, 1e-3, arrays['right/hand_pose'].shape)
print('writing', flush=True)
with cli.terminate_cleanly():
    try:
        R.write(sys.argv[1] + '/r.npz', arrays)
    except cli.Terminated:
        sys.exit(143)
print('written', flush=True)
"""


def start_writer(folder):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def temps(folder):
    return sorted(p.name for p in Path(folder).glob(R.TEMP_PREFIX + "*"))


def kill_while_writing(folder, sig):
    proc = start_writer(folder)
    assert proc.stdout.readline().strip() == "writing", proc.communicate()
    deadline = time.monotonic() + 120
    while not temps(folder):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the writer never started its temporary file: {proc.communicate()}")
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return proc


def test_sigterm_during_the_result_write_leaves_nothing(tmp_path):
    proc = kill_while_writing(tmp_path, signal.SIGTERM)
    assert proc.returncode == 143
    assert temps(tmp_path) == [] and not (tmp_path / "r.npz").exists()


def test_a_sigkilled_write_is_cleaned_up_by_the_next_run(tmp_path):
    proc = kill_while_writing(tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    left = temps(tmp_path)
    assert len(left) == 1 and f".{proc.pid}." in left[0]  # the writer's pid is in the name
    # a temporary file of a writer that still runs is kept; one of another host is kept for a day
    alive = tmp_path / f"{R.TEMP_PREFIX}{atomic._host()}.{os.getpid()}.x.npz"
    other_host = tmp_path / f"{R.TEMP_PREFIX}elsewhere.{proc.pid}.x.npz"
    ancient = tmp_path / f"{R.TEMP_PREFIX}abcdefgh.npz"  # the older naming, two days old
    for p in (alive, other_host, ancient):
        p.write_bytes(b"partial")
    os.utime(ancient, (time.time() - 2 * 86400,) * 2)
    # the next run: a capture removes them as soon as its output is known (here it then fails on --device)
    from tests.test_cli import CLIP, run_main

    proc2 = run_main("capture", CLIP, "--out", tmp_path / "next.npz", "--device", "tpu")
    assert proc2.returncode == 2
    assert temps(tmp_path) == sorted([alive.name, other_host.name])
    # and a result write does the same
    os.unlink(alive)
    make_result(tmp_path / "another.npz", T=4)
    assert temps(tmp_path) == [other_host.name] and R.read(tmp_path / "another.npz").num_frames == 4


def test_a_killed_cache_save_is_cleaned_up_by_the_next_lookup(tmp_path, monkeypatch):
    from engine.keypoints import cache

    monkeypatch.setenv("HMP_CACHE_DIR", str(tmp_path))
    cache.cache_dir().mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = cache.cache_dir() / f".tmp-{atomic._host()}.{int(dead.stdout)}.x.npz"
    left.write_bytes(b"partial")
    assert cache.load("0" * 32) is None
    assert not left.exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # numpy leaves its zip to the GC
def test_a_failing_cache_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    from engine.keypoints import HandTrack, cache

    monkeypatch.setenv("HMP_CACHE_DIR", str(tmp_path))
    tracks = {side: HandTrack.empty(np.arange(3)) for side in ("right", "left")}
    tracks["left"].handedness = np.array([lambda: 0] * 3, dtype=object)  # cannot be pickled: fails mid-write
    with pytest.raises(Exception, match="pickle|local object"):  # Python 3.13 words it "Can't get local object"
        cache.save("1" * 32, tracks)
    assert sorted(p.name for p in cache.cache_dir().iterdir()) == []
    assert atomic._OWN == set()
    cache.save("1" * 32, {side: HandTrack.empty(np.arange(3)) for side in ("right", "left")})
    assert sorted(p.name for p in cache.cache_dir().iterdir()) == ["1" * 32 + ".npz"]
    assert cache.load("1" * 32)["right"].frame_ids.tolist() == [0, 1, 2]


def test_atomic_path_publishes_whole_files_only(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target, ".t-", ".txt") as tmp:
            Path(tmp).write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic.atomic_path(target, ".t-", ".txt") as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(f".t-{atomic._host()}.{os.getpid()}.")
        Path(tmp).write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert target.stat().st_mode & 0o777 == atomic.default_mode()


def test_own_temporary_files_are_removed_at_exit(tmp_path):
    code = ("import sys; from engine.util import atomic; fd, p = atomic.temp_file(sys.argv[1], '.hmp-result-', '.npz');"
            "print(p, flush=True); raise SystemExit(5)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 5 and proc.stdout.strip().startswith(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_native_stderr_chatter_is_filtered(capfd):
    lines = [b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
             b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
             b"W0000 00:00:1764412345.123456   12345 inference_feedback_manager.cc:114] Feedback manager requires "
             b"a model with a single signature inference. Disabling support for feedback tensors.\n",
             b"I0000 00:00:1764412345.123456   12345 gl_context.cc:369] GL version: 3.2\n"]
    kept = [b"E0000 00:00:1764412345.123456   12345 calculator_graph.cc:887] a real native error\n",
            b"[h264 @ 0x55d5] error while decoding MB 3 4\n"]
    with cli.filter_native_stderr():
        os.write(2, lines[0] + kept[0])
        writer = threading.Thread(target=lambda: [os.write(2, line) for line in lines[1:] + kept[1:]])
        writer.start()  # native code writes from its own threads
        writer.join()
        print("python's own line", file=sys.stderr)
    err = capfd.readouterr().err
    assert "TensorFlow Lite" not in err and "absl" not in err and "Feedback manager" not in err and "GL version" not in err
    assert "a real native error" in err and "error while decoding MB" in err and "python's own line" in err
    os.write(2, b"after\n")  # fd 2 is restored
    assert capfd.readouterr().err == "after\n"
