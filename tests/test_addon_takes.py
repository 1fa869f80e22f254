"""Captures in real use (issue 12): takes of same-named videos, a scene whose frame rate is not the
video's, targets checked before the engine starts, field of view and frame range reaching the engine.

The engine is a real process from a throwaway extension root (``fake_engine``) that hands back a
result prepared beside each video: only the add-on's side is under test here (the real engine on a
real clip: test_addon_e2e.py).
"""

import json
import os
import shutil
import sys

import bpy
import numpy as np
import pytest
from addon_support import fake_engine, make_result

import hmp_addon
from engine.contract import result as R
from hmp_addon import bake, jobs, retarget, session_files

# copies VIDEO.npz (a result prepared by the test) to --out and VIDEO.preview.mp4 to --preview; the
# argv goes to VIDEO.argv.json
COPY_PREPARED = """
video = args[1]
json.dump(args, open(video + ".argv.json", "w"))
emit(event="start", protocol=1)
shutil.copy(video + ".npz", out)
preview = args[args.index("--preview") + 1] if "--preview" in args else None
if preview and os.path.exists(video + ".preview.mp4"):
    shutil.copy(video + ".preview.mp4", preview)
emit(event="done", result=out, preview=preview)
"""


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    yield bpy.context.scene
    jobs.cancel_current()
    jobs.forget()
    hmp_addon.unregister()


def write_video(path, frames=5, fps=30.0):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        w.write(np.full((48, 64, 3), (30 * i) % 256, np.uint8))  # numpy 2 refuses to wrap a value over 255
    w.release()


def take(tmp_path, folder, T=10, seed=0, fps=30.0, sides=("right",)):
    """A video file (real, small) with the result the fake engine will hand back for it."""
    video = tmp_path / folder / "clip.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, frames=T, fps=fps)
    shutil.copy(video, str(video) + ".preview.mp4")
    make_result(str(video) + ".npz", T=T, seed=seed, fps=fps, sides=sides, mesh=False, video=str(video))
    return str(video)


def capture(root, video, **kw):
    params = jobs.CaptureParams(video=video, engine_python=sys.executable, **kw)
    job = jobs.start(params, root=root)
    jobs.run_to_end(job, bpy.context, timeout=60)
    assert job.state == "done", job.error
    return job


def test_two_takes_with_the_same_file_name_coexist(scene, tmp_path):
    """Issue 12.2: shot1/clip.mp4 then shot2/clip.mp4 used to replace the first take's rig, Action,
    camera and files (all named after the stem)."""
    root = fake_engine(tmp_path, COPY_PREPARED)
    v1, v2 = take(tmp_path, "shot1", T=10), take(tmp_path, "shot2", T=14, seed=3)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # files move beside the .blend after each capture
    user = bpy.data.actions.new("clip_left_hand")  # the user's own Action with a name a take would use
    user.use_fake_user = True
    capture(root, v1)
    capture(root, v2)
    rig1, rig2 = bpy.data.objects["clip_right_hand"], bpy.data.objects["clip_2_right_hand"]
    assert set(bake.count_keys(rig1.animation_data.action).values()) == {10}
    assert set(bake.count_keys(rig2.animation_data.action).values()) == {14}
    assert rig1.animation_data.action.name == "clip_right_hand"
    assert rig2.animation_data.action.name == "clip_2_right_hand"
    assert {"clip_camera", "clip_2_camera"} <= set(bpy.data.objects.keys())
    kept = sorted(p.name for p in (tmp_path / session_files.FOLDER).iterdir())
    assert kept == ["clip.npz", "clip.preview.mp4", "clip_2.npz", "clip_2.preview.mp4"]
    clips = sorted(bpy.path.abspath(c.filepath) for c in bpy.data.movieclips)
    assert len(set(clips)) == 2
    assert bpy.context.scene.hmp_retarget.result == "//hand_capture/clip_2.npz"
    # a re-capture of the first video replaces its own take, nothing else
    capture(root, v1)
    assert sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE") == ["clip_2_right_hand",
                                                                               "clip_right_hand"]
    assert sorted(a.name for a in bpy.data.actions) == ["clip_2_right_hand", "clip_left_hand", "clip_right_hand"]
    # a left-hand take finds the user's Action under its name: the take gets a free name instead
    v3 = take(tmp_path, "shot3", T=6, sides=("left",))
    job = capture(root, v3, hands="left")
    assert job.imported[0]["action"].name == "clip_3_left_hand" and bpy.data.actions["clip_left_hand"] == user
    assert bake.count_keys(user) == {}  # untouched (no layers in 5.2, no F-Curves in 4.2)


