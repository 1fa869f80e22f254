"""Headless bake of a batch: the results of `python -m engine batch` -> one .blend, one Action per clip.

    blender -b [scene.blend] --python scripts/headless_batch.py -- --results DIR --save OUT.blend
    python scripts/headless_batch.py --results DIR [--scene scene.blend] --save OUT.blend   # bpy module

The clips are the batch summary's finished ones (DIR/batch_summary.jsonl), or every result .npz
under DIR when there is no summary. Each clip is named by its path relative to DIR ("day1/take"),
so same-named clips from different folders stay apart. By default each clip gets its own rig per
hand (and a camera unless --no-camera) with the Action "<clip>_<side>_hand"; with --one-rig every
clip's Action goes onto one rig per hand (kept with a fake user; the last one is active).
Import and bake are the add-on's own (hmp_addon.importer.apply_result). Exit code 0 on success,
2 with one `error: ...` line otherwise (nothing saved).
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the repository root: hmp_addon and engine as top-level packages

import bpy  # noqa: E402

from engine.contract.choices import HANDS  # noqa: E402  (pure Python)
from hmp_addon import importer  # noqa: E402
from hmp_addon.headless import open_scene  # noqa: E402

SUMMARY = "batch_summary.jsonl"  # engine.commands.batch.SUMMARY_JSONL (the engine is not imported under Blender)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="headless_batch", description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="the --out folder of `python -m engine batch`")
    p.add_argument("--save", required=True, help="output .blend")
    p.add_argument("--scene", help="open this .blend first (under plain python; with blender pass it before --python)")
    p.add_argument("--hands", choices=HANDS, default="both",
                   help="hands to bake from each result (default: all it has)")
    p.add_argument("--one-rig", action="store_true", help="all clips' Actions on one rig per hand")
    p.add_argument("--no-camera", action="store_true", help="do not add a camera per clip")
    return p.parse_args(argv)


def batch_clips(folder):
    """[(clip name, result path)] of a batch's --out folder, in the summary's order."""
    if not os.path.isdir(folder):
        raise importer.ImportProblem(f"results folder not found: {folder}")
    summary = os.path.join(folder, SUMMARY)
    clips = {}
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("status") in ("ok", "skipped") and rec.get("result"):
                    clips[rec["clip"]] = os.path.join(folder, rec["result"])
                else:
                    clips.pop(rec.get("clip"), None)  # a later failed run: that result is not current
    else:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".npz") and not f.startswith("."):
                    path = os.path.join(root, f)
                    clips[os.path.relpath(path, folder)[:-4].replace(os.sep, "/")] = path
    if not clips:
        raise importer.ImportProblem(f"no finished clip results in {folder}")
    return list(clips.items())


def run(argv):
    args = parse_args(argv)
    try:
        open_scene(args.scene)
        clips = batch_clips(os.path.abspath(args.results))
        results = [(clip, importer.load(path)) for clip, path in clips]  # all validated before baking any
        context, rigs, baked = bpy.context, {}, []
        for clip, res in results:
            sides = list(res.hands) if args.hands == "both" else [args.hands]
            if args.hands != "both" and args.hands not in res.hands:
                raise importer.ImportProblem(f"{clip}: the result has no {args.hands} hand "
                                             f"(it has: {', '.join(res.hands)})")
            targets = {s: rigs[s] for s in sides if s in rigs} if args.one_rig else None
            for item in importer.apply_result(context, res, clip=clip, sides=sides, targets=targets,
                                              make_camera=not args.no_camera):
                item["action"].use_fake_user = True  # kept in the file even when not the active Action
                rigs.setdefault(item["side"], item["rig"])
                baked.append((clip, item))
        out = os.path.abspath(args.save)
        bpy.ops.wm.save_as_mainfile(filepath=out)
    except importer.ImportProblem as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    for clip, item in baked:
        print(f"{clip}: {item['side']} hand: {item['rig'].name} <- {item['action'].name} ({item['keys']} frames)",
              flush=True)
    print(f"saved {out} ({len(clips)} clips, {len(baked)} Actions)", flush=True)
    return 0


def _argv():
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


if __name__ == "__main__":
    sys.exit(run(_argv()))
