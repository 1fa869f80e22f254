"""A capture job: the engine run plus what to do with its result. Shared by the modal operator,
the blocking operator path and the headless script (no UI code here)."""

import os
import shutil
import tempfile

import bpy

from . import importer, rig, runner, session_files
from .preferences import settings


class CaptureParams:
    """What to capture, snapshotted when the capture starts (the panel may change meanwhile)."""

    def __init__(self, video, hands="right", device="auto", quality="balanced", start=None, end=None,
                 targets=None, make_camera=True, engine_python="", mano_dir="", extra_args=(), root_motion=None,
                 match_fps=True):
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
        self.extra_args = tuple(extra_args)
        self.root_motion = root_motion  # None: the engine's default
        # set the scene's frame rate to the video's, so the preview (a Movie Clip, which Blender plays
        # frame for frame) stays in sync with the keys; False: keep it (keys are time-mapped)
        self.match_fps = match_fps

    @property
    def sides(self):
        return ("right", "left") if self.hands == "both" else (self.hands,)

    @classmethod
    def from_scene(cls, context):
        s = context.scene.hmp_capture
        prefs = settings(context)
        targets = {}
        if s.target == "EXISTING":
            sides = ("right", "left") if s.hands == "both" else (s.hands,)
            for side in sides:
                obj = getattr(s, f"armature_{side}")
                targets[side] = obj.name if obj is not None else None
        return cls(
            video=bpy.path.abspath(s.video) if s.video else "",
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
        )

    def problem(self):
        """First reason this capture cannot start (one line), or None."""
        if not self.video:
            return "choose a video file first"
        if not os.path.isfile(self.video):
            return f"video not found: {self.video}"
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


class CaptureJob:
    """Runs the engine; ``step()`` polls without blocking and, once a result arrives, bakes it."""

    def __init__(self, params, root=None):
        problem = params.problem()
        if problem:
            raise runner.EngineSetupError(problem)
        self.params = params
        self.clip = os.path.splitext(os.path.basename(params.video))[0] or "clip"
        # Blender's session temp folder (removed when Blender quits): nothing piles up on disk; the
        # result and preview move beside the .blend once it is saved (session_files)
        self.workdir = tempfile.mkdtemp(prefix=session_files.TEMP_PREFIX, dir=bpy.app.tempdir or None)
        self.result_path = os.path.join(self.workdir, f"{self.clip}.npz")
        argv = runner.capture_argv(params.engine_python, params.video, self.result_path, params.hands,
                                   params.device, params.quality, params.start, params.end,
                                   params.mano_dir, params.extra_args, params.root_motion)
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
