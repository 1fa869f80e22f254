"""Render a ground-truth hand clip in Blender (bpy as a module, Cycles CPU) for `python -m engine benchmark`.

    python benchmarks/render_gt.py SCENE.npz OUT.mp4

SCENE.npz (written by engine/evaluation/benchmark): ``vertices (T,V,3)`` of the posed hand in OpenCV camera
coordinates (metres), ``faces (F,3)``, ``K (3,3)``, ``size (2,)`` width/height, ``fps``, ``skin (3,)``
and ``background (3,)`` linear RGB, and optionally ``occluder (T,3)``: the centre of a grey cylinder
passing in front of the hand (camera coordinates), ``occluder_radius``. This script runs where
bpy is installed (requirements-dev.txt); the engine itself never imports bpy.
"""

import os
import sys
import tempfile

import numpy as np


def cv_to_blender(p):
    """OpenCV camera coordinates -> Blender world, the camera at the origin with identity rotation
    (Blender cameras look down -Z with +Y up): (x, y, z) -> (x, -y, -z)."""
    p = np.asarray(p, dtype=np.float64)
    return p * np.array([1.0, -1.0, -1.0])


def main(scene_path, out_path):
    import bpy
    import cv2

    s = np.load(scene_path)
    verts, faces, K = s["vertices"], s["faces"], s["K"]
    width, height = (int(v) for v in s["size"])
    T = len(verts)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    # direct light and one diffuse bounce are all a matte hand in front of a flat background needs
    scene.cycles.max_bounces = 2
    scene.cycles.diffuse_bounces = 1
    scene.cycles.glossy_bounces = 1
    scene.cycles.transmission_bounces = 0
    scene.cycles.volume_bounces = 0
    scene.cycles.transparent_max_bounces = 0
    scene.cycles.caustics_reflective = scene.cycles.caustics_refractive = False
    scene.render.use_persistent_data = True  # keep the scene between frames (only vertices move)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"

    cam_data = bpy.data.cameras.new("cam")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = float(K[0, 0]) * 36.0 / width
    cam_data.shift_x = -(float(K[0, 2]) - width / 2) / width
    cam_data.shift_y = (float(K[1, 2]) - height / 2) / width
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam

    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs[0].default_value = (*s["background"], 1.0)
    world.node_tree.nodes["Background"].inputs[1].default_value = 1.0
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.3, -0.4, 0.2)  # from above-front
    scene.collection.objects.link(sun)

    mesh = bpy.data.meshes.new("hand")
    mesh.from_pydata(cv_to_blender(verts[0]).tolist(), [], faces.tolist())
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    hand = bpy.data.objects.new("hand", mesh)
    scene.collection.objects.link(hand)
    mat = bpy.data.materials.new("skin")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*s["skin"], 1.0)
    bsdf.inputs["Roughness"].default_value = 0.6
    mesh.materials.append(mat)

    occ = None
    if "occluder" in s.files:
        bpy.ops.mesh.primitive_cylinder_add(radius=float(s["occluder_radius"]), depth=0.6)
        occ = bpy.context.active_object
        occ.rotation_euler = (np.pi / 2, 0.0, 0.0)  # a vertical pole (its axis along the image's y)
        grey = bpy.data.materials.new("occluder")
        grey.use_nodes = True
        grey.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.25, 0.25, 0.27, 1.0)
        occ.data.materials.append(grey)

    tmp = tempfile.mkdtemp(prefix="hmp-render-")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), float(s["fps"]), (width, height))
    for t in range(T):
        mesh.vertices.foreach_set("co", cv_to_blender(verts[t]).astype(np.float32).ravel())
        mesh.update()
        if occ is not None:
            occ.location = tuple(cv_to_blender(s["occluder"][t]))
        scene.render.filepath = os.path.join(tmp, f"{t:05d}.png")
        bpy.ops.render.render(write_still=True)
        writer.write(cv2.imread(scene.render.filepath))
        print(f"rendered {t + 1}/{T}", flush=True)
    writer.release()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
