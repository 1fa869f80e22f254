"""Capture from a camera: the hand rig follows a live per-frame pose while the take records, then the
take is captured with the normal two-stage fit and baked, as a video file would be.

``LiveJob`` (no UI code) runs ``python -m engine live`` (engine/commands/live/) and steps in two phases:

- ``recording``: the engine's ``live`` event builds the live view (``live_view.LiveView``: the take's
  hand rig(s) from the model's rest skeleton, named and tagged as the capture will name them, so the
  bake rebuilds this very rig in place, and a camera matching the image, whose background is the
  newest camera frame, an image the engine replaces atomically); each step poses the rig with the
  newest ``pose`` event (pose-bone quaternions through ``poses.bone_channels``, as the bake computes
  them). ``stop()`` writes ``stop`` to the engine's stdin: it closes the take.
- ``fitting``: a ``jobs.CaptureJob`` on the take with the panel's capture settings (quality, lens,
  device, target...): the normal capture, detections and all (engine/commands/live/ says why the live ones
  are not reused), then the bake. ``cancel()`` there stops the fit; the take stays on disk and becomes
  the panel's video, so **Capture** fits it later.

The take goes to the panel's Take Folder, else ``hand_capture/`` beside the saved .blend, else the
extension's user folder (the system's temp folder when run from a source checkout). A take the engine
could not finish (the camera stopped, the disk filled up) is kept as far as it was recorded and the
error says where; one shorter than ``LIVE_MIN_FRAMES`` is kept and not fitted. The operators and the
panel are ``live_ui.py``.
"""

import os
import shutil
import tempfile
import time

import bpy

from . import jobs, rig, runner
from .engine_link import choices as C
from .live_view import LiveView
from .settings import settings

LIVE_MIN_FRAMES = C.LIVE_MIN_FRAMES  # a shorter take is kept, not fitted


def take_folder(context, chosen=""):
    """Where takes go: ``chosen`` (the panel's Take Folder), else ``hand_capture/`` beside the saved .blend,
    else the extension's user folder (or the temp folder from a source checkout). Created."""
    if chosen:
        folder = bpy.path.abspath(chosen)
    elif bpy.data.filepath:
        folder = os.path.join(os.path.dirname(bpy.data.filepath), "hand_capture")
    else:
        try:
            folder = bpy.utils.extension_path_user(__package__.rsplit(".", 1)[0], path="takes", create=True)
        except (ValueError, AttributeError, RuntimeError):
            folder = os.path.join(tempfile.gettempdir(), "hmp_hand_capture_takes")
    os.makedirs(folder, exist_ok=True)
    return folder


def live_argv(engine_python, source, take, hands, frame_image=None, realtime=False, seconds=None, fov=None, K=None,
              hand_size=None, mano_dir=""):
    argv = [engine_python, "-m", "engine", "live", "--source", str(source), "--record", os.fspath(take),
            "--hands", hands, "--progress", "jsonl"]
    if frame_image:
        argv += ["--frame-image", os.fspath(frame_image)]
    if realtime:
        argv += ["--realtime"]
    if seconds:
        argv += ["--seconds", f"{float(seconds):.6g}"]
    argv += runner.camera_argv(fov, K, hand_size)
    if mano_dir:
        argv += ["--mano-dir", os.fspath(mano_dir)]
    return argv


def is_file_source(source):
    text = str(source).strip()
    return bool(text) and not text.isdigit() and not text.startswith("/dev/") and "://" not in text


