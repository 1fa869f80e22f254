"""``python -m engine benchmark``: the ground-truth video benchmark (rendered hands, real MediaPipe).

Known motion -> rendered clip -> the whole pipeline -> errors against the truth, per method:

1. motion: held-out takes of the prior's data (Leap Motion recordings the prior never trained on),
   as poses of the open default hand, placed half a metre or so in front of a camera with the
   palm or the back of the hand towards it (the hand turns as it did when recorded);
2. render: the posed default-hand mesh in Blender (bpy module, Cycles CPU, ``benchmarks/
   render_gt.py`` run as a subprocess, so the engine never imports bpy), varied skin tone,
   background and distance; half of the clips with a grey pole passing in front of the hand;
3. the pipeline on the rendered video with the true intrinsics: MediaPipe keypoints with
   per-joint confidence, the per-frame estimate, its baselines (+ SLERP over gaps, + One Euro),
   stage I and stage II;
4. PA-MPJPE, RA-MPJPE, RA-ACC (mm, engine.metrics) against the rendered hand's own 21 keypoints,
   all clips and the occlusion subset, as a table in the terminal and in a markdown file.

The truth is the same model that is fitted (no skeleton mismatch), so the figures measure the
pipeline (detection, confidence, fitting, prior), not the hand model's realism.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = ROOT / "benchmarks" / "render_gt.py"
METHODS = ("per-frame", "+ SLERP", "+ One Euro", "stage I", "stage II", "stage II, prior rotation",
           "stage II, free rotation")
# not a method: the truth itself, Gaussian-smoothed over SMOOTH_SIGMA frames, scored against the truth.
# What any temporally smooth output loses on this motion (a floor for RA-ACC on jerky recordings)
REFERENCE = "(reference: truth smoothed)"
SMOOTH_SIGMA = 2.0

# (name, palm towards the camera, skin linear RGB, background linear RGB, distance m, occluder)
CLIPS = [
    ("palm-light", True, (0.80, 0.55, 0.42), (0.35, 0.35, 0.38), 0.45, False),
    ("back-dark", False, (0.25, 0.13, 0.08), (0.15, 0.25, 0.45), 0.55, False),
    ("palm-medium-occluded", True, (0.55, 0.33, 0.20), (0.20, 0.40, 0.20), 0.50, True),
    ("back-light-occluded", False, (0.85, 0.62, 0.50), (0.50, 0.35, 0.25), 0.42, True),
]


def parser():
    from engine.cli import _Parser

    p = _Parser(prog="python -m engine benchmark", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=90, help="frames per clip (30 fps)")
    p.add_argument("--size", default="480x360", help="render size WxH")
    p.add_argument("--clips", type=int, default=len(CLIPS), help=f"how many of the {len(CLIPS)} clips")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmark_gt.md"), help="markdown table to write")
    p.add_argument("--workdir", default=None, help="keep the rendered clips here")
    p.add_argument("--device", default="auto")
    p.add_argument("--quality", choices=("draft", "balanced", "best"), default="balanced")
    return p


def held_out_motions(n, T):
    """n pose sequences of T frames (30 fps) from held-out takes, longest first; with fewer takes
    than clips, later clips take the end of a take (another stretch of motion) instead of its start;
    a take shorter than T plays forwards then backwards."""
    from engine.prior.data import load_sequences, split_by_take
    from engine.prior.train import LEAP_BUNDLE, dedupe_takes

    seqs = dedupe_takes(load_sequences([ROOT / LEAP_BUNDLE]))
    _, held = split_by_take(seqs, 0.15)
    pool = sorted((seqs[i] for i in held), key=lambda s: -len(s["hand_pose"]))
    out = []
    for k in range(n):
        s = pool[k % len(pool)]
        offset = max(0, len(s["hand_pose"]) - T) if k >= len(pool) else 0
        idx = offset + np.arange(T) % (len(s["hand_pose"]) - offset)
        if len(s["hand_pose"]) < T:  # ping-pong instead of a jump back to the start
            period = 2 * len(s["hand_pose"]) - 2
            idx = np.arange(T) % period
            idx = np.where(idx < len(s["hand_pose"]), idx, period - idx)
        out.append((s["name"], s["hand_pose"][idx], s["global_orient"][idx]))
    return out


def make_scene(model, motion, palm, distance, T, K, size):
    """Posed vertices (T,V,3) and 21 keypoints (T,21,3), camera frame, for one clip."""
    import roma
    import torch

    _, hand_pose, orient = motion
    # model frame: fingers -y, palm +x. Palm to the camera: x -> -z; back to the camera: x -> +z
    face = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]) if palm else torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
    Rl = roma.rotvec_to_rotmat(torch.as_tensor(orient, dtype=torch.float32))
    rel = Rl[:1].transpose(-1, -2) @ Rl  # the recorded turning, relative to its first frame
    go = roma.rotmat_to_rotvec(face @ rel)
    with torch.no_grad():
        out = model(go, torch.as_tensor(hand_pose, dtype=torch.float32), torch.zeros(10), torch.zeros(T, 3))
        centre = out.keypoints[:, [0, 9]].mean(1).mean(0)  # palm centre, averaged over the clip
        shift = torch.tensor([0.0, 0.0, distance]) - centre
    return (out.vertices + shift).numpy(), (out.keypoints + shift).numpy()


def render(scene_npz, video_path):
    import importlib.util

    if importlib.util.find_spec("bpy") is None:  # looked up, never imported: rendering is a subprocess
        raise EngineError("the benchmark renders with Blender: install the test requirements "
                          "(pip install -r requirements-dev.txt, which has bpy)") from None
    if not RENDER_SCRIPT.is_file():
        raise EngineError(f"{RENDER_SCRIPT} is missing (the benchmark runs from a source checkout)")
    proc = subprocess.run([sys.executable, str(RENDER_SCRIPT), str(scene_npz), str(video_path)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(video_path):
        raise EngineError(f"rendering failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")


def evaluate_clip(video_path, gt, K, model, prior, quality, device, side="right"):
    """Every method's 21 joints (T,21,3) for one rendered clip."""
    from engine.capture import QUALITY_PRESETS
    from engine.fit import baselines
    from engine.fit.init import _forward_np, per_frame_estimate
    from engine.fit.stages import FitOptions, fit_sequence
    from engine.keypoints import KeypointOptions, detect_hands
    from engine.video import open_video

    preset = QUALITY_PRESETS[quality]
    video = open_video(video_path)
    track = detect_hands(video, sides=(side,), options=KeypointOptions(views=preset["views"], use_cache=False))[side]
    detected = float(track.detected.mean())
    if not track.detected.any():
        return None, detected
    est = per_frame_estimate(model, track, K, video.fps)
    joints = {}
    for name, fn in baselines.BASELINES.items():
        b = fn(est, video.fps)
        joints[name] = _forward_np(model, b["global_orient"], b["hand_pose"], b["betas"], b["transl"])
    # "stage II" is the default (root motion "filtered": per-frame rotation, then the One Euro filter)
    for stages, name, root in ((1, "stage I", "filtered"), (2, "stage II", "filtered"),
                               (2, "stage II, prior rotation", "prior"), (2, "stage II, free rotation", "free")):
        opts = FitOptions(iters_stage1=preset["iters"][0], iters_stage2=preset["iters"][1], root_motion=root)
        out, _ = fit_sequence(model, prior, est, est["keypoints_2d"], est["confidence"], K, video.fps,
                              stages=stages, options=opts)
        joints[name] = out["joints"]
    return joints, detected


