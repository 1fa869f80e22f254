"""``python -m engine evaluate --dataset ho3d-v3|dexycb --root DIR``: the paper's table on public data.

Reads each dataset in its own layout and annotation format, runs the whole pipeline on every
sequence (frames -> a temporary video -> keypoints, per-frame estimate, baselines, stage I, stage II,
with the dataset's intrinsics) and reports PA-MPJPE, RA-MPJPE, RA-ACC (mm) per method, averaged over
sequences (engine.evaluation.metrics; joints compared in camera coordinates, MediaPipe order).

HO3D-v3 (``ROOT/train/<seq>/rgb/NNNN.jpg`` + ``meta/NNNN.pkl``): per frame a pickled dict with
``handJoints3D`` (21,3) in HO3D's OpenGL camera frame (y up, z towards the viewer: converted with
diag(1,-1,-1)), joints in HO3D's order (the 16 MANO joints then the tips thumb, index, middle,
ring, little), ``camMat`` (3,3). Only sequences with full 3D joints are scored (the official
evaluation split hides them: submit those to the challenge server). The pickles are read with a
restricted unpickler that only builds numpy arrays and plain containers.

DexYCB (``ROOT/<subject>/<sequence>/<serial>/color_NNNNNN.jpg`` + ``labels_NNNNNN.npz``): ``joint_3d``
(1,21,3) metres in the camera's OpenCV frame, already in MediaPipe's order (-1 where the hand is not
annotated); intrinsics from ``ROOT/calibration/intrinsics/<serial>_640x480.yml`` (fx, fy, ppx, ppy);
the hand side from the sequence's ``meta.yml`` (``mano_sides``), right when absent.
"""

import argparse
import pickle
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.contract import joints as J
from engine.contract.choices import QUALITIES
from engine.util.atomic import write_text
from engine.util.errors import EngineError

GL_TO_CV = np.array([1.0, -1.0, -1.0])


class _SafeUnpickler(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("builtins", "dict"), ("builtins", "list"),
               ("collections", "OrderedDict"), ("_codecs", "encode")}  # protocol-2 bytes

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_meta_pkl(path: str | Path) -> dict:
    """An HO3D annotation pickle, read by a restricted unpickler (numpy arrays and plain containers)."""
    try:
        with open(path, "rb") as fh:
            return _SafeUnpickler(fh, encoding="latin1").load()
    except Exception as exc:
        raise EngineError(f"cannot read annotation {path}: {exc}") from None


def ho3d_to_mediapipe(j21: np.ndarray) -> np.ndarray:
    """(21,3) HO3D order (16 MANO joints, tips thumb..little) -> (21,3) MediaPipe order."""
    return J.mano_to_mediapipe(j21[:16], j21[16:21])


