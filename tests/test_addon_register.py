"""The extension registers for real in bpy (5.2.3, and 4.2.23 under Python 3.11), its operators poll with
the capture state, its panel draws, its settings resolve, Python exits cleanly after it, and the zip
builds/installs."""

import os
import subprocess
import sys
import textwrap
import zipfile

import bpy
import pytest

import hmp_addon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the extension tool shipped with the bpy wheel (same code as `blender --command extension`)
BLENDER_EXT = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")


def _registered_classes():
    return [cls for mod in hmp_addon.MODULES for cls in getattr(mod, "classes", ())]


def test_register_unregister_twice():
    classes = _registered_classes()
    assert len(classes) >= 10
    for _ in range(2):
        hmp_addon.register()
        assert all(cls.is_registered for cls in classes), [c.__name__ for c in classes if not c.is_registered]
        assert hasattr(bpy.types, "HMP_PT_capture")
        assert bpy.ops.hmp.capture.idname() == "HMP_OT_capture"
        assert bpy.context.scene.hmp_capture.hands == "right"
        assert bpy.context.window_manager.hmp_state.running is False
        hmp_addon.unregister()
        assert not any(cls.is_registered for cls in classes), [c.__name__ for c in classes if c.is_registered]
        assert not hasattr(bpy.types, "HMP_PT_capture")
        assert not hasattr(bpy.types.Scene, "hmp_capture")
        assert all(h.__name__ != "_on_load_pre" for h in bpy.app.handlers.load_pre)


EXIT_SCRIPT = textwrap.dedent("""
    import sys
    import bpy, hmp_addon
    print(bpy.app.tempdir, flush=True)
    hmp_addon.register()
    if sys.argv[1] == "unregister":
        hmp_addon.unregister()
    sys.exit(3)
""")


@pytest.mark.parametrize("then", ["exit", "unregister"])
def test_python_exits_with_its_code_after_registering(then):
    """Under the bpy 4.2 module a Python that had registered the add-on (unregistered again or not)
    crashed on exit, exit code -11 instead of its own: the headless script's 0 / 2 were lost
    (hmp_addon._drop_bpy_references). Blender's own shutdown runs: its session temp folder is gone."""
    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, then], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    tempdir = proc.stdout.splitlines()[0]
    assert tempdir.startswith(os.sep) and not os.path.exists(tempdir), tempdir


SLOW_ENGINE = """
emit(event="start", protocol=1)
time.sleep(60)
"""


def test_operators_poll_with_the_capture_state(tmp_path):
    """Capture is available only while no capture runs, Cancel only while one does (a real engine
    process, a stand-in that waits); the others whenever the add-on is registered."""
    from addon_support import fake_engine

    from hmp_addon import jobs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        jobs.forget()
        assert bpy.ops.hmp.capture.poll() and not bpy.ops.hmp.cancel_capture.poll()
        assert bpy.ops.hmp.import_result.poll() and bpy.ops.hmp.check_engine.poll()
        params = jobs.CaptureParams(video=__file__, engine_python=sys.executable)
        job = jobs.start(params, root=fake_engine(tmp_path, SLOW_ENGINE))
        assert not bpy.ops.hmp.capture.poll() and bpy.ops.hmp.cancel_capture.poll()
        with pytest.raises(RuntimeError, match="poll"):
            bpy.ops.hmp.capture()  # refused while the first runs
        assert bpy.ops.hmp.cancel_capture() == {"FINISHED"}
        assert job.state == "cancelled" and job.run.proc.poll() is not None
        assert bpy.ops.hmp.capture.poll() and not bpy.ops.hmp.cancel_capture.poll()
    finally:
        jobs.cancel_current()
        jobs.forget()
        hmp_addon.unregister()


def test_settings_without_preferences_fall_back_to_the_environment(monkeypatch, tmp_path):
    """Registered by hand (tests, the headless script) there is no preferences entry: settings()
    reads $HMP_ENGINE_PYTHON / $HMP_MANO_DIR, device auto."""
    from hmp_addon import settings

    hmp_addon.register()
    try:
        assert settings.addon_preferences() is None
        monkeypatch.setenv("HMP_ENGINE_PYTHON", "/opt/engine/bin/python")
        monkeypatch.setenv("HMP_MANO_DIR", str(tmp_path))
        found = settings.settings()
        assert (found.engine_python, found.mano_dir, found.default_device) == ("/opt/engine/bin/python", str(tmp_path),
                                                                              "auto")
        assert not settings.set_engine_python(bpy.context, "/elsewhere/python")
    finally:
        hmp_addon.unregister()


