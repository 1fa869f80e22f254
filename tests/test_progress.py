"""The progress protocol from the engine's side (Reporter) and the reader's side (parse_line)."""

import io
import json

import pytest

from engine.contract import progress


def _events(mode="jsonl"):
    stream = io.StringIO()
    rep = progress.Reporter(mode, stream=stream, min_interval=0.0)
    rep.start("capture", "0.1.0")
    rep.stage("detect", "Detecting hands", total=3)
    for _ in range(3):
        rep.advance()
    rep.warn("hand lost in 2 frames")
    rep.done("/tmp/r.npz", preview=None)
    return stream.getvalue().splitlines()


def test_jsonl_lines_parse_back_in_order():
    lines = _events()
    events = [progress.parse_line(line) for line in lines]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert events[0]["protocol"] == progress.PROTOCOL_VERSION
    prog = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in prog] == [0, 1, 2, 3]
    assert progress.fraction(prog[-1]) == 1.0
    assert any(e["event"] == "log" and e["level"] == "warning" for e in events)
    assert events[-1]["result"] == "/tmp/r.npz"


def test_throttling_keeps_the_last_step():
    stream = io.StringIO()
    rep = progress.Reporter("jsonl", stream=stream, min_interval=3600)
    rep.stage("fit1", "Stage I", total=100)
    for _ in range(100):
        rep.advance()
    done = [json.loads(l)["done"] for l in stream.getvalue().splitlines() if '"progress"' in l]
    assert done[0] == 0 and done[-1] == 100 and len(done) <= 3


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Traceback (most recent call last):",
        "[1, 2, 3]",
        '{"event": "teleport"}',
        '{"event": "progress", "stage": "detect"}',
        '{"event": "done"}',
        '{"event": "error"}',
        '{"event": "pose", "hands": {}}',
        '{"event": "pose", "frame": 3}',
        '{"event": "pose", "frame": "3", "hands": {}}',
        '{"event": "live"}',
    ],
)
def test_garbage_is_rejected(line):
    with pytest.raises(progress.ProtocolError):
        progress.parse_line(line)


def test_error_event_and_unknown_total():
    assert progress.parse_line('{"event": "error", "message": "no hand"}')["message"] == "no hand"
    ev = progress.parse_line('{"event": "progress", "stage": "read", "done": 5, "total": null}')
    assert progress.fraction(ev) is None


def test_bar_mode_writes_nothing_on_stdout(capsys):
    stream = io.StringIO()
    rep = progress.Reporter("bar", stream=stream)
    rep.stage("detect", "Detecting hands", total=2)
    rep.advance(2)
    rep.done("/tmp/r.npz")
    assert stream.getvalue() == ""
    assert "result written" in capsys.readouterr().err


def test_unknown_mode():
    with pytest.raises(ValueError):
        progress.Reporter("xml")


def test_live_events_round_trip():
    """engine live's events (engine/commands/live/): what the Reporter writes, the add-on's parser reads back."""
    stream = io.StringIO()
    rep = progress.Reporter("jsonl", stream=stream)
    rep.start("live", "0.1.0")
    rep.event("live", take="/t/take.mp4", width=640, height=480, fps=30.0, K=[[500, 0, 320], [0, 500, 240], [0, 0, 1]],
              frame_image=None, hands={"right": {"rest_joints": [[0.0, 0.0, 0.0]] * 16}})
    hand = {"global_orient": [0.1, 0.2, 0.3], "hand_pose": [0.0] * 45, "transl": [0.0, 0.0, 0.5], "score": 0.9}
    rep.event("pose", frame=7, time=0.233, wall=1.0, latency_ms=40.0, dropped=2, hands={"right": hand})
    rep.event("pose", frame=8, time=0.267, wall=1.1, latency_ms=41.0, dropped=2, hands={})
    rep.done("/t/take.mp4", None, frames=9, processed=2, dropped=2, seconds=0.3, stopped_by="stop")
    events = [progress.parse_line(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "live", "pose", "pose", "done"]
    assert events[2]["hands"]["right"] == hand and events[3]["hands"] == {}
    assert events[4]["frames"] == 9 and events[4]["result"] == "/t/take.mp4" and events[4]["stopped_by"] == "stop"
    with pytest.raises(ValueError, match="unknown progress event"):
        rep.event("teleport")
    quiet = io.StringIO()
    progress.Reporter("quiet", stream=quiet).event("pose", frame=1, hands={})
    assert quiet.getvalue() == ""


def test_done_carries_the_seconds_of_each_stage():
    """Issue 22: the done event says how long the run and each stage took; they add up."""
    import time

    buf = io.StringIO()
    rep = progress.Reporter("jsonl", stream=buf)
    rep.start("capture", "0.1.0")
    rep.stage("read", "Opening video")
    rep.stage("detect", "Detecting hands", total=2)
    time.sleep(0.05)
    rep.stage("fit1", "Fitting stage I")
    rep.done("/tmp/r.npz")
    done = progress.parse_line(buf.getvalue().splitlines()[-1])
    assert list(done["stage_seconds"]) == ["startup", "read", "detect", "fit1"]
    assert done["stage_seconds"]["detect"] >= 0.05
    assert abs(sum(done["stage_seconds"].values()) - done["seconds"]) < 0.01
