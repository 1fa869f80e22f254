"""Hand model: both backends (open default, MANO via smplx), shapes, known poses, mirror, shape space."""

import math
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from engine.contract import joints as J
from engine.hand_model import load_hand_model, mirror_pose
from engine.util.errors import EngineError


def zeros(B=1):
    return torch.zeros(B, 3), torch.zeros(B, 45), torch.zeros(10), torch.zeros(B, 3)


@pytest.mark.parametrize("side", ["right", "left"])
def test_default_model_shapes(side):
    m = load_hand_model(side)
    out = m(torch.zeros(4, 3), torch.zeros(4, 45), torch.zeros(10), torch.zeros(4, 3))
    V = m.v_template.shape[0]
    assert out.vertices.shape == (4, V, 3) and out.joints.shape == (4, 16, 3) and out.keypoints.shape == (4, 21, 3)
    assert m.name == "default" and m.side == side and m.num_betas == 10
    assert m.faces.shape[1] == 3 and int(m.faces.max()) < V
    assert torch.allclose(m.skin_weights.sum(1), torch.ones(V), atol=1e-5)
    # keypoints hold the joints at MediaPipe's indices and fingertip vertices at the tips
    assert torch.equal(out.keypoints[:, J.MANO_TO_MEDIAPIPE], out.joints)
    assert torch.equal(out.keypoints[:, J.FINGERTIPS_MEDIAPIPE], out.vertices[:, m.tip_ids])
    # a real hand's size: wrist to middle fingertip 17-21 cm, fingertips beyond their last joint
    length = float((out.keypoints[0, 12] - out.keypoints[0, 0]).norm())
    assert 0.17 < length < 0.21
    for tip, parent in zip(J.FINGERTIPS_MEDIAPIPE, J.FINGERTIPS_MEDIAPIPE - 1):
        assert float((out.keypoints[0, tip] - out.keypoints[0, 0]).norm()) > float(
            (out.keypoints[0, parent] - out.keypoints[0, 0]).norm())


def test_known_pose_moves_only_the_child_chain_as_computed_by_hand():
    m = load_hand_model("right")
    go, hp, b, tr = zeros()
    rest = m(go, hp, b, tr).joints[0]
    hp[0, 3 * (2 - 1) + 2] = math.pi / 2  # joint 2 (index2, PIP): 90 degrees about z
    posed = m(go, hp, b, tr).joints[0]
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # by hand
    expected3 = rest[2] + Rz @ (rest[3] - rest[2])
    assert torch.allclose(posed[3], expected3, atol=1e-6)
    unchanged = [j for j in range(16) if j != 3]
    assert torch.allclose(posed[unchanged], rest[unchanged], atol=1e-6)


def test_global_orient_rotates_about_the_wrist_and_transl_adds():
    m = load_hand_model("right")
    go, hp, b, tr = zeros()
    rest = m(go, hp, b, tr).joints[0]
    go[0, 1] = math.pi  # 180 degrees about y: (x, y, z) -> (-x, y, -z) about the wrist
    tr[0] = torch.tensor([0.1, -0.2, 0.5])
    posed = m(go, hp, b, tr).joints[0]
    rel = rest - rest[0]
    expected = rel * torch.tensor([-1.0, 1.0, -1.0]) + rest[0] + tr[0]
    assert torch.allclose(posed, expected, atol=1e-6)


def test_left_is_the_mirror_of_the_right():
    r, l = load_hand_model("right"), load_hand_model("left")
    torch.manual_seed(0)
    go, hp = torch.randn(3, 3) * 0.5, torch.randn(3, 45) * 0.3
    b, tr = torch.randn(10), torch.randn(3, 3) * 0.1
    out_r = r(go, hp, b, tr)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    out_l = l(mirror_pose(go), mirror_pose(hp), b, tr * flip)
    assert torch.allclose(out_l.vertices, out_r.vertices * flip, atol=1e-5)
    assert torch.allclose(out_l.keypoints, out_r.keypoints * flip, atol=1e-5)


