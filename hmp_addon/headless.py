"""Capture + bake without a UI: `blender -b [scene.blend] --python scripts/headless_capture.py -- ...`
or `python scripts/headless_capture.py ...` with the bpy module. Same job and bake as the panel."""

import argparse
import importlib
import os
import sys

import bpy

from . import importer, jobs, runner, session_files
from .engine_link import choices as C
from .settings import settings


def parse_args(argv):
    p = argparse.ArgumentParser(prog="headless_capture",
                                description="Capture hands from a video into keyframed hand rigs, then save a .blend")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="video of the hands (runs the engine)")
    src.add_argument("--result", help="bake an existing result .npz instead of running the engine")
    p.add_argument("--save", required=True, help="output .blend")
    p.add_argument("--scene", help="open this .blend first (under plain python; with blender pass it before --python)")
    p.add_argument("--armature", help="bake the (first) hand onto this existing armature (MANO bone names)")
    p.add_argument("--armature-left", help="with --hands both: the armature for the left hand")
    p.add_argument("--hands", choices=C.HANDS, default=C.DEFAULT_HANDS)
    p.add_argument("--device", choices=C.DEVICES, default=None,
                   help="default: the add-on's preference when the extension is installed, else auto")
    p.add_argument("--quality", choices=C.QUALITIES, default=C.DEFAULT_QUALITY)
    p.add_argument("--start", type=int, help="first video frame")
    p.add_argument("--end", type=int, help="video frame after the last one")
    lens = p.add_mutually_exclusive_group()
    lens.add_argument("--fov", type=float, help="horizontal field of view of the video camera, degrees")
    lens.add_argument("--focal-mm", type=float, help="lens focal length in mm (with --sensor-mm)")
    lens.add_argument("--K", help="intrinsics fx,fy,cx,cy in pixels")
    p.add_argument("--sensor-mm", type=float, default=36.0, help="sensor width in mm for --focal-mm (default 36)")
    p.add_argument("--engine-python", default=None,
                   help="python of the engine environment (default: the add-on's Engine Python preference when "
                        "the extension is installed, else $HMP_ENGINE_PYTHON, else the project's .venv)")
    p.add_argument("--mano-dir", default=None,
                   help="default: the add-on's preference, else $HMP_MANO_DIR")
    p.add_argument("--root-motion", choices=C.ROOT_MOTIONS, default=C.DEFAULT_ROOT_MOTION,
                   help="the hand's global rotation: per frame then filtered (default), through the motion "
                        "prior, or per frame unfiltered")
    p.add_argument("--hand-size", type=float, default=None, metavar="MM",
                   help="the hand's length from the wrist to the middle finger's knuckle, mm (default: the hand "
                        "model's own)")
    p.add_argument("--no-camera", action="store_true", help="do not add a camera matching the video")
    p.add_argument("--keep-scene-fps", action="store_true",
                   help="keep the scene's frame rate (default: set it to the video's, so the preview stays in sync)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    return p.parse_args(argv)


def _targets(args, sides):
    names = {}
    if args.armature:
        names[sides[0]] = args.armature
    if args.armature_left:
        names["left"] = args.armature_left
    for name in names.values():
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise importer.ImportProblem(f"no object called '{name}' in the scene")
    return names


def _lens(args):
    """(fov, K, description) from --fov / --focal-mm / --K, else the video's Movie Clip's camera data
    in the scene (when set), else (None, None, ""): the engine estimates."""
    if args.fov is not None:
        return args.fov, None, f"field of view {args.fov:g} degrees"
    if args.focal_mm is not None:
        if args.focal_mm <= 0 or args.sensor_mm <= 0:
            raise importer.ImportProblem("--focal-mm and --sensor-mm must be positive")
        return jobs.fov_from_focal(args.focal_mm, args.sensor_mm), None, f"focal length {args.focal_mm:g} mm"
    if args.K is not None:
        try:
            K = tuple(float(v) for v in args.K.split(","))
        except ValueError:
            K = ()
        if len(K) != 4:
            raise importer.ImportProblem(f"--K must be fx,fy,cx,cy (got {args.K!r})")
        return None, K, "--K"
    found = jobs.clip_intrinsics(os.path.abspath(args.video))
    return (None, found[0], found[1]) if found else (None, None, "")


def _progress_printer():
    """on_step for jobs.run_to_end: prints "<stage message> <percent>%" to stderr when it changes."""
    last = [""]

    def show(job):
        line = f"{job.message} {100 * job.fraction:.0f}%"
        if line != last[0]:
            print(line, file=sys.stderr, flush=True)
            last[0] = line

    return show


def open_scene(path):
    """Open the .blend ``path`` when given (ImportProblem when it does not exist); else keep the scene."""
    if path:
        if not os.path.isfile(path):
            raise importer.ImportProblem(f"scene not found: {path}")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path))


def run(argv):
    """Returns the process exit code (0 ok, 2 user-facing error). Prints one line per problem."""
    args = parse_args(argv)
    try:
        open_scene(args.scene)
        context = bpy.context
        if not hasattr(bpy.types.Scene, "hmp_retarget"):
            # not registered (plain python + bpy, or blender without the extension): register, so the
            # saved scene has the panels' settings (the result path for Retarget, the video)
            importlib.import_module(__package__).register()
        prefs = settings(context)  # the installed extension's preferences when there are some
        engine_python = args.engine_python or prefs.engine_python
        mano_dir = args.mano_dir if args.mano_dir is not None else prefs.mano_dir
        device = args.device or prefs.default_device
        if args.result:
            res = importer.load(args.result)
            sides = list(res.hands) if args.hands == "both" else [args.hands]
            targets = {s: bpy.data.objects[n] for s, n in _targets(args, sides).items()}
            imported = importer.apply_result(context, res, sides=sides, targets=targets,
                                             make_camera=not args.no_camera)
            context.scene.hmp_retarget.result = os.path.abspath(args.result)  # ready to retarget
        else:
            sides = list(C.sides_of(args.hands))
            fov, K, source = _lens(args)
            params = jobs.CaptureParams(
                video=os.path.abspath(args.video), hands=args.hands, device=device, quality=args.quality,
                start=args.start, end=args.end, targets=_targets(args, sides), make_camera=not args.no_camera,
                engine_python=engine_python, mano_dir=mano_dir,
                root_motion=args.root_motion, match_fps=not args.keep_scene_fps, fov=fov, K=K,
                hand_size=args.hand_size)
            params.camera_source = source
            job = jobs.CaptureJob(params)
            try:
                jobs.run_to_end(job, context, timeout=args.timeout or None, on_step=_progress_printer())
            except TimeoutError as exc:
                raise importer.ImportProblem(str(exc)) from None
            except KeyboardInterrupt:
                job.cancel()
                raise importer.ImportProblem("interrupted: nothing saved") from None
            if job.state != "done":
                raise importer.ImportProblem(job.error or job.state)
            imported = job.imported
            for note in job.notes:
                print(f"note: {note}", file=sys.stderr, flush=True)
            for warning in job.warnings:
                print(f"warning: {warning}", file=sys.stderr, flush=True)
        out = os.path.abspath(args.save)
        # the overlay video and the result go beside the .blend (hand_capture/)
        session_files.keep_with_blend(out, extra=[] if args.result else [job.result_path])
        bpy.ops.wm.save_as_mainfile(filepath=out)
    except (importer.ImportProblem, runner.EngineSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    for item in imported:
        print(f"{item['side']} hand: {item['rig'].name} <- {item['action'].name} ({item['keys']} frames)", flush=True)
    print(f"saved {out}", flush=True)
    return 0
