"""The live view of a camera capture: the take's hand rig(s), built from the model's rest skeleton
(``rig.ensure_hand_rig``, named and tagged as the capture of the take will name them, so the bake
rebuilds this very rig in place), posed from the engine's ``pose`` events, and a camera matching the
image whose background is the newest camera frame (also shown in any open Image editor). Removed
when the take is not baked (a failed or cancelled fit leaves the scene as it was)."""

import os

import bpy
import numpy as np

from . import importer, poses, rig
from .engine_link import result as R

IMAGE_NAME = "HMP Live Camera"


class LiveView:
    """The live rig(s) (``rigs``: side -> armature object name), the camera (``camera``: its object name)
    and the image of the newest frame the engine writes to ``frame_image``."""

    def __init__(self, frame_image):
        self.frame_image = frame_image
        self.rigs = {}  # side -> armature object name
        self.camera = None  # camera object name
        self.rest_frames = {}
        self._image_mtime = None

    def setup(self, context, event, make_camera=True):
        """The live rig(s) and camera, named and tagged as the capture of this take will name them."""
        video = os.path.abspath(event["take"])
        clip = importer.video_stem(video)
        for side, info in event.get("hands", {}).items():
            # the model at rest as a one-frame result hand: the rig's bones and fingertips as the bake's
            hand = R.HandResult({"rest_joints": np.asarray(info["rest_joints"], np.float64), "valid": np.ones(1, bool),
                                 "global_orient": np.zeros((1, 3)), "hand_pose": np.zeros((1, 45)),
                                 "joints": np.asarray(info["rest_keypoints"], np.float64)[None]})
            obj = rig.ensure_hand_rig(context, clip, side, hand)
            obj[importer.VIDEO_TAG] = video
            for pb in obj.pose.bones:
                pb.rotation_mode = "QUATERNION"
            self.rigs[side] = obj.name
            self.rest_frames[side] = rig.rest_frames(obj)
        if make_camera:
            cam = rig.ensure_camera(context, clip, np.asarray(event["K"]), (int(event["width"]), int(event["height"])))
            cam[importer.VIDEO_TAG] = video
            self.camera = cam.name

    def apply(self, event):
        """Pose the rig(s) with a ``pose`` event (pose-bone quaternions, as the bake computes them)."""
        for side, hand in event["hands"].items():
            obj = bpy.data.objects.get(self.rigs.get(side, ""))
            if obj is None:
                continue
            quats, root = poses.bone_channels(np.array([hand["global_orient"]]), np.array([hand["hand_pose"]]),
                                              np.array([hand["transl"]]), self.rest_frames[side])
            for j, name in enumerate(rig.BONE_NAMES):
                obj.pose.bones[name].rotation_quaternion = quats[0, j]
            obj.pose.bones[rig.BONE_NAMES[0]].location = root[0]

    def refresh_image(self):
        """The newest camera frame into the image behind the live camera (and in open Image editors)."""
        try:
            mtime = os.stat(self.frame_image).st_mtime_ns
        except OSError:
            return
        if mtime == self._image_mtime:
            return
        self._image_mtime = mtime
        image = bpy.data.images.get(IMAGE_NAME)
        if image is None:
            image = bpy.data.images.load(self.frame_image, check_existing=False)
            image.name = IMAGE_NAME
            self._show_image(image)
        else:
            if bpy.path.abspath(image.filepath) != self.frame_image:
                image.filepath = self.frame_image
            image.reload()

    def _show_image(self, image):
        cam = bpy.data.objects.get(self.camera or "")
        if cam is not None:
            cam.data.show_background_images = True
            bg = next((b for b in cam.data.background_images if b.source == "IMAGE" and b.image == image), None)
            if bg is None:
                bg = cam.data.background_images.new()
            bg.source, bg.image, bg.alpha = "IMAGE", image, 1.0
        for window in getattr(bpy.context.window_manager, "windows", ()):
            for area in window.screen.areas:
                if area.type == "IMAGE_EDITOR":
                    area.spaces.active.image = image

    def drop_image(self):
        image = bpy.data.images.get(IMAGE_NAME)
        if image is None:
            return
        cam = bpy.data.objects.get(self.camera or "")
        if cam is not None:
            for bg in list(cam.data.background_images):
                if bg.source == "IMAGE" and bg.image == image:
                    cam.data.background_images.remove(bg)
        bpy.data.images.remove(image)

    def remove(self):
        """The live rig(s) and camera without a bake: gone (a failed or cancelled fit leaves the scene as it was)."""
        self.drop_image()
        for name in list(self.rigs.values()) + [self.camera or ""]:
            obj = bpy.data.objects.get(name)
            if obj is None or (obj.animation_data is not None and obj.animation_data.action is not None):
                continue  # baked (an earlier take of the same name): not ours to remove
            data = obj.data
            bpy.data.objects.remove(obj)
            if data is not None and data.users == 0:
                (bpy.data.armatures if isinstance(data, bpy.types.Armature) else bpy.data.cameras).remove(data)
        self.rigs, self.camera = {}, None
