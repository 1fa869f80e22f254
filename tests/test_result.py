"""Result schema v1 from the engine's side: round trip, atomic writes, and every malformed case."""

import os
import re
import stat
import zipfile

import numpy as np
import pytest

from engine.contract import result as R
from tests.addon_support import make_result


def _arrays(tmp_path, **kw):
    return make_result(tmp_path / "good.npz", **kw)


def test_round_trip_keeps_every_field(tmp_path):
    arrays = _arrays(tmp_path, T=7, sides=("right", "left"))
    res = R.read(tmp_path / "good.npz")
    assert res.num_frames == 7 and res.fps == 30.0 and list(res.hands) == ["right", "left"]
    for key, value in arrays.items():
        if "/" in key:
            side, name = key.split("/")
            np.testing.assert_array_equal(res.hands[side][name], value)
        elif key != "hands":
            np.testing.assert_array_equal(res[key], value)
    assert res.hands["left"].has_mesh
    # and what it reads back writes again identically
    R.write(tmp_path / "again.npz", res)
    again = R.read(tmp_path / "again.npz")
    np.testing.assert_array_equal(again.hands["left"]["joints"], res.hands["left"]["joints"])
    # an ordinary file (0666 less the umask), not the temporary file's owner-only 0600
    old_mask = os.umask(0o022)
    try:
        R.write(tmp_path / "shared.npz", res)
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.npz").st_mode) == 0o644


def test_file_has_no_pickle(tmp_path):
    _arrays(tmp_path, T=3)
    with zipfile.ZipFile(tmp_path / "good.npz") as z:
        for name in z.namelist():
            with z.open(name) as fh:
                header = fh.read(128)
            assert b"'O'" not in header and b"|O" not in header, name


def _bad(tmp_path, mutate):
    arrays = _arrays(tmp_path, T=6)
    mutate(arrays)
    path = tmp_path / "bad.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


MALFORMED = [
    ("no version", lambda a: a.pop("schema_version"), "not an HMP result file"),
    ("newer version", _set("schema_version", np.array(2)), "newer than this reader"),
    ("version zero", _set("schema_version", np.array(0)), "invalid result schema version"),
    ("version text", _set("schema_version", np.array("one")), "not an integer"),
    ("missing clip field", lambda a: a.pop("fps"), "missing the field 'fps'"),
    ("missing hand field", lambda a: a.pop("right/valid"), "missing the field 'right/valid'"),
    ("wrong dtype", _set("right/valid", np.ones(6, np.float32)), "right/valid' has dtype"),
    ("wrong rank", _set("right/hand_pose", np.zeros((6, 15, 3))), "right/hand_pose' has shape"),
    ("wrong width", _set("right/hand_pose", np.zeros((6, 44))), "right/hand_pose' has shape"),
    ("frame count mismatch", _set("right/transl", np.zeros((5, 3))), "'right/transl' has 5 along 'T'"),
    ("nan", _set("right/joints", np.full((6, 21, 3), np.nan)), "NaN"),
    ("inf K", _set("K", np.full((3, 3), np.inf)), "NaN or infinite"),
    ("no frames", lambda a: [a.__setitem__(k, v[:0]) for k, v in list(a.items())
                             if k == "frame_ids" or (k.startswith("right/") and v.ndim and v.shape[0] == 6)],
     "no frames"),
    ("unknown hand", _set("hands", np.array(["middle"])), "unknown hand 'middle'"),
    ("hand twice", _set("hands", np.array(["right", "right"])), "listed twice"),
    ("no hand", _set("hands", np.array([], dtype=np.str_)), "contains no hand"),
    ("partial mesh", lambda a: a.pop("right/faces"), "partial mesh"),
    ("faces out of range", _set("right/faces", np.full((30, 3), 999)), "out of range"),
    ("no valid frame", _set("right/valid", np.zeros(6, bool)), "no valid frame"),
    ("confidence > 1", _set("right/confidence", np.full((6, 21), 1.5)), "outside [0, 1]"),
    ("frame times backwards", _set("frame_times", np.array([0, 0.1, 0.05, 0.2, 0.3, 0.4])), "go backwards"),
    ("frame times count", _set("frame_times", np.arange(5) / 30.0), "'frame_times' has 5 along 'T'"),
    # ranges (issue 12, item 19)
    ("fps zero", _set("fps", np.array(0.0)), "'fps' is 0, expected a frame rate in (0, 1000]"),
    ("fps negative", _set("fps", np.array(-30.0)), "'fps' is -30"),
    ("fps absurd", _set("fps", np.array(1e9)), "'fps' is 1e+09"),
    ("K zeros", _set("K", np.zeros((3, 3))), "'K' is not a camera matrix"),
    ("K last row", _set("K", np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 0]])), "'K' is not a camera matrix"),
    ("K negative focal", _set("K", np.array([[-900.0, 0, 640], [0, 900, 360], [0, 0, 1]])), "with fx, fy > 0"),
    ("image size zero", _set("image_size", np.array([0, 720])), "'image_size' must be positive"),
    ("negative frame ids", _set("frame_ids", np.arange(-3, 3)), "'frame_ids' must be 0 or more, got -3"),
    ("frame ids repeat", _set("frame_ids", np.array([0, 1, 2, 2, 3, 4])), "'frame_ids' must increase"),
    ("stages", _set("stages", np.array(7)), "'stages' must be 0, 1 or 2, got 7"),
    ("unknown source", _set("right/keypoint_source", np.array([1, 1, 9, 1, 200, 1], np.uint8)),
     "'right/keypoint_source' holds unknown codes [9, 200]"),
]


