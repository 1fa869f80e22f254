"""Engine set-up from inside Blender, offline from a local wheel folder; the preview video loader."""

import os
import sys
import zipfile

import bpy
import numpy as np
import pytest

import hmp_addon
from hmp_addon import engine_setup, preview


def make_wheel(folder, name="hmp_probe", version="1.0", value=42):
    """A minimal pure-Python wheel, written by hand (no build tools, no network)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VALUE = {value}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}/RECORD"] = "".join(f"{k},,\n" for k in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def test_setup_creates_an_environment_offline_from_a_wheel_folder(tmp_path):
    make_wheel(tmp_path / "wheels")
    req = tmp_path / "requirements.txt"
    req.write_text("hmp_probe==1.0\n")
    setup = engine_setup.EngineSetup(tmp_path / "venv", requirements=req, wheel_dir=tmp_path / "wheels",
                                     base_python=sys.executable)
    assert any("--no-index" in c for c in setup.commands)  # offline: never the network
    assert setup.start().wait(timeout=300) == "done", setup.error + "\n".join(setup.lines[-10:])
    import subprocess

    out = subprocess.run([setup.python, "-c", "import hmp_probe; print(hmp_probe.VALUE)"], capture_output=True,
                         text=True)
    assert out.stdout.strip() == "42"
    # re-running repairs in place (the venv exists: no second creation)
    again = engine_setup.EngineSetup(tmp_path / "venv", requirements=req, wheel_dir=tmp_path / "wheels")
    assert not any(c[1:3] == ["-m", "venv"] for c in again.commands)
    assert again.start().wait(timeout=300) == "done"


def test_setup_failures_are_clear(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("hmp_probe==1.0\nhmp_absent_package==9.9\n")
    make_wheel(tmp_path / "wheels")  # an incomplete folder: one of the two packages
    setup = engine_setup.EngineSetup(tmp_path / "venv", requirements=req, wheel_dir=tmp_path / "wheels",
                                     base_python=sys.executable)
    assert setup.start().wait(timeout=300) == "failed" and "failed" in setup.error
    assert "hmp_absent_package" in "\n".join(setup.lines)
    assert not (tmp_path / "venv").exists()  # issue 12.7: the half-made environment is removed
    with pytest.raises(FileNotFoundError, match="wheel folder"):
        engine_setup.EngineSetup(tmp_path / "v2", requirements=req, wheel_dir=tmp_path / "nowhere")
    assert engine_setup.setup_commands(tmp_path / "v3", req, torch_variant="cuda")[-2][-1] == engine_setup.TORCH_INDEX["cuda"]


def test_set_up_engine_offline_is_isolated_from_pip_config_then_checks_the_engine(tmp_path, monkeypatch):
    """Issue 12.7: the "offline" install read pip's configuration (find-links, index URLs), so it was
    not isolated; on success it did not check the engine."""
    make_wheel(tmp_path / "wheels", version="1.0", value=1)
    make_wheel(tmp_path / "elsewhere", version="2.0", value=2)  # what the user's pip set-up points at
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {tmp_path / 'elsewhere'}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "elsewhere"))
    req = tmp_path / "requirements.txt"
    req.write_text("hmp_probe\n")  # unpinned: pip takes the highest version it can see
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        venv = tmp_path / "venv"
        assert bpy.ops.hmp.setup_engine(venv_dir=str(venv), wheel_dir=str(tmp_path / "wheels"),
                                        requirements=str(req), wait=True) == {"FINISHED"}
        import subprocess

        py = engine_setup.venv_python(venv)
        out = subprocess.run([str(py), "-c", "import hmp_probe; print(hmp_probe.VALUE)"], capture_output=True, text=True)
        assert out.stdout.strip() == "1", out.stdout + out.stderr  # only the wheel folder was read
        state = bpy.context.window_manager.hmp_state
        # Check Engine ran on the new environment: it has the probe, not the engine's packages
        assert not state.engine_ok and "lacks numpy, torch" in state.engine_status
        assert str(py) in state.engine_status
    finally:
        hmp_addon.unregister()


def test_set_up_engine_from_an_empty_wheel_folder_leaves_nothing(tmp_path):
    (tmp_path / "wheels").mkdir()
    req = tmp_path / "requirements.txt"
    req.write_text("hmp_probe==1.0\n")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        with pytest.raises(RuntimeError, match="holds no wheels: fill it with `pip download -r requirements.txt"):
            bpy.ops.hmp.setup_engine(venv_dir=str(tmp_path / "venv"), wheel_dir=str(tmp_path / "wheels"),
                                     requirements=str(req), wait=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt", "wheels"]
    finally:
        hmp_addon.unregister()
    assert "on disk; set a Wheel Folder to install offline" in engine_setup.network_warning("cpu")


def test_preview_video_behind_the_camera(tmp_path):
    import cv2

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        path = str(tmp_path / "p.mp4")
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
        for i in range(5):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8))
        w.release()
        scene = bpy.context.scene
        with pytest.raises(RuntimeError, match="no camera"):
            bpy.ops.hmp.load_preview(filepath=path)
        cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
        scene.collection.objects.link(cam)
        scene.camera = cam
        scene.frame_start = 7
        assert bpy.ops.hmp.load_preview(filepath=path) == {"FINISHED"}
        bg = cam.data.background_images[0]
        assert cam.data.show_background_images and bg.source == "MOVIE_CLIP"
        assert bg.clip.frame_start == 7 and bg.clip.frame_duration == 5
        bpy.ops.hmp.load_preview(filepath=path)  # again: reuses the clip and the background slot
        assert len(cam.data.background_images) == 1 and len(bpy.data.movieclips) == 1
    finally:
        hmp_addon.unregister()


def test_capture_files_move_beside_the_blend_when_it_is_saved(tmp_path):
    """A capture's result and preview live in Blender's session temp folder until the scene is saved:
    then they move to hand_capture/ beside the .blend, and the clip and result path follow them."""
    import cv2

    from hmp_addon import session_files

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        work = tmp_path / (session_files.TEMP_PREFIX + "abc")  # as a capture job makes it
        work.mkdir()
        video = str(work / "clip.preview.mp4")
        w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
        for i in range(4):
            w.write(np.full((48, 64, 3), 50 * i, np.uint8))
        w.release()
        (work / "clip.npz").write_bytes(b"result")
        scene = bpy.context.scene
        cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
        scene.collection.objects.link(cam)
        scene.camera = cam
        assert bpy.ops.hmp.load_preview(filepath=video) == {"FINISHED"}
        scene.hmp_retarget.result = str(work / "clip.npz")
        other = tmp_path / "mine.mp4"  # a clip the user loaded: never moved
        other.write_bytes(open(video, "rb").read())
        bpy.data.movieclips.load(str(other)).use_fake_user = True
        blend = tmp_path / "shot" / "scene.blend"
        blend.parent.mkdir()
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        kept = blend.parent / session_files.FOLDER
        assert sorted(p.name for p in kept.iterdir()) == ["clip.npz", "clip.preview.mp4"]
        assert not (work / "clip.npz").exists() and other.exists()
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        clips = {c.name: c.filepath for c in bpy.data.movieclips}
        assert clips["clip.preview.mp4"] == "//hand_capture/clip.preview.mp4"
        assert bpy.data.movieclips["clip.preview.mp4"].frame_duration == 4  # it loads from there
        assert bpy.context.scene.hmp_retarget.result == "//hand_capture/clip.npz"
        assert os.path.samefile(bpy.path.abspath(bpy.data.movieclips["mine.mp4"].filepath), other)
    finally:
        hmp_addon.unregister()


def test_save_as_elsewhere_keeps_retarget_working(tmp_path):
    """Issue 12.4: Blender remaps the Movie Clip's relative path on Save As into another folder, but
    not the add-on's own paths: the retarget panel's "//hand_capture/..." then pointed nowhere."""
    from addon_support import make_result

    from hmp_addon import retarget_ui

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        first = tmp_path / "shot" / "scene.blend"
        (first.parent / "hand_capture").mkdir(parents=True)
        make_result(first.parent / "hand_capture" / "clip.npz", T=6, mesh=False)
        assert bpy.ops.hmp.import_result(filepath=str(first.parent / "hand_capture" / "clip.npz")) == {"FINISHED"}
        s = bpy.context.scene.hmp_retarget
        s.target = bpy.data.objects["my clip_right_hand"]
        retarget_ui.set_map(s, {j: j for j in retarget_ui.bonemaps.JOINTS})
        s.result = "//hand_capture/clip.npz"
        bpy.context.scene.hmp_capture.video = "//clip.mp4"
        bpy.ops.wm.save_as_mainfile(filepath=str(first))
        copy = tmp_path / "copies" / "copy.blend"
        copy.parent.mkdir()
        bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True)  # the open file stays where it was
        assert s.result == "//hand_capture/clip.npz"
        other = tmp_path / "elsewhere" / "deeper" / "scene.blend"
        other.parent.mkdir(parents=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(other))
        for path in (other, copy):
            bpy.ops.wm.open_mainfile(filepath=str(path))
            s = bpy.context.scene.hmp_retarget
            assert os.path.samefile(bpy.path.abspath(s.result), first.parent / "hand_capture" / "clip.npz")
            assert os.path.normpath(bpy.path.abspath(bpy.context.scene.hmp_capture.video)) == str(first.parent / "clip.mp4")
            assert bpy.ops.hmp.retarget() == {"FINISHED"}
            assert s.target.animation_data.action.name == "my clip_right_my clip_right_hand"
    finally:
        hmp_addon.unregister()
