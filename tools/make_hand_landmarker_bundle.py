"""Build MediaPipe's Tasks hand model bundle (engine/assets/mediapipe/hand_landmarker.task).

    .venv/bin/python tools/make_hand_landmarker_bundle.py [--wheel mediapipe-0.10.21-...whl]

Current MediaPipe releases (the Tasks API; the legacy ``solutions`` API and the model files it
carried are gone from 0.10.31 on) ship no hand model, and nothing may be downloaded at run time.
A Tasks ``.task`` bundle is a plain zip of two TFLite models:

    hand_detector.tflite            = palm_detection_full.tflite  (the palm detector)
    hand_landmarks_detector.tflite  = hand_landmark_full.tflite   (the 21-landmark network)

Both come, unchanged, from the Apache-2.0 ``mediapipe==0.10.21`` wheel (the last release on PyPI
that carries them; a cp311 wheel, read as a zip here, never installed). The script takes the wheel
from ``--wheel`` or fetches it with ``pip download`` (a build step, not a run-time one), checks the
two models' SHA-256 against the ones recorded below, and writes the bundle with fixed zip
timestamps so that the committed file is reproducible byte for byte.
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "assets" / "mediapipe" / "hand_landmarker.task"
WHEEL = "mediapipe==0.10.21"
# bundle member -> (path inside the 0.10.21 wheel, SHA-256 of the file)
MEMBERS = {
    "hand_detector.tflite": ("mediapipe/modules/palm_detection/palm_detection_full.tflite",
                             "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
    "hand_landmarks_detector.tflite": ("mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
                                       "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
}
FIXED_TIME = (2025, 1, 31, 0, 0, 0)  # the wheel's build date: the bundle's bytes never change


def fetch_wheel(folder):
    """pip download of the 0.10.21 wheel for CPython 3.11 on Linux (the models are the same in
    every platform's wheel)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
           "--platform", "manylinux_2_28_x86_64", WHEEL, "-d", str(folder)]
    subprocess.run(cmd, check=True)
    return next(Path(folder).glob("mediapipe-0.10.21-*.whl"))


def build(wheel, out=OUT):
    """Write the bundle from ``wheel`` (each model checked against its recorded SHA-256); returns
    {member: sha256}."""
    digests = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for member, (inside, sha256) in MEMBERS.items():
            data = src.read(inside)
            digests[member] = hashlib.sha256(data).hexdigest()
            if digests[member] != sha256:
                raise SystemExit(f"{inside} in {wheel} is not the expected model (sha256 {digests[member]})")
            info = zipfile.ZipInfo(member, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED  # MediaPipe maps the models in place: no compression
            dst.writestr(info, data)
    return digests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="a local mediapipe-0.10.21 wheel (else pip downloads it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(tmp)
        digests = build(wheel)
    for member, digest in digests.items():
        print(f"{member}: sha256 {digest}")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
