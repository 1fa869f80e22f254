"""Set Up Engine for real, from a Python 3.13 and from a Python 3.11 (Blender 5.2's and 4.2's):
the extension zip, built here, is installed into a throwaway Blender user folder; its preferences
point at a wheel folder of the real requirements.txt and at that base Python; **Set Up Engine** makes
the engine's environment from the folder, offline (pip --no-index), in the extension's user folder;
**Check Engine** reports it OK; a short draft capture of tests/data/hand_short.mp4 runs the installed
extension's engine in it and bakes the hand.

The wheel folder is ``pip download -r requirements.txt`` by the base Python's own pip (its version
and platform: on Linux, PyPI's torch for 3.13 is the CUDA build, ~3 GB), kept in
.cache/engine-wheels/ under the requirements' hash so that a re-run downloads nothing. Each
environment is removed after its test (the 3.13 one is ~6.6 GB). A base Python missing from this
machine (PATH or pyenv, found as scripts/setup.sh finds them) skips its test, saying which.

Not a test_addon_ file on purpose: scripts/test.sh runs those again under bpy 4.2, which would set
both environments up a second time; the add-on's set-up code under bpy 4.2 is covered by
tests/test_addon_setup.py (wheels made in the test).
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT / "tests" / "data" / "hand_short.mp4"  # a right hand, palm to the camera, 60 frames
FRAMES = 8  # captured: video frames 0..7
BPY = importlib.util.find_spec("bpy")  # found, not imported: Blender runs in the subprocess

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BPY is None, reason="no bpy for this Python (3.12)")]


def find_python(version):
    """A Python ``version`` ("3.13") found as scripts/setup.sh finds one (PATH, pyenv), or None."""
    proc = subprocess.run(["bash", "-c", '. scripts/pythons.sh && find_python "$1"', "find_python", version],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or None


def wheel_folder(base, version):
    """.cache/engine-wheels/py{version}-{hash}/: requirements.txt's packages for ``base``, downloaded
    by its own pip once per requirements.txt (older hashes' folders of that version are removed)."""
    digest = hashlib.sha1((ROOT / "requirements.txt").read_bytes()).hexdigest()[:12]
    cache = ROOT / ".cache" / "engine-wheels"
    folder = cache / f"py{version}-{digest}"
    if not folder.is_dir():
        partial = cache / f"py{version}-{digest}.partial"  # a download cut short goes on here: pip keeps what it has
        proc = subprocess.run([base, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
                               "-r", str(ROOT / "requirements.txt"), "-d", str(partial)],
                              capture_output=True, text=True, timeout=3600)
        assert proc.returncode == 0, f"pip download with {base} failed:\n{proc.stderr[-3000:]}"
        partial.rename(folder)
    for old in cache.glob(f"py{version}-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    """The extension zip, built by the extension tool of this environment's bpy."""
    tools = sorted(Path(BPY.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert len(tools) == 1, tools
    out = tmp_path_factory.mktemp("ext") / "hmp_hand_capture.zip"
    proc = subprocess.run([sys.executable, str(tools[0]), "build", "--source-dir", str(ROOT), "--output-filepath",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "engine/assets/mediapipe/hand_landmarker.task" in zipfile.ZipFile(out).namelist()
    return out


# Runs in Blender (bpy) with a throwaway user folder: install, set up, check, capture; one JSON line out
SCRIPT = textwrap.dedent("""
    import json, sys, time
    import bpy
    zip_path, wheels, base, video, frames = sys.argv[1:6]
    name = "bl_ext.user_default.hmp_hand_capture"
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[name].preferences
    prefs.setup_wheels, prefs.setup_base_python = wheels, base
    state = bpy.context.window_manager.hmp_state
    addon = lambda module: sys.modules[name + "." + module]
    out = {}

    def run(step, operator, **kw):
        t0 = time.monotonic()
        try:
            out[step] = sorted(operator(**kw))
        except RuntimeError as exc:  # the operator reported an error
            out[step] = str(exc)
        out[step + "_s"] = round(time.monotonic() - t0, 1)

    run("setup", bpy.ops.hmp.setup_engine, wait=True)
    setup = addon("hmp_addon.setup_ui")._SETUP
    out.update(commands=setup.commands, log=setup.lines[-20:], venv=str(setup.venv_dir),
               engine_python=prefs.engine_python, setup_status=state.engine_status)
    state.engine_ok, state.engine_status = False, ""
    run("check", bpy.ops.hmp.check_engine)
    out["check_status"] = state.engine_status
    s = bpy.context.scene.hmp_capture
    s.video, s.use_range, s.range_start, s.range_end = video, True, 0, int(frames)
    s.quality, s.device = "draft", "cpu"
    run("capture", bpy.ops.hmp.capture)
    job = addon("hmp_addon.jobs").current()
    out["job"] = [job.state, job.error or ""]
    if job.state == "done":  # read here: the result lives in Blender's session temp folder
        res = addon("engine.contract.result").read(job.result_path)
        out["frame_ids"] = [int(f) for f in res["frame_ids"]]
        out["valid"] = int(res.hands["right"]["valid"].sum())
        action = bpy.data.objects["hand_short_right_hand"].animation_data.action
        out["keys"] = sorted(set(addon("hmp_addon.bake").count_keys(action).values()))
    print("SETUP-RESULT " + json.dumps(out), flush=True)
""")

PINS = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line.split("#")[0])


@pytest.mark.parametrize("version", ["3.13", "3.11"])
def test_set_up_engine_offline_then_check_and_capture(version, built_zip, tmp_path):
    base = find_python(version)
    if base is None:
        pytest.skip(f"no Python {version} on this machine (python{version} on PATH, or in pyenv's versions)")
    wheels = wheel_folder(base, version)
    user = tmp_path / "user"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), HMP_CACHE_DIR=str(tmp_path / "cache"))  # detect afresh
    for key in ("PYTHONPATH", "HMP_ENGINE_PYTHON"):
        env.pop(key, None)
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(built_zip), str(wheels), base, str(VIDEO), str(FRAMES)],
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=3600)
        found = [line for line in proc.stdout.splitlines() if line.startswith("SETUP-RESULT ")]
        assert found, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = json.loads(found[-1].split(" ", 1)[1])
        size = sum(f.stat().st_size for f in Path(out["venv"]).rglob("*") if f.is_file() and not f.is_symlink())
        print(f"Python {version} ({base}): set-up {out['setup_s']} s, check {out['check_s']} s, "
              f"capture {out['capture_s']} s; the environment {size / 1e9:.2f} GB")  # seen with -s
        assert out["setup"] == ["FINISHED"], "\n".join(out["log"])
        install = out["commands"][-2]
        assert install[install.index("--find-links") + 1] == str(wheels) and "--no-index" in install  # offline
        assert out["commands"][0][0] == base  # the preference's base Python made the environment
        # the environment is in the extension's user folder, and Engine Python now points at it
        assert out["engine_python"] == os.path.join(out["venv"], "bin", "python") and out["venv"].startswith(str(user))
        assert out["setup_status"].startswith("Engine OK: hmp-hand-capture engine"), out["setup_status"]
        assert f"(Python {version}." in out["setup_status"], out["setup_status"]
        assert out["check"] == ["FINISHED"] and out["check_status"] == out["setup_status"]
        assert out["capture"] == ["FINISHED"] and out["job"] == ["done", ""], out["job"]
        assert out["frame_ids"] == list(range(FRAMES)) and out["valid"] > FRAMES // 2
        assert out["keys"] == [out["valid"]]  # a key per channel at every frame the hand was found
        # the environment holds requirements.txt's pins (torch may carry a local label: +cpu)
        listed = subprocess.run([out["engine_python"], "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                                capture_output=True, text=True, timeout=300)
        have = {p["name"].lower().replace("_", "-"): p["version"].split("+")[0] for p in json.loads(listed.stdout)}
        assert {dist: have.get(dist) for dist in PINS} == PINS
    finally:
        shutil.rmtree(user, ignore_errors=True)  # the engine environment: GBs
