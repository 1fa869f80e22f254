"""A capture job: the engine run plus what to do with its result. Shared by the modal operator,
the blocking operator path and the headless script (no UI code here)."""

import math
import os
import shutil
import tempfile
import time

import bpy

from . import importer, rig, runner, session_files
from .engine_link import choices as C
from .settings import settings


class CaptureParams:
    """What to capture, snapshotted when the capture starts (the panel may change meanwhile)."""

    def __init__(self, video: str, hands: str = C.DEFAULT_HANDS, device: str = C.DEFAULT_DEVICE,
                 quality: str = C.DEFAULT_QUALITY,
                 start: int | None = None, end: int | None = None, targets: dict | None = None,
                 make_camera: bool = True, engine_python: str = "", mano_dir: str = "", root_motion: str | None = None,
                 match_fps: bool = True, fov: float | None = None, K=None, hand_size: float | None = None):
        self.video = video
        self.hands = hands
        self.device = device
        self.quality = quality
        self.start = start
        self.end = end
        self.targets = dict(targets or {})  # side -> armature object NAME (checked again at the end)
        self.make_camera = make_camera
        self.engine_python = engine_python
        self.mano_dir = mano_dir
        self.root_motion = root_motion  # None: the engine's default
        # set the scene's frame rate to the video's, so the preview (a Movie Clip, which Blender plays
        # frame for frame) stays in sync with the keys; False: keep it (keys are time-mapped)
        self.match_fps = match_fps
        self.fov = fov  # horizontal field of view (degrees), or None
        self.K = tuple(K) if K is not None else None  # (fx, fy, cx, cy) pixels, or None: the engine estimates
        self.camera_source = ""  # where fov/K came from, for the report
        self.hand_size = hand_size or None  # mm, wrist to middle-finger knuckle; None (or 0): the model's own

    @property
    def sides(self):
        return C.sides_of(self.hands)

    @classmethod
    def from_scene(cls, context):
        s = context.scene.hmp_capture
        prefs = settings(context)
        targets = {}
        if s.target == "EXISTING":
            for side in C.sides_of(s.hands):
                obj = getattr(s, f"armature_{side}")
                targets[side] = obj.name if obj is not None else None
        video = bpy.path.abspath(s.video) if s.video else ""
        fov = K = None
        source = ""
        if s.lens == "FOV":
            fov, source = s.fov, f"field of view {s.fov:.4g} degrees"
        elif s.lens == "FOCAL":
            fov = fov_from_focal(s.focal_length, s.sensor_width)
            source = f"focal length {s.focal_length:.4g} mm on a {s.sensor_width:.4g} mm sensor"
        else:  # AUTO: the video's Movie Clip when its camera data was set (or solved), else the engine
            found = clip_intrinsics(video)
            if found is not None:
                K, source = found
        params = cls(
            video=video,
            hands=s.hands,
            device=prefs.default_device if s.device == "PREFS" else s.device,
            quality=s.quality,
            start=s.range_start if s.use_range else None,
            end=s.range_end if s.use_range else None,
            targets=targets,
            make_camera=s.make_camera,
            engine_python=prefs.engine_python,
            mano_dir=prefs.mano_dir,
            root_motion=s.root_motion,
            match_fps=s.scene_rate == "VIDEO",
            fov=fov,
            K=K,
            hand_size=s.hand_size,
        )
        params.camera_source = source
        return params

    def problem(self):
        """First reason this capture cannot start (one line), or None."""
        if not self.video:
            return "choose a video file first"
        if not os.path.isfile(self.video):
            return f"video not found: {self.video}"
        if self.fov is not None and not 1.0 <= float(self.fov) <= 170.0:  # the engine's --fov range
            return f"field of view must be between 1 and 170 degrees (got {self.fov:g})"
        if self.K is not None and (len(self.K) != 4 or not all(math.isfinite(v) for v in self.K)
                                   or self.K[0] <= 0 or self.K[1] <= 0):
            return f"intrinsics must be fx, fy, cx, cy with positive focal lengths (got {self.K})"
        low, high = C.HAND_SIZE_MM
        if self.hand_size is not None and not low <= float(self.hand_size) <= high:  # the engine's --hand-size range
            return f"hand size must be 0 (the model's own) or from {low:g} to {high:g} mm (got {self.hand_size:g})"
        if self.start is not None and self.end is not None and self.end <= self.start:
            return f"empty frame range: end ({self.end}) must be after start ({self.start})"
        for side, name in self.targets.items():
            if not name:
                return f"choose the {side} armature to bake onto (or use target 'New Hand Rig')"
            obj = bpy.data.objects.get(name)
            if obj is None:
                return f"no object called '{name}' in the scene"
            # the bake needs MANO bone names: say so now, not after the whole engine run
            problem = rig.check_rig(obj)
            if problem:
                return problem
        try:
            runner.check_engine_python(self.engine_python)
        except runner.EngineSetupError as exc:
            return str(exc)
        return None