def ho3d_sequences(root: str | Path) -> Iterator[tuple[str, list, np.ndarray, np.ndarray, str]]:
    """HO3D-v3 sequences: (name, image paths, joints (T,21,3) m camera frame, K (3,3), side)."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    seqs = sorted(p for p in base.iterdir() if (p / "rgb").is_dir() and (p / "meta").is_dir()) if base.is_dir() else []
    if not seqs:
        raise EngineError(f"no HO3D-v3 sequences under {root} (expected train/<seq>/rgb and meta)")
    for seq in seqs:
        frames = sorted((seq / "rgb").glob("*.jpg")) + sorted((seq / "rgb").glob("*.png"))
        gt, K, images = [], None, []
        for img in frames:
            meta = read_meta_pkl(seq / "meta" / (img.stem + ".pkl"))
            j = meta.get("handJoints3D")
            if j is None or np.asarray(j).shape != (21, 3):
                gt = None  # evaluation split: the 3D joints are hidden
                break
            gt.append(ho3d_to_mediapipe(np.asarray(j, np.float64)) * GL_TO_CV)
            K = np.asarray(meta["camMat"], np.float64)
            images.append(img)
        if gt:
            yield seq.name, images, np.stack(gt), K, "right"


def _read_yml_numbers(path, keys):
    text = Path(path).read_text()
    out = {}
    for k in keys:
        m = re.search(rf"\b{k}\s*:\s*([-0-9.eE+]+)", text)
        if m is None:
            raise EngineError(f"{path}: no '{k}'")
        out[k] = float(m.group(1))
    return out


def dexycb_sequences(root: str | Path) -> Iterator[tuple[str, list, np.ndarray, np.ndarray, str]]:
    """DexYCB sequences per camera: (name, image paths, joints (T,21,3) m, K (3,3), side)."""
    root = Path(root)
    calib = root / "calibration" / "intrinsics"
    found = False
    for subject in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "calibration"):
        for seq in sorted(p for p in subject.iterdir() if p.is_dir()):
            side = "right"
            if (seq / "meta.yml").is_file() and "left" in (seq / "meta.yml").read_text().split("mano_sides")[-1][:40]:
                side = "left"
            for cam in sorted(p for p in seq.iterdir() if p.is_dir()):
                images = sorted(cam.glob("color_*.jpg"))
                if not images:
                    continue
                yml = calib / f"{cam.name}_640x480.yml"
                if not yml.is_file():
                    raise EngineError(f"DexYCB intrinsics missing: {yml}")
                c = _read_yml_numbers(yml, ("fx", "fy", "ppx", "ppy"))
                K = np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1.0]])
                gt = []
                for img in images:
                    lab = np.load(cam / img.name.replace("color_", "labels_").replace(".jpg", ".npz"))
                    gt.append(np.asarray(lab["joint_3d"], np.float64).reshape(21, 3))
                found = True
                yield f"{subject.name}/{seq.name}/{cam.name}", images, np.stack(gt), K, side
    if not found:
        raise EngineError(f"no DexYCB sequences under {root} (expected <subject>/<sequence>/<serial>/color_*.jpg)")


READERS = {"ho3d-v3": ho3d_sequences, "dexycb": dexycb_sequences}


def images_to_video(images: list, path: str | Path, fps: float = 30.0) -> str | Path:
    """Image files -> an mp4 at ``path`` (every frame at the first one's size)."""
    import cv2

    first = cv2.imread(str(images[0]))
    if first is None:
        raise EngineError(f"cannot read image {images[0]}")
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for img in images:
        frame = cv2.imread(str(img))
        writer.write(frame if frame.shape[:2] == (h, w) else cv2.resize(frame, (w, h)))
    writer.release()
    return path


def parser() -> argparse.ArgumentParser:
    from engine.commands.args import Parser

    p = Parser(prog="python -m engine evaluate", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(READERS), required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--quality", choices=QUALITIES, default="best")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-sequences", type=int, default=None)
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    return p


def evaluate(dataset: str, root: str | Path, quality: str = "best", device: str = "cpu",
             max_sequences: int | None = None, log: Callable[[str], object] = print) -> dict[str, dict[str, float]]:
    """Every method's metrics on ``dataset``'s sequences under ``root``, mean over sequences (mm)."""
    from engine.evaluation.methods import METHODS, evaluate_clip
    from engine.evaluation.metrics import all_metrics
    from engine.hand_model import load_hand_model
    from engine.prior import load_prior

    if not Path(root).is_dir():
        raise EngineError(f"dataset folder not found: {root}")
    prior = load_prior(device=device)
    models = {}
    scores = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory(prefix="hmp-eval-") as tmp:
        for k, (name, images, gt, K, side) in enumerate(READERS[dataset](root)):
            if max_sequences is not None and k >= max_sequences:
                break
            model = models.setdefault(side, load_hand_model(side, device=device))
            video = images_to_video(images, Path(tmp) / f"seq{k}.mp4")
            valid = np.isfinite(gt).all((1, 2)) & (gt != -1).any((1, 2))
            joints, detected = evaluate_clip(video, gt, K, model, prior, quality, device, side=side)
            if joints is None:
                log(f"{name}: no {side} hand detected, skipped")
                continue
            for m in METHODS:
                scores[m].append(all_metrics(joints[m], gt, valid))
            log(f"{name}: {len(images)} frames, detected {detected:.0%}, stage II " +
                ", ".join(f"{k2} {v:.1f}" for k2, v in scores["stage II"][-1].items()))
    if not scores["stage II"]:
        raise EngineError("no sequence could be evaluated")
    return {m: {k: float(np.nanmean([s[k] for s in rows])) for k in rows[0]} for m, rows in scores.items()}


def main(argv: list[str] | None = None) -> int:
    from engine.evaluation.methods import table
    from engine.util.device import resolve_device

    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    summary = evaluate(args.dataset, args.root, args.quality, resolve_device(args.device), args.max_sequences)
    text = table(summary, f"{args.dataset}: mean over sequences (mm)")
    print("\n" + text)
    if args.out:
        write_text(args.out, text + "\n", ".hmp-evaluate-")
    return 0