def test_shape_space_is_meaningful():
    m = load_hand_model("right")
    go, hp, b0, tr = zeros()

    def measure(betas):
        kp = m(go, hp, betas, tr).keypoints[0]
        return {"length": float((kp[12] - kp[0]).norm()), "width": float((kp[5] - kp[17]).norm()),
                "index": float((kp[8] - kp[5]).norm()), "thumb": float((kp[4] - kp[2]).norm())}

    base = measure(b0)
    unit = lambda k: torch.eye(10)[k]
    bigger = measure(2 * unit(0))
    assert bigger["length"] == pytest.approx(base["length"] * 1.11, rel=0.01)  # 5.5 % per unit
    assert measure(unit(1))["width"] > base["width"] * 1.03  # palm width
    assert measure(unit(6))["index"] > base["index"] * 1.03  # index finger length
    assert measure(unit(6))["thumb"] == pytest.approx(base["thumb"], abs=1e-6)  # ...and only that finger
    assert measure(unit(5))["thumb"] > base["thumb"] * 1.03
    # rest_joints agrees with the posed joints at zero pose
    assert torch.allclose(m.rest_joints(2 * unit(0))[0], m(go, hp, 2 * unit(0), tr).joints[0])


# ---------------------------------------------------------------- MANO backend with a generated pickle