def fov_from_focal(focal_mm, sensor_mm):
    """Horizontal field of view (degrees) of a lens on a sensor of that width."""
    return math.degrees(2.0 * math.atan(0.5 * sensor_mm / focal_mm))


# a Movie Clip's tracking camera as Blender makes it: the user has not set it while it reads so
_CLIP_CAMERA_DEFAULT = {"focal_length": 24.0, "sensor_width": 35.0}


def clip_intrinsics(video):
    """((fx, fy, cx, cy) pixels, description) from the camera data of a Movie Clip of ``video`` (Movie
    Clip editor > Track > Camera: focal length, sensor, optical centre; or a solved camera), or None
    when there is no such clip or its camera is Blender's default. OpenCV pixels: y down from the top
    (Blender's optical centre counts from the bottom)."""
    if not video:
        return None
    for clip in bpy.data.movieclips:
        try:
            same = os.path.samefile(bpy.path.abspath(clip.filepath, library=clip.library), video)
        except OSError:
            same = False
        if not same:
            continue
        cam = clip.tracking.camera
        solved = clip.tracking.reconstruction.is_valid
        edited = (abs(cam.focal_length - _CLIP_CAMERA_DEFAULT["focal_length"]) > 1e-4
                  or abs(cam.sensor_width - _CLIP_CAMERA_DEFAULT["sensor_width"]) > 1e-4
                  or any(abs(v) > 1e-6 for v in cam.principal_point))
        if not (solved or edited) or clip.size[0] <= 0:
            continue
        width, height = clip.size[0], clip.size[1]
        fx = float(cam.focal_length_pixels)
        cx, cy = float(cam.principal_point_pixels[0]), height - float(cam.principal_point_pixels[1])
        return (fx, fx * float(cam.pixel_aspect), cx, cy), (
            f"the Movie Clip '{clip.name}' camera ({cam.focal_length:.4g} mm on {cam.sensor_width:.4g} mm, "
            f"{width}x{height})")
    return None