def test_retargets_of_same_named_takes_keep_both_actions(scene, tmp_path):
    make_result(tmp_path / "a.npz", T=8, mesh=False, video="/shot1/clip.mp4")
    make_result(tmp_path / "b.npz", T=9, mesh=False, video="/shot2/clip.mp4", seed=2)
    bpy.ops.hmp.import_result(filepath=str(tmp_path / "a.npz"))
    target = bpy.data.objects["clip_right_hand"]
    mapping = {j: j for j in retarget.JOINTS}
    a = retarget.retarget_result(bpy.context, target, R.read(tmp_path / "a.npz"), "right", mapping)["action"]
    b = retarget.retarget_result(bpy.context, target, R.read(tmp_path / "b.npz"), "right", mapping)["action"]
    assert (a.name, b.name) == ("clip_right_clip_right_hand", "clip_right_clip_right_hand_2")
    assert set(bake.count_keys(a).values()) == {8} and set(bake.count_keys(b).values()) == {9}
    again = retarget.retarget_result(bpy.context, target, R.read(tmp_path / "a.npz"), "right", mapping)["action"]
    assert again.name == "clip_right_clip_right_hand" and len(bpy.data.actions) == 3  # a re-run replaces


def test_capture_into_a_24_fps_scene_stays_in_sync(scene, tmp_path):
    """Issue 12.3: the keys are time-mapped (30 fps video into a 24 fps scene: the last of 90 frames
    at 72.2) but the Movie Clip plays frame for frame, so the preview lagged 18 frames behind after
    90. A capture now sets the scene to the video's rate: key t and preview frame t share a frame."""
    root = fake_engine(tmp_path, COPY_PREPARED)
    video = take(tmp_path, "shot", T=30, fps=30.0)
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_start = 5
    scene.camera = None
    job = capture(root, video)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(30.0)
    assert any("frame rate set to the video's, 30 fps" in n for n in job.notes)
    clip = bpy.data.movieclips[0]
    assert clip.fps == pytest.approx(scene.render.fps / scene.render.fps_base)
    assert clip.frame_start == 5 and clip.frame_duration == 30
    fc = next(iter(bake.iter_fcurves(job.imported[0]["action"])))
    keys = np.array([k.co[0] for k in fc.keyframe_points])
    # result frame t is keyed where the clip shows its frame t (scene frame = clip.frame_start + t)
    assert np.allclose(keys, clip.frame_start + np.arange(30))


def test_keep_scene_rate_warns_that_the_preview_drifts(scene, tmp_path):
    root = fake_engine(tmp_path, COPY_PREPARED)
    video = take(tmp_path, "shot", T=12, fps=30.0)
    scene.render.fps = 24
    scene.hmp_capture.video, scene.hmp_capture.scene_rate = video, "KEEP"
    params = jobs.CaptureParams.from_scene(bpy.context)
    assert params.match_fps is False
    params.engine_python = sys.executable
    job = jobs.start(params, root=root)
    jobs.run_to_end(job, bpy.context, timeout=60)
    assert job.state == "done" and scene.render.fps == 24
    assert any("drifts" in w for w in job.warnings)
    fc = next(iter(bake.iter_fcurves(job.imported[0]["action"])))
    assert fc.keyframe_points[-1].co[0] == pytest.approx(1 + 11 * 24 / 30)  # time-mapped


