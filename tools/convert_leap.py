"""Convert the Leap Motion recordings (Apache-2.0) into MANO hand-pose sequences for the prior.

    .venv/bin/python tools/convert_leap.py SRC [SRC ...] [--out engine/assets/prior/leap_mano.npz]

SRC: LeapJS Playback recordings (``*.json.lz``, lz-string base64 JSON, format 1 or the packed
format 2) or folders of them, e.g. leapmotion/leapjs-playback's recorder/recordings. Recordings
of one take (overlapping frame ids and timestamps: cropped, at another rate, renamed) get one
take name, that of the longest, so training keeps one of them and splits never separate them. Per recording and tracked hand: the 21 keypoints per frame (Leap gives
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
    """The recording's JSON with every frame a dict (packed format-2 files are unpacked)."""
    import lzstring

    text = Path(path).read_text()
    data = json.loads(lzstring.LZString().decompressFromBase64(text))
    frames = data.get("frames") or []
    if frames and isinstance(frames[0], list):  # LeapJS Playback format 2: frames[0] names the fields
        data["frames"] = [unpack(frames[0], fr) for fr in frames[1:] if isinstance(fr, list)]
    return data


def unpack(schema, values):
    """One packed frame -> dict. A schema item is a field name, {name: [[fields]]} (a list of
    records) or {name: [fields]} (one record)."""
    out = {}
    for key, value in zip(schema, values):
        if isinstance(key, str):
            out[key] = value
            continue
        (name, fields), = key.items()
        if fields and isinstance(fields[0], list):
            out[name] = [dict(zip(fields[0], rec)) for rec in (value or [])]
            if name == "pointables":  # some files leave out "type": Leap v2 numbers fingers handId*10+type
                for q in out[name]:
                    if "type" not in q and 0 <= q["id"] - 10 * q["handId"] <= 4:
                        q["type"] = q["id"] - 10 * q["handId"]
        else:
            out[name] = dict(zip(fields, value or []))
    return out


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


def sequences_of(data, name, take=None):
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
            out.append((f"{take or take_name(name)}@{name.replace('.json.lz', '')}/{hid}_{k}", res))
    return out


def recordings(srcs):
    """The ``*.json.lz`` files named or found (non-recursively) in the folders named."""
    files = []
    for src in map(Path, srcs):
        if src.is_dir():
            files += sorted(src.glob("*.json.lz"))
        elif src.is_file():
            files.append(src)
        else:
            raise SystemExit(f"not found: {src}")
    return files


def span(data):
    """(first, last) frame id and timestamp of a recording: the same take saved twice (cropped,
    at another rate, renamed) overlaps in both."""
    frames = [f for f in data["frames"] if isinstance(f, dict) and "id" in f]
    return (min(f["id"] for f in frames), max(f["id"] for f in frames),
            min(f["timestamp"] for f in frames), max(f["timestamp"] for f in frames))


def group_takes(spans):
    """Take name per file: files whose frame ids and timestamps overlap share the take of the
    longest one (by name order on ties); others get one of their own."""
    names = sorted(spans, key=lambda n: (-(spans[n][3] - spans[n][2]), n))
    take = {}
    for n in names:
        a = spans[n]
        for m in take:
            b = spans[m]
            if a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]:
                take[n] = take[m]
                break
        else:  # the name without its rate suffix, unless another take has it
            take[n] = take_name(n) if take_name(n) not in take.values() else n.replace(".json.lz", "")
    return take


def retake(srcs, bundle, out):
    """Rename ``take@file#...`` keys of a converted bundle by the take grouping of the recordings."""
    spans = {p.name: span(read_recording(p)) for p in recordings(srcs)}
    takes = {n.replace(".json.lz", ""): t for n, t in group_takes(spans).items()}
    with np.load(bundle) as d:
        arrays = {k: d[k] for k in d.files}
    renamed = {}
    for key, value in arrays.items():
        head, rest = key.split("#", 1)
        file = head.split("@", 1)[1]
        if file not in takes:
            print(f"dropped {key}: its recording is not among the sources")
            continue
        renamed[f"{takes[file]}@{file}#{rest}"] = value
    np.savez_compressed(out, **renamed)
    names = sorted({k.rsplit("/", 1)[0] for k in renamed})
    print(f"wrote {out}: {len(names)} sequences; takes: {sorted({n.split('@')[0] for n in names})}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="+", help="recordings (.json.lz) or folders of them")
    ap.add_argument("--out", default=str(ROOT / "engine" / "assets" / "prior" / "leap_mano.npz"))
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    ap.add_argument("--retake", default=None, metavar="BUNDLE",
                    help="no IK: rename the sequences of an existing bundle of these recordings by take "
                         "(files of one take share its name) and write it to --out")
    args = ap.parse_args()
    if args.retake:
        return retake(args.src, args.retake, args.out)

    import torch

    from engine.fit.ik import ik_from_keypoints3d
    from engine.hand_model import load_hand_model

    torch.set_num_threads(args.threads)
    model = load_hand_model("right")
    arrays = {}
    total = 0
    data = {p.name: read_recording(p) for p in recordings(args.src)}
    takes = group_takes({n: span(d) for n, d in data.items()})
    for fname, rec in data.items():
        for name, kp in sequences_of(rec, fname, takes[fname]):
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