class CaptureJob:
    """Runs the engine; ``step()`` polls without blocking and, once a result arrives, bakes it."""

    def __init__(self, params, root=None):
        problem = params.problem()
        if problem:
            raise runner.EngineSetupError(problem)
        self.params = params
        self.clip = importer.video_stem(params.video)
        # Blender's session temp folder (removed when Blender quits): nothing piles up on disk; the
        # result and preview move beside the .blend once it is saved (session_files)
        self.workdir = tempfile.mkdtemp(prefix=session_files.TEMP_PREFIX, dir=bpy.app.tempdir or None)
        self.result_path = os.path.join(self.workdir, f"{self.clip}.npz")
        argv = runner.capture_argv(params.engine_python, params.video, self.result_path, params.hands,
                                   params.device, params.quality, params.start, params.end, mano_dir=params.mano_dir,
                                   root_motion=params.root_motion, fov=params.fov, K=params.K,
                                   hand_size=params.hand_size)
        self.preview_path = os.path.join(self.workdir, f"{self.clip}.preview.mp4")
        argv += ["--preview", self.preview_path]  # the overlay video, shown behind the capture camera
        kwargs = {"root": root} if root else {}
        try:
            self.run = runner.EngineRun(argv, **kwargs)
        except runner.EngineSetupError:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.state = "running"  # -> "done" | "error" | "cancelled"
        self.error = None
        self.imported = []  # apply_result's output once done
        self.warnings = []
        self.notes = []  # what the capture changed besides its own data (reported, not warnings)
        if params.camera_source:
            self.notes.append(f"camera: {params.camera_source}")

    @property
    def finished(self):
        return self.state != "running"

    @property
    def fraction(self):
        return self.run.fraction

    @property
    def message(self):
        return self.run.message

    def step(self, context):
        """Poll the engine once; on success read, check and bake the result. Returns the state."""
        if self.finished:
            return self.state
        self.run.poll()
        if self.run.state == "running":
            return self.state
        if self.run.state == "cancelled":
            return self._end("cancelled")
        if self.run.state == "error":
            return self._end("error", self.run.error)
        try:
            res = importer.load(self.run.result_path)
            targets = {}
            for side, name in self.params.targets.items():
                obj = bpy.data.objects.get(name)
                if obj is None:
                    raise importer.ImportProblem(f"the target armature '{name}' was deleted during the capture")
                targets[side] = obj
            # "both" on a clip where one hand never shows: bake the hand that was found, and say so
            sides = [side for side in self.params.sides if side in res.hands]
            if not sides:
                raise importer.ImportProblem(f"the engine found no {' or '.join(self.params.sides)} hand in the video")
            self.warnings = [f"no {side} hand found in the video" for side in self.params.sides if side not in sides]
            targets = {side: obj for side, obj in targets.items() if side in sides}
            scene = context.scene
            if self.params.match_fps and importer.set_scene_fps(scene, res.fps):
                self.notes.append(f"scene frame rate set to the video's, {importer.scene_fps(scene):.5g} fps")
            elif abs(importer.scene_fps(scene) - res.fps) > 1e-3 * res.fps and self.params.make_camera:
                self.warnings.append(
                    f"the preview video plays frame for frame at {res.fps:.5g} fps while this scene runs at "
                    f"{importer.scene_fps(scene):.5g} fps: it drifts from the keys (which are time-mapped); "
                    "capture with 'Scene Rate: Video's' to keep them in sync")
            self.imported = importer.apply_result(context, res, clip=self.clip, sides=sides,
                                                  targets=targets, make_camera=self.params.make_camera)
        except importer.ImportProblem as exc:
            return self._end("error", str(exc))
        take = self.imported[0]["take"]  # the clip's stem, made unique against other takes
        self.result_path = self.run.result_path
        if take != self.clip:  # its files too: hand_capture/ beside the .blend keeps every take's
            self.result_path = self._rename(self.run.result_path, f"{take}.npz")
            self.preview_path = self._rename(self.preview_path, f"{take}.preview.mp4")
        retarget_settings = getattr(context.scene, "hmp_retarget", None)
        if retarget_settings is not None:  # ready to retarget this capture onto a character
            retarget_settings.result = self.result_path
        if self.params.make_camera and os.path.isfile(self.preview_path):
            from . import preview

            try:
                preview.load_preview(context, self.preview_path, camera=bpy.data.objects.get(f"{take}_camera"))
            except (ValueError, RuntimeError, FileNotFoundError) as exc:
                self.warnings.append(f"preview not shown: {exc}")
        if bpy.data.filepath:  # a saved scene: keep the result and preview with it now
            moved = session_files.keep_with_blend(bpy.data.filepath)
            self.result_path = moved.get(os.path.abspath(self.result_path), self.result_path)
        self.state = "done"
        return self.state

    @staticmethod
    def _rename(path, name):
        """Rename a file of the job's folder (kept where it is when that fails)."""
        new = os.path.join(os.path.dirname(path), name)
        try:
            os.replace(path, new)
        except OSError:
            return path
        return new

    def _end(self, state, error=None):
        self.state, self.error = state, error
        shutil.rmtree(self.workdir, ignore_errors=True)  # cancelled/failed: leave nothing behind
        return state

    def cancel(self):
        if not self.finished:
            self.run.cancel()
            self._end("cancelled")


def run_to_end(job: CaptureJob, context, timeout: float | None = None, on_step=None, interval: float = 0.05,
               until=None) -> str:
    """Step ``job`` until it finishes, blocking (the blocking operator path and the headless script;
    the modal operator steps it on a timer instead). on_step(job) is called after each step.
    until(job): stop stepping as soon as it is true, too (the job keeps running: e.g. once the engine
    reports its first stage). timeout (seconds): cancel the job and raise TimeoutError when it has
    not finished (nor met ``until``) by then. Returns the job's state."""

    def done():
        return job.finished or (until is not None and bool(until(job)))

    t0 = time.monotonic()
    while not done():
        job.step(context)
        if on_step is not None:
            on_step(job)
        if done():
            break
        if timeout is not None and time.monotonic() - t0 > timeout:
            job.cancel()
            raise TimeoutError(f"capture did not finish within {timeout:.0f} s")
        time.sleep(interval)
    return job.state


_CURRENT = None  # the one capture job of this Blender session


def current():
    return _CURRENT


def start(params, root=None):
    """Start the session's capture job (one at a time)."""
    global _CURRENT
    if _CURRENT is not None and not _CURRENT.finished:
        raise runner.EngineSetupError("a capture is already running: wait for it or cancel it")
    _CURRENT = CaptureJob(params, root=root)
    return _CURRENT


def cancel_current():
    if _CURRENT is not None:
        _CURRENT.cancel()


def forget():
    global _CURRENT
    _CURRENT = None