class LiveJob:
    """See the module docstring. state: "recording" -> "fitting" -> "done" | "error" | "cancelled"
    (``error``: the message; ``take``: the take's path once the engine names it)."""

    def __init__(self, source, capture: jobs.CaptureParams, folder, realtime=True, seconds=None, fit=True, root=None):
        source = str(source).strip()
        if not source:
            raise runner.EngineSetupError("choose a camera: a device index (0), /dev/videoN, a stream URL or a video file")
        if is_file_source(source) and not os.path.isfile(bpy.path.abspath(source)):
            raise runner.EngineSetupError(f"no camera or video file called {source!r}")
        if is_file_source(source):
            source = bpy.path.abspath(source)
        runner.check_engine_python(capture.engine_python)
        self.capture_params = capture
        self.fit = fit
        self.take = os.path.join(folder, time.strftime("take_%Y%m%d-%H%M%S") + ".mp4")
        k = 2
        while os.path.exists(self.take):
            self.take = os.path.join(folder, time.strftime("take_%Y%m%d-%H%M%S") + f"_{k}.mp4")
            k += 1
        self.workdir = tempfile.mkdtemp(prefix="hmp-live-", dir=bpy.app.tempdir or None)
        self.frame_image = os.path.join(self.workdir, "newest.jpg")
        argv = live_argv(capture.engine_python, source, self.take, capture.hands, self.frame_image,
                         realtime=realtime and is_file_source(source), seconds=seconds, fov=capture.fov, K=capture.K,
                         hand_size=capture.hand_size, mano_dir=capture.mano_dir)
        kwargs = {"root": root} if root else {}
        self.root = root
        try:
            self.run = runner.EngineRun(argv, stdin=True, **kwargs)
        except runner.EngineSetupError:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.state = "recording"
        self.error = None
        self.info = None
        self.view = LiveView(self.frame_image)  # the live rig(s), camera and camera image
        self.newest = None  # the newest pose event not applied yet
        self.last_pose = None  # the last one applied
        self.poses_applied = 0
        self.poses_seen = 0
        self.frames = 0  # frames in the take (from the done event)
        self.capture = None  # the CaptureJob of the fitting phase
        self._done = {}  # the engine's done event
        self._started = time.monotonic()

    @property
    def finished(self):
        return self.state in ("done", "error", "cancelled")

    @property
    def message(self):
        if self.state == "recording":
            secs = time.monotonic() - self._started
            return f"Recording {os.path.basename(self.take)}: {secs:.0f} s, {self.poses_seen} live poses"
        if self.state == "fitting" and self.capture is not None:
            return f"Fitting the take: {self.capture.message}"
        return self.info or self.error or ""

    @property
    def fraction(self):
        return self.capture.fraction if self.state == "fitting" and self.capture is not None else 0.0

    # ------------------------------------------------------------------------------ recording
    def step(self, context):
        if self.state == "recording":
            for event in self.run.poll():
                if event["event"] == "live":
                    self.view.setup(context, event, make_camera=self.capture_params.make_camera)
                elif event["event"] == "pose":
                    self.newest = event
                    self.poses_seen += 1
                elif event["event"] == "done":
                    self._done = event
            if self.newest is not None and self.view.rigs:
                self._apply(self.newest)
                self.newest = None
            self.view.refresh_image()
            if self.run.finished:
                self._recorded(context)
        elif self.state == "fitting":
            self.capture.step(context)
            if self.capture.finished:
                self._fitted(context)
        return self.state

    def _apply(self, event):
        self.view.apply(event)
        self.poses_applied += 1
        self.last_pose = event

    @property
    def rigs(self):
        """side -> the live rig's armature object name."""
        return self.view.rigs

    def _recorded(self, context):
        """The engine ended: fit the take, or say why not (the take is kept whatever happened)."""
        run = self.run
        if run.state == "done":
            self.take = run.result_path
            self.frames = int(self._done.get("frames", 0))
            self._point_panel_at_take(context)
            if not self.fit:
                return self._end("cancelled", info=f"Recording stopped without a fit: {self.frames} frames, the take "
                                                   f"is kept in {self.take}")
            if self.frames < LIVE_MIN_FRAMES:
                return self._end("error", f"the take is too short to fit: {self.frames} frames, the fit needs at least "
                                          f"{LIVE_MIN_FRAMES}; it is kept in {self.take}")
            return self._start_fit(context)
        if run.state == "cancelled":
            kept = f"; the take is kept in {self.take}" if os.path.isfile(self.take) else ""
            return self._end("cancelled", info=f"Recording cancelled{kept}")
        if os.path.isfile(self.take):
            self._point_panel_at_take(context)
        return self._end("error", run.error)

    def _start_fit(self, context):
        p = self.capture_params
        params = jobs.CaptureParams(video=self.take, hands=p.hands, device=p.device, quality=p.quality, targets=p.targets,
                                    make_camera=p.make_camera, engine_python=p.engine_python, mano_dir=p.mano_dir,
                                    root_motion=p.root_motion, match_fps=p.match_fps, fov=p.fov, K=p.K,
                                    hand_size=p.hand_size)
        try:
            self.capture = jobs.CaptureJob(params, **({"root": self.root} if self.root else {}))
        except runner.EngineSetupError as exc:
            return self._end("error", f"{exc}; the take is kept in {self.take}")
        self.state = "fitting"
        self._point_panel_at_take(context)
        return self.state

    def _point_panel_at_take(self, context):
        s = getattr(context.scene, "hmp_capture", None)
        if s is not None and os.path.isfile(self.take):
            s.video = self.take  # Capture fits it again (or after a cancel)

    def _fitted(self, context):
        cap = self.capture
        if cap.state == "done":
            names = ", ".join(f"{i['action'].name} ({i['keys']} frames)" for i in cap.imported)
            warn = "".join(f"; {w}" for w in cap.warnings)
            self.view.drop_image()
            return self._end("done", info=f"Captured {names} from the take {self.take}{warn}")
        self.view.remove()
        if cap.state == "cancelled":
            return self._end("cancelled", info=f"Fit cancelled: the take is kept in {self.take} (Capture fits it)")
        return self._end("error", f"{cap.error}; the take is kept in {self.take}")

    def _end(self, state, error=None, info=None):
        self.state, self.error, self.info = state, error, info
        if state != "done" or error:
            self.view.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return state

    # ------------------------------------------------------------------------------ control
    def stop(self):
        """End the recording (the engine closes the take; the fit follows)."""
        if self.state == "recording" and not self.run.send("stop"):
            self.run.cancel()

    def cancel(self):
        """Recording: stop without fitting (the take is kept). Fitting: stop the fit (the take is kept)."""
        if self.state == "recording":
            self.fit = False
            self.stop()
        elif self.state == "fitting":
            self.capture.cancel()


