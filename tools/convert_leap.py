"""Convert the Leap Motion recordings (Apache-2.0) into MANO hand-pose sequences for the prior.

    .venv/bin/python tools/convert_leap.py SRC_DIR [--out engine/assets/prior/leap_mano.npz]

SRC_DIR holds the ``*.json.lz`` recordings of leapmotion/leapjs-playback (recorder/recordings;
lz-string base64 JSON). Per recording and tracked hand: the 21 keypoints per frame (Leap gives
each finger's MCP, PIP, DIP and tip, and for the thumb, whose metacarpal Leap models with zero
length, CMC (its "mcp"), MCP, IP and tip; the wrist is not given and is placed on the palm's
axis, as far behind the palm centre as the middle MCP is in front of it), in metres; linear
resampling to 30 fps on the recorded timestamps; segments split where the hand was lost for more
than 0.1 s; left hands mirrored into right ones; then batched IK on the open default hand model
(``engine.fit.ik``), one shape per segment. The output bundle is read by ``engine.prior.data``.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FPS = 30.0


def take_name(filename):
    stem = filename.replace(".json.lz", "")
    return re.sub(r"-(\d+fps|eighth-res|half-res|quarter-res)$", "", stem)


def read_recording(path):
    import lzstring

    text = Path(path).read_text()
    return json.loads(lzstring.LZString().decompressFromBase64(text))


def hand_keypoints(hand, fingers):
    """21 MediaPipe-order keypoints (m) from a Leap hand and its 5 pointables (sorted by type)."""
    p = lambda v: np.asarray(v, dtype=np.float64) / 1000.0
    palm, direction = p(hand["palmPosition"]), np.asarray(hand["direction"], dtype=np.float64)
    kp = np.zeros((21, 3))
    for f in fingers:
        t = f["type"]
        base = 1 + 4 * t
        kp[base:base + 4] = [p(f["mcpPosition"]), p(f["pipPosition"]), p(f["dipPosition"]), p(f["tipPosition"])]
    ahead = float((kp[9] - palm) @ direction)
    kp[0] = palm - direction * ahead
    return kp


def sequences_of(data, name):
    frames = data["frames"]
    by_hand = {}
    for fr in frames:
        if not isinstance(fr, dict) or not fr.get("hands"):
            continue
        t = float(fr["timestamp"]) * 1e-6
        for hand in fr["hands"]:
            fingers = sorted([q for q in fr.get("pointables", []) if q.get("handId") == hand["id"]
                              and not q.get("tool")], key=lambda q: q["type"])
            if sorted(q["type"] for q in fingers) != [0, 1, 2, 3, 4]:
                continue
            by_hand.setdefault((hand["id"], hand["type"]), []).append((t, hand_keypoints(hand, fingers)))
    out = []
    for (hid, side), items in by_hand.items():
        times = np.array([t for t, _ in items])
        kps = np.stack([k for _, k in items])
        order = np.argsort(times)
        times, kps = times[order], kps[order]
        cuts = np.flatnonzero(np.diff(times) > 0.1) + 1
        for k, (a, b) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, len(times)])):
            if times[b - 1] - times[a] < 1.0:
                continue
            grid = np.arange(times[a], times[b - 1], 1.0 / FPS)
            res = np.stack([np.stack([np.interp(grid, times[a:b], kps[a:b, j, c]) for c in range(3)], -1)
                            for j in range(21)], 1)
            if side == "left":
                res = res * np.array([-1.0, 1.0, 1.0])
            out.append((f"{take_name(name)}@{name.replace('.json.lz', '')}/{hid}_{k}", res))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("--out", default=str(ROOT / "engine" / "assets" / "prior" / "leap_mano.npz"))
    ap.add_argument("--iters", type=int, default=300)
    args = ap.parse_args()

    import torch

    from engine.fit.ik import ik_from_keypoints3d
    from engine.hand_model import load_hand_model

    torch.set_num_threads(2)
    model = load_hand_model("right")
    arrays = {}
    total = 0
    for path in sorted(Path(args.src).glob("*.json.lz")):
        for name, kp in sequences_of(read_recording(path), path.name):
            fit = ik_from_keypoints3d(model, torch.as_tensor(kp, dtype=torch.float32), iters=args.iters)
            key = name.replace("/", "#")
            arrays[f"{key}/hand_pose"] = fit["hand_pose"].numpy().astype(np.float32)
            arrays[f"{key}/global_orient"] = fit["global_orient"].numpy().astype(np.float32)
            arrays[f"{key}/fps"] = np.array(FPS)
            arrays[f"{key}/keypoints"] = kp.astype(np.float32)
            total += len(kp)
            print(f"{name}: {len(kp)} frames, IK residual {float(fit['residual'].mean()) * 1000:.1f} mm")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {total} frames at {FPS:g} fps in {len(arrays) // 4} sequences")


if __name__ == "__main__":
    main()