DRAW_SCRIPT = textwrap.dedent("""
    import os, sys
    import bpy, hmp_addon
    hmp_addon.register()
    from hmp_addon import ui
    scene = bpy.context.scene
    state = bpy.context.window_manager.hmp_state
    variants = [
        lambda: None,
        lambda: (setattr(scene.hmp_capture, "target", "EXISTING"), setattr(scene.hmp_capture, "hands", "both")),
        lambda: setattr(state, "last_error", "Capture failed: engine crashed (exit code 1): " + "x " * 80),
        lambda: os.environ.__setitem__("HMP_ENGINE_PYTHON", "/nonexistent/python"),
    ]
    drawn = []
    def draw(menu, context):
        for change in variants:
            change()
            ui.HMP_PT_capture.draw(menu, context)   # the real panel draw into a real UILayout
            drawn.append(1)
        print("DRAWN", len(drawn), flush=True)
        os._exit(0)  # popups need a window event loop, which background Blender lacks
    bpy.context.window_manager.popup_menu(draw, title="Hand Capture")
    print("NOT DRAWN", flush=True)
    os._exit(1)
""")


def test_panel_draws_in_a_real_layout():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("HMP_ENGINE_PYTHON", None)
    proc = subprocess.run([sys.executable, "-c", DRAW_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "DRAWN 4" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0


def _ext(*args):
    return subprocess.run([sys.executable, BLENDER_EXT, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_manifest_validates():
    proc = _ext("validate", ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "hmp_hand_capture.zip"
    proc = _ext("build", "--source-dir", ROOT, "--output-filepath", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_extension_zip_layout(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "hmp_addon/__init__.py", "hmp_addon/bake.py",
                   "engine/__init__.py", "engine/contract/result.py", "engine/contract/progress.py", "engine/contract/joints.py"):
        assert needed in names, needed
    for name in names:
        assert not name.startswith(("tests/", ".venv/", ".venv-py311/", "docs/", "benchmarks/", ".git/", "output/")), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert name != ".git", name


# what a checkout holds beside the extension after scripts/test.sh, the demo and a build
DEV_FILES = [".venv/bin/python", ".venv-py311/bin/python", ".cache/engine-wheels/x.whl", ".pytest_cache/v/x",
             "output/demo/result.npz", "dist/old.zip", "tests/test_x.py", "docs/x.md", "scripts/test.sh",
             "scripts/pythons.sh"]


def test_development_files_stay_out_of_the_zip(built_zip, tmp_path):
    """Built from a folder holding the extension and every development folder, the zip is the same.
    scripts/test.sh's .venv-py311 (bpy 4.2, ~3 GB) went into the zip whole, and a git worktree's
    .git, a file there, too."""
    src = tmp_path / "src"
    with zipfile.ZipFile(built_zip) as z:
        z.extractall(src)
    for rel in DEV_FILES:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("development only\n")
    (src / ".git").write_text("gitdir: /elsewhere/.git/worktrees/src\n")
    again = tmp_path / "again.zip"
    proc = _ext("build", "--source-dir", str(src), "--output-filepath", str(again))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(zipfile.ZipFile(again).namelist()) == sorted(zipfile.ZipFile(built_zip).namelist())


INSTALL_SCRIPT = textwrap.dedent("""
    import sys, bpy, addon_utils
    zip_path = sys.argv[1]
    assert "user_default" in [r.module for r in bpy.context.preferences.extensions.repos]
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    name = "bl_ext.user_default.hmp_hand_capture"
    assert name in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
    assert hasattr(bpy.types, "HMP_PT_capture")
    prefs = bpy.context.preferences.addons[name].preferences
    assert prefs.default_device == "auto"
    # the installed add-on's settings come from these preferences, "//" paths made absolute
    settings = sys.modules[name + ".hmp_addon.settings"]
    prefs.engine_python, prefs.default_device, prefs.setup_wheels = "/opt/py/bin/python", "cpu", "/wheels"
    found = settings.settings()
    assert (found.engine_python, found.default_device, found.setup_wheels) == ("/opt/py/bin/python", "cpu", "/wheels")
    assert settings.set_engine_python(bpy.context, "/new/python") and prefs.engine_python == "/new/python"
    mod = sys.modules[name + ".hmp_addon.engine_link"]
    assert mod.result.__name__ == name + ".engine.contract.result", mod.result.__name__   # engine shipped inside
    addon_utils.disable(name)
    assert not hasattr(bpy.types, "HMP_PT_capture")
    print("INSTALLED OK", flush=True)
""")


def test_built_zip_installs_and_enables(built_zip, tmp_path):
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")  # a throwaway user folder
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(built_zip)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    assert "INSTALLED OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
