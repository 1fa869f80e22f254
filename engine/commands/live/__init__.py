"""``python -m engine live``: record a take from a camera while showing the hand live.

    python -m engine live --source 0|/dev/videoN|URL|FILE --record TAKE.mp4 [--hands right|left|both]
        [--seconds N] [--realtime] [--progress bar|jsonl|quiet] [--frame-image NEWEST.jpg]
        [--fov DEG | --K FX,FY,CX,CY] [--hand-size MM] [--mano-dir DIR] [--frame-timeout S] [--reserve-mb MB]

Three threads and the main one:

- the reader grabs frames from ``cv2.VideoCapture`` (a device index, a ``/dev/videoN`` path, a URL or a
  file; a file with ``--realtime`` is paced by its own frame times against a monotonic clock: the
  stand-in camera for tests and for people without one) and hands **every** frame to the writer and
  the newest one to the live worker;
- the writer encodes every frame into a temporary file beside TAKE.mp4 (OpenCV's MPEG-4 ``mp4v``, as
  the preview) and, when the take ends however it ends, closes it, writes the frames' times beside it
  (``TAKE.mp4.times.json``, read back by ``engine.video``) and renames it to TAKE.mp4: the take appears
  whole and playable, or (SIGKILL) not at all; it also checks the free disk space before each frame (``--reserve-mb``);
- the stdin reader takes a ``stop`` line;
- the main thread is the live worker: MediaPipe's hand landmarker (VIDEO mode, the frame's own time)
  on the newest frame, then ``fast_pose`` (below) and one ``pose`` event per processed frame. Frames
  that arrive while it works are skipped for the live view (``dropped``), never for the recording.

The take ends on ``--seconds``, the end of the input, a ``stop`` line on stdin, SIGINT, SIGTERM or
SIGHUP, or the death of the process that launched it (``--progress jsonl``: Blender killed), and then
with ``done`` (its ``result`` is the take, with ``frames``, ``processed``, ``dropped``, ``seconds``,
``stopped_by``); or with ``error`` when the source fails (no camera, a busy one, a camera that stops
sending frames: no frame for ``--frame-timeout`` seconds), or the disk fills up: the message says
what happened and where the take recorded so far is kept (``take`` and ``frames`` in the event).

The fit is not done here: the take is an ordinary video, captured afterwards by ``engine capture``
(the add-on does so on Stop). The live detections are not reused for it: the live view sees only the
newest frames (a skipped frame has none) before they are encoded, and MediaPipe's VIDEO mode tracks
from frame to frame, so detections from the live pass could not equal a capture of the take; the
capture detects the take's frames itself (cached by content, engine.keypoints.cache), so the result of
Stop is the result of ``engine capture TAKE.mp4`` exactly.

Modules: ``cli`` (the parser, ``main``, the stdin / parent watchers), ``session`` (``Live``: the reader
and the live worker), ``source`` (parse / open / describe a source), ``take`` (the ``Take`` writer, the
frame image), ``pose`` (``FastPose``, ``pick_hands``).
"""

from engine.commands.live.cli import live_parser, main
from engine.commands.live.pose import FastPose, pick_hands
from engine.commands.live.session import Live, LiveError
from engine.commands.live.source import describe, open_source, parse_source
from engine.commands.live.take import TIMES_SUFFIX, Take, check_frame_image, check_record, write_frame_image

__all__ = ["FastPose", "Live", "LiveError", "TIMES_SUFFIX", "Take", "check_frame_image", "check_record", "describe",
           "live_parser", "main", "open_source", "parse_source", "pick_hands", "write_frame_image"]