def write_fake_mano(folder, side="RIGHT", V=778, seed=0):
    """A MANO-format pickle with the fields smplx reads (random but valid numbers)."""
    rng = np.random.default_rng(seed)
    parents = J.MANO_PARENTS.copy()
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(16)]).astype(np.int64)
    reg = rng.uniform(0, 1, (16, V)) * (rng.uniform(0, 1, (16, V)) > 0.9)
    reg /= reg.sum(1, keepdims=True)
    weights = rng.uniform(0, 1, (V, 16)) ** 6
    weights /= weights.sum(1, keepdims=True)
    data = {
        "v_template": rng.normal(0, 0.05, (V, 3)), "f": rng.integers(0, V, (1538, 3)).astype(np.uint32),
        "shapedirs": rng.normal(0, 1e-3, (V, 3, 10)), "posedirs": rng.normal(0, 1e-3, (V, 3, 135)),
        "J_regressor": scipy.sparse.csc_matrix(reg), "weights": weights, "kintree_table": kintree,
        "hands_components": np.eye(45), "hands_mean": rng.normal(0, 0.1, 45),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"MANO_{side}.pkl", "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return data


def test_mano_backend_matches_smplx(tmp_path):
    import smplx

    write_fake_mano(tmp_path / "mano", "RIGHT")
    ours = load_hand_model("right", mano_dir=tmp_path / "mano")
    ref = smplx.MANO(str(tmp_path / "mano"), is_rhand=True, use_pca=False, flat_hand_mean=True)
    assert ours.name == "mano" and ours.v_template.shape == (778, 3)
    torch.manual_seed(1)
    go, hp, b, tr = torch.randn(2, 3) * 0.5, torch.randn(2, 45) * 0.3, torch.randn(2, 10), torch.randn(2, 3)
    out = ours(go, hp, b, tr)
    exp = ref(global_orient=go, hand_pose=hp, betas=b, transl=tr)
    assert torch.allclose(out.vertices, exp.vertices, atol=1e-5)
    assert torch.allclose(out.joints, exp.joints[:, :16], atol=1e-5)
    assert torch.equal(out.keypoints[:, J.FINGERTIPS_MEDIAPIPE], out.vertices[:, J.MANO_FINGERTIP_VERTEX_IDS])
    # the environment variable works as well as the argument
    import os

    os.environ["HMP_MANO_DIR"] = str(tmp_path / "mano")
    try:
        assert load_hand_model("right").name == "mano"
    finally:
        del os.environ["HMP_MANO_DIR"]


def test_bad_mano_folders(tmp_path):
    with pytest.raises(EngineError, match="MANO folder not found"):
        load_hand_model("right", mano_dir=tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="MANO_LEFT.pkl not found"):
        load_hand_model("left", mano_dir=tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "MANO_RIGHT.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(EngineError, match="not a usable MANO model file"):
        load_hand_model("right", mano_dir=tmp_path / "junk")
    write_fake_mano(tmp_path / "small", V=100)
    with pytest.raises(EngineError, match="not a MANO model"):
        load_hand_model("right", mano_dir=tmp_path / "small")


# ---------------------------------------------------------------- MANO pickles cannot run code (issue 12, item 14)

class _RunsCommand:
    """Pickles as a call of os.system: what a crafted MANO_RIGHT.pkl would do on a plain pickle.load."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


class _WritesFile:
    """Pickles as builtins.open(path, 'w'): a global that is not os.system but as dangerous."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def write_malicious_mano(folder, payload, side="RIGHT"):
    """A MANO-shaped pickle (the real fields) with ``payload`` hidden among them."""
    data = write_fake_mano(folder, side)
    data["bs_style"] = payload
    with open(folder / f"MANO_{side}.pkl", "wb") as fh:
        pickle.dump(data, fh, protocol=2)


@pytest.mark.parametrize("payload", ["system", "open"])
def test_malicious_mano_pickle_is_refused_and_runs_nothing(tmp_path, payload):
    marker = tmp_path / "marker"
    evil = _RunsCommand(f"touch {marker}") if payload == "system" else _WritesFile(str(marker))
    write_malicious_mano(tmp_path / "mano", evil)
    refused = r"(posix|os)\.system" if payload == "system" else r"(_?io|builtins)\.open"  # 3.13 pickles _io.open
    with pytest.raises(EngineError, match=rf"refused to load .*MANO_RIGHT\.pkl: it asks for '{refused}'") as info:
        load_hand_model("right", mano_dir=tmp_path / "mano")
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # the same file read by a plain pickle.load would have run it: the test's payload is real
    with open(tmp_path / "mano" / "MANO_RIGHT.pkl", "rb") as fh:
        loaded = pickle.load(fh)
    assert marker.exists()
    if hasattr(loaded["bs_style"], "close"):
        loaded["bs_style"].close()


class _ChumpyLike:
    """Pickles as chumpy.ch.Ch does (class ``chumpy.ch.Ch``; state: its ``__dict__`` less ``_parents`` and
    ``_cache``, with the array in ``x`` beside chumpy's bookkeeping), without chumpy installed."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars, self._itr, self._depends_on_deps = {"x"}, None, {}
        self._make_dense, self._make_sparse = False, False

    def __getstate__(self):
        return dict(self.__dict__)


def _chumpy_pickle(data, path, protocol):
    import sys
    import types

    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    sys.modules["chumpy.ch"].Ch = _ChumpyLike
    old = (_ChumpyLike.__module__, _ChumpyLike.__qualname__)
    _ChumpyLike.__module__, _ChumpyLike.__qualname__ = "chumpy.ch", "Ch"
    try:
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=protocol)
    finally:
        _ChumpyLike.__module__, _ChumpyLike.__qualname__ = old
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.mark.parametrize("protocol", [0, 2])
def test_mano_pickle_with_chumpy_arrays_and_sparse_regressor_loads(tmp_path, protocol):
    """MANO's own files: numpy arrays, a scipy.sparse J_regressor, chumpy Ch objects, strings; protocol
    0 (Python 2's default: copy_reg._reconstructor) and 2 (NEWOBJ)."""
    import pickletools

    data = write_fake_mano(tmp_path / "plain", "RIGHT")
    data.update(bs_style="lbs", bs_type="lrotmin", J=np.zeros((16, 3)))
    for key in ("shapedirs", "v_template", "J"):
        data[key] = _ChumpyLike(data[key])
    (tmp_path / "ch").mkdir()
    _chumpy_pickle(data, tmp_path / "ch" / "MANO_RIGHT.pkl", protocol)
    raw = (tmp_path / "ch" / "MANO_RIGHT.pkl").read_bytes()
    globals_named = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert "chumpy.ch Ch" in globals_named and any("scipy.sparse" in g for g in globals_named)
    assert globals_named & {"builtins set", "__builtin__ set"}
    if protocol == 0:
        assert "copy_reg _reconstructor" in globals_named  # as Python 2 wrote MANO's files
    with pytest.raises(ModuleNotFoundError):  # the file cannot be read by a plain pickle.load here
        pickle.loads(raw)
    ours = load_hand_model("right", mano_dir=tmp_path / "ch")
    plain = load_hand_model("right", mano_dir=tmp_path / "plain")
    for name in ("v_template", "shapedirs", "j_regressor", "skin_weights", "posedirs", "faces", "parents"):
        assert torch.equal(getattr(ours, name), getattr(plain, name)), name
