"""--hand-size: the hand model scaled to the filmed hand, so that the per-frame estimate's depth (and
everything fitted from it) comes out right. From one camera a hand's size and its distance are one
unknown: a hand 0.84x the model's size is placed about 1/0.84 too far away."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fit_support import FPS, K, held_out_motion, keypoints_of, track_of
from test_hand_model import write_fake_mano

from engine.contract import choices as C
from engine.contract import result as R
from engine.hand_model import SIZE_JOINTS, load_hand_model

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "hand_short.mp4"


def _posed(model, T=4, seed=0):
    """Vertices and keypoints of ``model`` at a few random poses and shapes, no translation."""
    g = torch.Generator().manual_seed(seed)
    go, pose = torch.randn(T, 3, generator=g) * 0.8, torch.randn(T, 45, generator=g) * 0.3
    betas = torch.randn(T, 10, generator=g)
    with torch.no_grad():
        out = model(go, pose, betas, torch.zeros(T, 3))
    return out.vertices, out.keypoints


@pytest.mark.parametrize("backend", ["default-right", "default-left", "mano"])
def test_the_model_is_scaled_to_the_hand_size(tmp_path, backend):
    """The wrist-to-middle-knuckle length at rest is the size asked for, and every posed vertex and
    keypoint is the unscaled model's times the factor (a uniform scale: pose, shape space and MANO's
    pose-corrective offsets included)."""
    side = "left" if backend == "default-left" else "right"
    mano_dir = None
    if backend == "mano":
        write_fake_mano(tmp_path / "mano", "RIGHT")
        mano_dir = tmp_path / "mano"
    plain = load_hand_model(side, mano_dir=mano_dir)
    sized = load_hand_model(side, mano_dir=mano_dir, hand_size=0.077)
    assert sized.name == ("mano" if mano_dir else "default")
    a, b = SIZE_JOINTS
    rest = sized.rest_joints(torch.zeros(10))[0]
    assert float((rest[b] - rest[a]).norm()) == pytest.approx(0.077, rel=1e-5) == sized.hand_size
    factor = 0.077 / plain.hand_size
    assert abs(factor - 1) > 0.05  # a real change of size
    (v0, k0), (v1, k1) = _posed(plain), _posed(sized)
    assert torch.allclose(v1, v0 * factor, atol=1e-6) and torch.allclose(k1, k0 * factor, atol=1e-6)


def test_the_default_model_is_unchanged_without_a_size():
    plain, again = load_hand_model("right"), load_hand_model("right", hand_size=None)
    for name, buffer in plain.named_buffers():
        assert torch.equal(buffer, dict(again.named_buffers())[name]), name
    assert plain.hand_size == pytest.approx(0.0917, abs=5e-4)  # the open hand: 92 mm


def test_depth_follows_the_hand_size():
    """A hand 0.84x the default model's size, at 0.5 m: the per-frame estimate with the default model
    puts it about 1/0.84 too far; with the hand's size it puts it where it is."""
    from engine.fit.per_frame import per_frame_estimate

    small = 0.84 * load_hand_model("right").hand_size
    truth_model = load_hand_model("right", hand_size=small)
    go, pose = held_out_motion(40)
    kp3d = keypoints_of(truth_model, go, pose, np.zeros(10), depth=0.5)
    track = track_of(kp3d, px=1.0)
    ratio = {}
    for name, size in (("default", None), ("hand's size", small)):
        model = load_hand_model("right", hand_size=size)
        est = per_frame_estimate(model, track, K, FPS)
        ratio[name] = float(np.median(est["joints"][:, 0, 2] / kp3d[:, 0, 2]))  # wrist depth, fitted / true
    assert ratio["hand's size"] == pytest.approx(1.0, abs=0.02), ratio
    assert ratio["default"] == pytest.approx(1 / 0.84, abs=0.04), ratio


def test_a_result_records_the_hand_size_and_refuses_a_bad_one(tmp_path):
    from addon_support import make_result

    arrays = make_result(tmp_path / "r.npz", T=5, mesh=False)
    assert "hand_size" not in R.read(tmp_path / "r.npz").clip  # optional: results before it still read
    R.write(tmp_path / "r.npz", {**arrays, "hand_size": np.array(0.08)})
    assert float(R.read(tmp_path / "r.npz")["hand_size"]) == 0.08
    for bad, message in ((np.array(-0.08), "'hand_size' must be positive"), (np.array([0.08]), "shape"),
                         (np.array(np.nan), "NaN")):
        with pytest.raises(R.ResultError, match=message):
            R.validate({**arrays, "hand_size": bad})


CACHE = tempfile.mkdtemp(prefix="hmp-test-cache-")  # never the user's detection cache
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)  # nor left behind in /tmp


def _capture(out, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HMP_CACHE_DIR=CACHE)
    env.pop("HMP_MANO_DIR", None)
    return subprocess.run([sys.executable, "-m", "engine", "capture", str(CLIP), "--out", str(out), "--quality",
                           "draft", "--end", "10", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.skipif(not CLIP.exists(), reason="tests/data/hand_short.mp4 is missing")
def test_capture_with_a_hand_size_end_to_end(tmp_path):
    """``python -m engine capture --hand-size MM`` on a real clip: the result records the size, its
    rest skeleton has it, and the hand sits at a depth in proportion to it."""
    depth, knuckle = {}, {}
    for mm in (70, 100):
        out = tmp_path / f"r{mm}.npz"
        proc = _capture(out, "--hand-size", mm)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = R.read(out)
        assert float(res["hand_size"]) == pytest.approx(mm / 1000, rel=1e-5)
        hand = res.hands["right"]
        a, b = SIZE_JOINTS
        knuckle[mm] = float(np.linalg.norm(hand["rest_joints"][b] - hand["rest_joints"][a]))  # with the fitted shape
        assert knuckle[mm] == pytest.approx(mm / 1000, rel=0.1)
        depth[mm] = float(np.median(hand["joints"][hand["valid"], 0, 2]))
    assert depth[70] / depth[100] == pytest.approx(0.7, rel=0.05), depth


@pytest.mark.parametrize("mm", [C.HAND_SIZE_MM[0] - 1, C.HAND_SIZE_MM[1] + 1, 0.0, float("nan")])
def test_a_hand_size_out_of_range_is_refused_before_any_work(tmp_path, mm):
    """The options as a program gives them (engine batch, a script): one clear error before anything runs."""
    from engine.capture import CaptureOptions, check_capture_options
    from engine.util.errors import EngineError

    with pytest.raises(EngineError, match="--hand-size must be from 40 to 150 mm"):
        check_capture_options(CaptureOptions(hand_size=mm), tmp_path / "r.npz")


def test_the_panel_offers_the_engines_range():
    pytest.importorskip("bpy")
    from hmp_addon import properties

    field = properties.HMP_CaptureSettings.__annotations__["hand_size"].keywords
    assert field["default"] == 0.0 and field["min"] == 0.0 and field["max"] == C.HAND_SIZE_MM[1]


def test_a_batch_takes_the_hand_size_and_resumes_only_with_the_same(tmp_path):
    from engine.commands import batch

    sized = batch.base_options(batch.parse_args([str(CLIP), "--out", str(tmp_path), "--hand-size", "80"]))
    plain = batch.base_options(batch.parse_args([str(CLIP), "--out", str(tmp_path)]))
    assert sized.hand_size == 80.0 and plain.hand_size is None
    assert batch.options_hash(sized, str(CLIP)) != batch.options_hash(plain, str(CLIP))
