"""The live take's source: a camera index, a ``/dev/videoN`` device, a stream URL or a video file
(parsed, described in messages, opened with ``cv2.VideoCapture``)."""

import os
from typing import TYPE_CHECKING

from engine.util.errors import EngineError

if TYPE_CHECKING:
    import cv2

Source = tuple[str, "int | str"]  # (kind, value): see parse_source


def parse_source(text: "str | int") -> Source:
    """-> (kind, value): ("camera", index) | ("device", path) | ("url", url) | ("file", path)."""
    text = str(text).strip()
    if text.isdigit():
        return "camera", int(text)
    if text.startswith("/dev/"):
        return "device", text
    if "://" in text:
        return "url", text
    return "file", text


def describe(kind: str, value: "int | str") -> str:
    """A source for messages: "camera 0", "stream URL", "video file PATH"."""
    return {"camera": f"camera {value}", "device": f"camera {value}", "url": f"stream {value}",
            "file": f"video file {value}"}[kind]


def open_source(kind: str, value: "int | str", timeout_s: float) -> "cv2.VideoCapture":
    """An opened ``cv2.VideoCapture``, or EngineError saying why not."""
    import cv2

    where = describe(kind, value)
    if kind == "file":
        if not os.path.isfile(value):
            raise EngineError(f"source not found: {value} (give a camera index such as 0, a /dev/videoN device, "
                              "a stream URL or a video file)")
    if kind == "device" and not os.path.exists(value):
        raise EngineError(f"no camera at {value}: the device does not exist (is the camera plugged in?)")
    if kind in ("url", "file"):
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(value, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    else:
        cap = cv2.VideoCapture(value)
    if not cap.isOpened():
        cap.release()
        if kind in ("camera", "device"):
            raise EngineError(f"cannot open {where}: no such camera, or another program is using it")
        if kind == "url":
            raise EngineError(f"cannot open {where}: unreachable, or not a video stream OpenCV can read")
        raise EngineError(f"cannot read {where}: not a video file, or a format OpenCV cannot decode")
    return cap