def test_optional_frame_times_round_trip(tmp_path):
    arrays = _arrays(tmp_path, T=6)
    arrays["frame_times"] = np.array([0.0, 0.033, 0.066, 0.133, 0.2, 0.266])
    R.write(tmp_path / "vfr.npz", arrays)
    assert np.array_equal(R.read(tmp_path / "vfr.npz")["frame_times"], arrays["frame_times"])


@pytest.mark.parametrize("case,mutate,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_is_refused_with_a_clear_message(tmp_path, case, mutate, message):
    path = _bad(tmp_path, mutate)
    with pytest.raises(R.ResultError, match=re.escape(message)):
        R.read(path)


def test_not_a_result_file(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(R.ResultError, match="not an HMP result file"):
        R.read(garbage)
    with pytest.raises(R.ResultError, match="not found"):
        R.read(tmp_path / "absent.npz")
    truncated = tmp_path / "truncated.npz"
    _arrays(tmp_path, T=4)
    data = (tmp_path / "good.npz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(R.ResultError):
        R.read(truncated)


def test_pickled_object_arrays_are_refused(tmp_path):
    arrays = _arrays(tmp_path, T=4)
    arrays["video"] = np.array([{"evil": 1}], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    with pytest.raises(R.ResultError, match="pickled objects"):
        R.read(path)


def test_write_refuses_invalid_and_leaves_nothing(tmp_path):
    arrays = _arrays(tmp_path, T=4)
    arrays["right/transl"] = np.zeros((4, 2))
    out = tmp_path / "out" / "r.npz"
    out.parent.mkdir()
    with pytest.raises(R.ResultError):
        R.write(out, arrays)
    assert list(out.parent.iterdir()) == []


def test_unknown_entries_are_skipped_unread(tmp_path):
    """Entries outside the schema are never decompressed: one claiming 8 GB (a header and no data) does not
    fail the read, and a real 256 MB one (256 kB on disk) does not cost its size in memory."""
    import tracemalloc

    arrays = _arrays(tmp_path, T=6)
    path = tmp_path / "extra.npz"
    np.savez_compressed(path, **arrays, **{"extra/zeros": np.zeros(32 * 2 ** 20)})  # 256 MB of float64
    assert os.path.getsize(path) < 2 ** 20
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }"
    header += b" " * (127 - len(header)) + b"\n"
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("bomb.npy", header + b"\0" * 64)
    tracemalloc.start()
    try:
        res = R.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.num_frames == 6 and "extra/zeros" not in res.to_arrays()
    assert peak < 32 * 2 ** 20, peak  # the known fields are kilobytes; the unknown one alone is 256 MB