def table(rows, title):
    lines = [f"**{title}**", "", "| method | PA-MPJPE | RA-MPJPE | RA-ACC |", "|---|---|---|---|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m['PA-MPJPE']:.2f} | {m['RA-MPJPE']:.2f} | {m['RA-ACC']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    import torch
    from scipy.ndimage import gaussian_filter1d

    from engine.capture import resolve_device
    from engine.hand_model import load_hand_model
    from engine.metrics import all_metrics
    from engine.prior import load_prior
    from engine.video import guess_intrinsics

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise EngineError(f"--size must be WxH, got {args.size!r}") from None
    device = resolve_device(args.device)
    model = load_hand_model("right", device=device)
    cpu_model = load_hand_model("right")
    prior = load_prior(device=device)
    K = guess_intrinsics(width, height)
    T = args.frames
    clips = CLIPS[: max(1, min(args.clips, len(CLIPS)))]
    motions = held_out_motions(len(clips), T)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hmp-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    per_clip, preds, gts, occluded = [], {m: [] for m in METHODS + (REFERENCE,)}, [], []
    notes = []
    for (name, palm, skin, bg, dist, occ), motion in zip(clips, motions):
        t0 = time.time()
        verts, kp = make_scene(cpu_model, motion, palm, dist, T, K, (width, height))
        scene = {"vertices": verts.astype(np.float32), "faces": cpu_model.faces.numpy(), "K": K,
                 "size": np.array([width, height]), "fps": 30.0, "skin": np.array(skin), "background": np.array(bg)}
        if occ:  # a pole sweeping across in front of the hand during the middle of the clip
            centre = kp[:, 9].mean(0)
            x = np.interp(np.arange(T), [0, T - 1], [-0.25, 0.25])
            scene["occluder"] = np.stack([centre[0] + x, np.full(T, centre[1]), np.full(T, centre[2] - 0.12)], -1)
            scene["occluder_radius"] = 0.025
        np.savez(work / f"{name}.npz", **scene)
        render(work / f"{name}.npz", work / f"{name}.mp4")
        t_render = time.time() - t0
        joints, detected = evaluate_clip(work / f"{name}.mp4", kp, K, model, prior, args.quality, device)
        ra = kp - kp[:, :1]
        jerk = 1000 * np.linalg.norm(ra[2:] - 2 * ra[1:-1] + ra[:-2], axis=-1).mean()
        print(f"{name}: motion {motion[0]}, rendered in {t_render:.0f} s, hand detected in {detected:.0%} of frames",
              flush=True)
        notes.append(f"- {name}: {motion[0]}, the truth's own root-aligned acceleration {jerk:.2f} mm/frame^2")
        if joints is None:
            continue
        joints[REFERENCE] = gaussian_filter1d(kp, SMOOTH_SIGMA, axis=0, mode="nearest")
        for m in METHODS + (REFERENCE,):
            preds[m].append(joints[m])
        gts.append(kp)
        occluded.append(occ)
        per_clip.append((name, {m: all_metrics(joints[m], kp) for m in METHODS + (REFERENCE,)}))
    if not gts:
        raise EngineError("MediaPipe found no hand in any rendered clip")

    def summary(mask):
        return {m: {k: float(np.mean([all_metrics(p, g)[k] for p, g, use in zip(preds[m], gts, mask) if use]))
                    for k in ("PA-MPJPE", "RA-MPJPE", "RA-ACC")} for m in METHODS + (REFERENCE,)}

    parts = [f"Rendered ground-truth benchmark: {len(gts)} clips of {T} frames at {width}x{height}, "
             f"quality {args.quality}, device {device}, torch {torch.__version__}. Errors in mm (RA-ACC in "
             "mm/frame^2), mean over clips. The last row is not a method: the truth smoothed over "
             f"{SMOOTH_SIGMA:g} frames (Gaussian), scored against the truth: what temporal smoothing alone costs on "
             "this motion.", "", *notes, "", table(summary([True] * len(gts)), "All clips")]
    if any(occluded):
        parts += ["", table(summary(occluded), "Occlusion subset")]
    for name, rows in per_clip:
        parts += ["", table(rows, name)]
    text = "\n".join(parts) + "\n"
    print("\n" + text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"written to {args.out}")
    return 0