def test_target_without_mano_bones_is_refused_before_the_engine_starts(scene, tmp_path):
    """Issue 12.5: a target lacking the MANO bones used to run the whole engine job, then refuse."""
    ran = tmp_path / "engine_ran"
    root = fake_engine(tmp_path, f"open({str(ran)!r}, 'w').write('yes')\n" + COPY_PREPARED)
    video = take(tmp_path, "shot")
    arm = bpy.data.objects.new("Character", bpy.data.armatures.new("Character"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("hand.R", "index1", "index2"):  # one MANO name is not enough
        b = arm.data.edit_bones.new(name)
        b.tail = (0, 0, 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    s = scene.hmp_capture
    s.video, s.target, s.armature_right = video, "EXISTING", arm
    with pytest.raises(RuntimeError, match="armature 'Character' lacks the MANO bones wrist, index3"):
        bpy.ops.hmp.capture()
    assert jobs.current() is None and not ran.exists()
    params = jobs.CaptureParams(video=video, engine_python=sys.executable, targets={"right": "Nope"})
    with pytest.raises(Exception, match="no object called 'Nope'"):
        jobs.start(params, root=root)
    assert not ran.exists()


def _argv_of(root, video, params):
    job = jobs.start(params, root=root)
    jobs.run_to_end(job, bpy.context, timeout=60)
    assert job.state == "done", job.error
    jobs.forget()
    return json.load(open(video + ".argv.json")), job


def test_field_of_view_focal_length_and_movie_clip_camera_reach_the_engine(scene, tmp_path):
    """Issue 12.6: the engine's guess was the only choice for the camera in the panel."""
    root = fake_engine(tmp_path, COPY_PREPARED)
    video = take(tmp_path, "shot", T=4)
    s = scene.hmp_capture
    s.video = video

    def argv(**settings):
        for k, v in settings.items():
            setattr(s, k, v)
        params = jobs.CaptureParams.from_scene(bpy.context)
        params.engine_python = sys.executable
        return _argv_of(root, video, params)

    args, _ = argv(lens="AUTO")
    assert "--fov" not in args and "--K" not in args  # no clip camera set: the engine estimates
    args, job = argv(lens="FOV", fov=48.5)
    assert args[args.index("--fov") + 1] == "48.5" and "--K" not in args
    assert "camera: field of view 48.5 degrees" in job.notes
    args, _ = argv(lens="FOCAL", focal_length=35.0, sensor_width=36.0)
    assert float(args[args.index("--fov") + 1]) == pytest.approx(2 * np.degrees(np.arctan(18 / 35)), abs=1e-3)
    # the video's Movie Clip with its camera data set (Movie Clip editor > Track > Camera)
    clip = bpy.data.movieclips.load(video)
    clip.tracking.camera.sensor_width, clip.tracking.camera.focal_length = 36.0, 50.0
    clip.tracking.camera.principal_point = (0.25, -0.5)  # normalised, y up
    args, job = argv(lens="AUTO")
    fx, fy, cx, cy = map(float, args[args.index("--K") + 1].split(","))
    assert fx == pytest.approx(50 / 36 * 64, rel=1e-4) and fy == pytest.approx(fx)
    assert (cx, cy) == pytest.approx((32 + 0.25 * 32, 48 - (24 - 0.5 * 24)))  # OpenCV: y down from the top
    assert any("Movie Clip 'clip.mp4' camera (50 mm on 36 mm" in n for n in job.notes)
    with pytest.raises(Exception, match="field of view must be between 1 and 170"):
        jobs.CaptureJob(jobs.CaptureParams(video=video, engine_python=sys.executable, fov=0.5), root=root)
    with pytest.raises(Exception, match="field of view must be between 1 and 170"):  # the engine refuses more
        jobs.CaptureJob(jobs.CaptureParams(video=video, engine_python=sys.executable, fov=175.0), root=root)
