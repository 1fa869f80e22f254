"""Awkward real video files: rotation metadata (phone portrait clips) and variable frame rate.

The files are made in the test from the real clip with ffmpeg (the imageio-ffmpeg wheel's binary).
"""

import json
import subprocess

import numpy as np
import pytest

from engine.contract import result as R
from engine.keypoints import KeypointOptions, detect_hands
from engine.util.errors import EngineError
from engine.video import open_video

CLIP = __import__("pathlib").Path(__file__).parent / "data" / "hand_short.mp4"


@pytest.fixture(scope="module")
def ffmpeg():
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def test_rotation_metadata_gives_upright_frames_and_keypoints(ffmpeg, tmp_path):
    rotated = tmp_path / "portrait.mp4"  # the same stream, flagged to be shown turned by 90 degrees
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(CLIP), "-c", "copy",
                    str(rotated)], check=True)
    video = open_video(rotated)
    assert (video.width, video.height) == (360, 640) and video.rotation in (90, 270)
    for _, rgb in video.frames(0, 1):
        assert rgb.shape == (640, 360, 3)
    opts = KeypointOptions(views=0, use_cache=False, end=20)
    upright = detect_hands(video, options=opts)["right"]
    plain = detect_hands(open_video(CLIP), options=opts)["right"]
    assert upright.detected.mean() > 0.9
    # the keypoints are those of the landscape clip turned by a quarter turn (one way or the other)
    both = upright.detected & plain.detected
    x, y = plain.keypoints_2d[both, :, 0], plain.keypoints_2d[both, :, 1]
    turns = [np.stack([y, 640 - x], -1), np.stack([360 - y, x], -1)]
    err = min(np.linalg.norm(upright.keypoints_2d[both] - t, axis=-1).mean() for t in turns)
    assert err < 10.0, err


def test_variable_frame_rate_clip_captures(ffmpeg, tmp_path):
    vfr = tmp_path / "vfr.mp4"  # 30 fps for a second, then every frame held twice as long
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(CLIP), "-vf",
                    "setpts='if(lt(N,30),N/30/TB,(N*2-30)/30/TB)'", "-fps_mode", "vfr", "-c:v", "libx264",
                    str(vfr)], check=True)
    video = open_video(vfr)
    assert video.num_frames == 60 and 15.0 < video.fps < 30.0  # the container's average rate
    import io

    from engine.capture import CaptureOptions, capture
    from engine.contract.progress import Reporter, parse_line

    out, events = tmp_path / "r.npz", io.StringIO()
    capture(vfr, out, CaptureOptions(quality="draft", no_cache=True, stages=2), Reporter("jsonl", stream=events))
    # the fit follows the frames' own times (its smoothness, the prior's windows: tests/test_fit_consistency.py)
    logs = [e["message"] for e in map(parse_line, events.getvalue().splitlines()) if e["event"] == "log"]
    assert any(m.startswith("variable frame rate (15-30 fps)") for m in logs), logs
    res = R.read(out)
    assert res.num_frames == 60 and res.fps == pytest.approx(video.fps)
    assert res.hands["right"]["valid"].mean() > 0.9
    # each frame keeps its own time: 1/30 s apart for the first second, 2/30 s after
    expected = np.where(np.arange(60) < 30, np.arange(60), 2 * np.arange(60) - 30) / 30.0
    assert np.allclose(res["frame_times"], expected, atol=1e-3)
    # ...and Blender puts each key at that time (24 fps scene)
    import bpy

    import hmp_addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        bpy.ops.hmp.import_result(filepath=str(out))
        rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        fc = next(f for f in hmp_addon.bake.iter_fcurves(rig.animation_data.action) if "rotation" in f.data_path)
        keys = np.array([k.co[0] for k in fc.keyframe_points])
        valid = res.hands["right"]["valid"]
        assert np.allclose(keys, 1 + expected[valid] * 24.0, atol=1e-3)
    finally:
        hmp_addon.unregister()


def test_partly_readable_video_is_detected(ffmpeg, tmp_path):
    """A half-downloaded mp4 (index at the front, the frames cut short): the frames that decode are used with
    a warning saying how many; a --start past them is an error, never frames from elsewhere."""
    whole = tmp_path / "faststart.mp4"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(CLIP), "-c", "copy", "-movflags", "faststart",
                    str(whole)], check=True)
    data = whole.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 3])
    video = open_video(half)
    assert video.num_frames == 60  # what the file's index promises
    ids = [i for i, _ in video.frames()]
    assert 5 < len(ids) < 40 and ids == list(range(len(ids)))
    from engine.video import short_read_message

    message = short_read_message(video, 0, None, ids)
    assert f"only {len(ids)} of the 60 frames" in message and "0..59" in message
    assert short_read_message(video, 0, len(ids), ids) is None  # asked for no more than there is
    with pytest.raises(EngineError, match="no frame decodes from frame 50 on"):
        list(video.frames(start=50))
    with pytest.raises(EngineError, match=rf"no frame decodes from frame {len(ids)} on"):
        list(video.frames(start=len(ids)))
    # through the command line: exit 0 with the warning, the result holds only the frames read
    from tests.test_cli import run_main

    out = tmp_path / "r.npz"
    proc = run_main("capture", half, "--out", out, "--stages", "0", "--quality", "draft", "--no-cache",
                    "--progress", "jsonl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    warnings = [json.loads(l)["message"] for l in proc.stdout.splitlines() if '"warning"' in l]
    assert any(f"only {len(ids)} of the 60 frames" in w for w in warnings), warnings
    assert list(R.read(out)["frame_ids"]) == ids
    proc = run_main("capture", half, "--out", out.with_name("s.npz"), "--start", "50", "--no-cache")
    assert proc.returncode == 2 and "no frame decodes from frame 50 on" in proc.stderr


def test_a_guessed_frame_rate_is_a_warning_the_user_sees(tmp_path):
    import io

    import cv2

    from engine.capture import CaptureOptions, capture
    from engine.contract.progress import Reporter, parse_line

    path = tmp_path / "slow.avi"  # 0.5 fps: below the 1..1000 fps a frame rate is believed in
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 0.5, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    video = open_video(path)
    assert video.fps_guessed and video.fps == 30.0 and video.fps_stated == 0.5
    assert not open_video(CLIP).fps_guessed
    log = io.StringIO()
    with pytest.raises(EngineError, match="no right hand found"):  # no hand in the clip, but the warning came first
        capture(path, tmp_path / "r.npz", CaptureOptions(stages=0, views=0, no_cache=True), Reporter("jsonl", stream=log))
    warnings = [e["message"] for e in map(parse_line, log.getvalue().splitlines())
                if e["event"] == "log" and e["level"] == "warning"]
    assert warnings == ["slow.avi states no usable frame rate (0.5 fps): assumed 30 fps, so the result's timing "
                        "(and the keys' spacing) may be off"]