def run_to_end(job, context, timeout=None, until=None, interval=0.02):
    """Step ``job`` until it finishes (or ``until(job)``), blocking; TimeoutError (after cancelling it)
    past ``timeout`` seconds. The modal operator steps it on a timer instead."""
    t0 = time.monotonic()
    while not (job.finished or (until is not None and until(job))):
        job.step(context)
        if job.finished or (until is not None and until(job)):
            break
        if timeout is not None and time.monotonic() - t0 > timeout:
            job.cancel()
            raise TimeoutError(f"the live capture did not finish within {timeout:.0f} s")
        time.sleep(interval)
    return job.state


_CURRENT = None


def current():
    return _CURRENT


def start(context, root=None):
    """The panel's live capture (one at a time), with the capture panel's settings for the fit."""
    global _CURRENT
    if _CURRENT is not None and not _CURRENT.finished:
        raise runner.EngineSetupError("a camera capture is already running: stop it first")
    s = context.scene.hmp_live
    params = capture_params(context)
    folder = take_folder(context, s.folder)
    _CURRENT = LiveJob(s.source, params, folder, realtime=s.realtime, seconds=s.seconds or None, root=root)
    return _CURRENT


def capture_params(context):
    """The fit's settings: the capture panel's (quality, lens, device, target...), the live panel's hands."""
    s = context.scene.hmp_live
    cap = context.scene.hmp_capture
    prefs = settings(context)
    targets = {}
    if cap.target == "EXISTING":
        for side in C.sides_of(s.hands):
            obj = getattr(cap, f"armature_{side}")
            targets[side] = obj.name if obj is not None else None
    fov = None
    if cap.lens == "FOV":
        fov = cap.fov
    elif cap.lens == "FOCAL":
        fov = jobs.fov_from_focal(cap.focal_length, cap.sensor_width)
    params = jobs.CaptureParams(video="", hands=s.hands, device=prefs.default_device if cap.device == "PREFS" else cap.device,
                                quality=cap.quality, targets=targets, make_camera=cap.make_camera,
                                engine_python=prefs.engine_python, mano_dir=prefs.mano_dir, root_motion=cap.root_motion,
                                match_fps=cap.scene_rate == "VIDEO", fov=fov, hand_size=cap.hand_size)
    for side, name in params.targets.items():
        if not name:
            raise runner.EngineSetupError(f"choose the {side} armature to bake onto (or use target 'New Hand Rig')")
        obj = bpy.data.objects.get(name)
        problem = rig.check_rig(obj) if obj is not None else f"no object called '{name}' in the scene"
        if problem:
            raise runner.EngineSetupError(problem)
    return params


def cancel_current():
    if _CURRENT is not None and not _CURRENT.finished:
        _CURRENT.cancel()


def forget():
    global _CURRENT
    _CURRENT = None
