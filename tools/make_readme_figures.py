"""Pictures for the README, from the demo's own output (run `bash scripts/demo.sh` first).

    .venv/bin/python tools/make_readme_figures.py [--frame 400] [--out docs/img]

Writes, from output/demo/result.npz and the bundled clip:

- ``demo_overlay.jpg``: a video frame beside the same frame with the baked hand rig's skinned mesh,
  rendered in Blender (bpy module, Cycles CPU, transparent film) through the capture's own camera and
  laid over the video: what the add-on puts in the scene, lined up with the footage;
- ``demo_smoothness.png``: the index fingertip and the hand's global rotation over the clip, per-frame
  estimate (``--stages 0``, the detection comes from the cache) against the default two-stage fit.

A developer tool (it imports bpy, which the engine never does); the pictures are committed small.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def render_rig(result_path, frame, out_png, scale=0.6, samples=24):
    """The baked rig's mesh at video frame ``frame`` through the capture camera, transparent film."""
    import bpy

    import hmp_addon
    from hmp_addon import importer

    bpy.ops.wm.read_factory_settings(use_empty=True)
    hmp_addon.register()
    try:
        res = importer.load(str(result_path))
        scene = bpy.context.scene
        scene.render.fps = int(round(res.fps))
        importer.apply_result(bpy.context, res, clip="demo", make_camera=True)
        skin = bpy.data.materials.new("skin")
        skin.use_nodes = True
        bsdf = skin.node_tree.nodes.get("Principled BSDF")
        bsdf.inputs["Base Color"].default_value = (0.80, 0.55, 0.45, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.6
        for obj in bpy.data.objects:
            if obj.type == "MESH":
                obj.data.materials.clear()
                obj.data.materials.append(skin)
                obj.data.polygons.foreach_set("use_smooth", [True] * len(obj.data.polygons))
        sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
        sun.data.energy = 2.5
        sun.rotation_euler = (1.35, 0.0, 0.25)  # from just above and beside the camera (which looks along +Y)
        scene.collection.objects.link(sun)
        world = bpy.data.worlds.new("world")
        world.use_nodes = True
        world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.8
        scene.world = world
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.render.film_transparent = True
        scene.render.resolution_percentage = int(100 * scale)
        t = int(np.flatnonzero(np.asarray(res["frame_ids"]) == frame)[0])
        scene.frame_set(scene.frame_start + t)  # the result's frame t is baked at frame_start + t (same fps)
        scene.render.filepath = str(out_png)
        bpy.ops.render.render(write_still=True)
    finally:
        hmp_addon.unregister()


def video_frame(video_path, frame):
    import cv2

    cap = cv2.VideoCapture(str(video_path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read frame {frame} of {video_path}")
    return bgr


def overlay_figure(video_path, rig_png, frame, out_jpg):
    import cv2

    bgr = video_frame(video_path, frame)
    rgba = cv2.imread(str(rig_png), cv2.IMREAD_UNCHANGED)
    small = cv2.resize(bgr, (rgba.shape[1], rgba.shape[0]), interpolation=cv2.INTER_AREA)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    comp = (rgba[..., :3].astype(np.float32) * alpha + small.astype(np.float32) * (1 - alpha)).astype(np.uint8)
    # the hand's region, side by side: video | video + baked rig
    ys, xs = np.nonzero(rgba[..., 3] > 10)
    pad = 40
    y0, y1 = max(0, ys.min() - pad), min(comp.shape[0], ys.max() + pad)
    x0, x1 = max(0, xs.min() - pad), min(comp.shape[1], xs.max() + pad)
    pair = np.concatenate([small[y0:y1, x0:x1], np.full((y1 - y0, 6, 3), 255, np.uint8), comp[y0:y1, x0:x1]], 1)
    cv2.imwrite(str(out_jpg), pair, [cv2.IMWRITE_JPEG_QUALITY, 85])


def smoothness_figure(per_frame_path, fitted_path, out_png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.contract import result as R

    a, b = R.read(per_frame_path), R.read(fitted_path)
    side = next(s for s in b.hands if s in a.hands)
    ha, hb = a.hands[side], b.hands[side]
    t = np.asarray(b["frame_ids"]) / b.fps
    tip_a = (ha["joints"][:, 8] - ha["joints"][:, 0]) * 1000  # index tip relative to the wrist, mm
    tip_b = (hb["joints"][:, 8] - hb["joints"][:, 0]) * 1000

    def angle(rv):
        return np.degrees(np.linalg.norm(rv, axis=-1))

    fig, axes = plt.subplots(2, 1, figsize=(8, 4.2), sharex=True)
    axes[0].plot(t, tip_a[:, 1], lw=0.8, color="#c0392b", label="per-frame estimate")
    axes[0].plot(t, tip_b[:, 1], lw=1.4, color="#1f4e79", label="HMP fit (stages I + II)")
    axes[0].set_ylabel("index tip,\nrel. wrist y (mm)")
    axes[0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    axes[1].plot(t, angle(ha["global_orient"]), lw=0.8, color="#c0392b")
    axes[1].plot(t, angle(hb["global_orient"]), lw=1.4, color="#1f4e79")
    axes[1].set_ylabel("hand rotation\nangle (deg)")
    axes[1].set_xlabel("time (s), demo clip")
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--result", default=str(ROOT / "output" / "demo" / "result.npz"))
    ap.add_argument("--video", default=str(ROOT / "demo" / "human_hand_video.mp4"))
    ap.add_argument("--frame", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args(argv)
    if not Path(args.result).is_file():
        raise SystemExit(f"{args.result} not found: run `bash scripts/demo.sh` first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rig_png = Path(tmp) / "rig.png"
        render_rig(args.result, args.frame, rig_png)
        overlay_figure(args.video, rig_png, args.frame, out / "demo_overlay.jpg")
        per_frame = Path(tmp) / "per_frame.npz"
        subprocess.run([sys.executable, "-m", "engine", "capture", args.video, "--out", str(per_frame),
                        "--stages", "0", "--progress", "quiet"], cwd=ROOT, check=True)
        smoothness_figure(per_frame, args.result, out / "demo_smoothness.png")
    print(f"written: {out / 'demo_overlay.jpg'}, {out / 'demo_smoothness.png'}")


if __name__ == "__main__":
    main()
