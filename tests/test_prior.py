"""The motion prior: model, loaders, training, shipped weights, checkpoints."""

import argparse

import numpy as np
import pytest
import roma
import torch

from engine.util.errors import EngineError
from engine.hand_model import load_hand_model
from engine.prior import load_prior, save_checkpoint
from engine.prior.data import load_file, load_sequences, mirror, resample, take_of, windows
from engine.prior.model import MotionPrior
from engine.prior.train import (HELD_OUT_SOURCE, LEAP_BUNDLE, TRAINING_DATA, dedupe_takes, evaluate, make_windows,
                                mean_pose_error, parser, train, training_sequences)


@pytest.fixture(scope="module")
def rest():
    return load_hand_model("right").rest_joints(torch.zeros(10))[0].numpy()


def wave(T, fps, seed=0):
    """Smooth synthetic finger motion (T,45) at fps."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / fps
    return 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0, 45) * t + rng.uniform(0, 6, 45)) * rng.uniform(0.2, 1, 45)


def test_shapes_and_determinism(rest):
    torch.manual_seed(0)
    a = MotionPrior(rest, window=32, latent=16, hidden=32, decoder_width=64).eval()
    torch.manual_seed(0)
    b = MotionPrior(rest, window=32, latent=16, hidden=32, decoder_width=64).eval()
    hp = torch.as_tensor(wave(32, 30.0)[None].repeat(3, 0), dtype=torch.float32)
    mu, sigma = a.encode(hp)
    assert mu.shape == (3, 16) and sigma.shape == (3, 16) and (sigma > 0).all()
    poses = a.decode(mu, a.default_times(3))
    assert poses.shape == (3, 32, 45)
    mu_b, _ = b.encode(hp)
    assert torch.equal(mu, mu_b) and torch.equal(poses, b.decode(mu_b, b.default_times(3)))
    nll = a.neg_log_likelihood(mu, mu, sigma)
    assert nll.shape == (3,) and torch.allclose(nll, torch.log(sigma).sum(-1) + 8 * np.log(2 * np.pi))
    # differentiable end to end (the fitter's L_MP backpropagates through decode and encode)
    z = mu.detach().clone().requires_grad_(True)
    m2, s2 = a.encode(a.decode(z, a.default_times(3)))
    a.neg_log_likelihood(z, m2, s2).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def write_mano_sequences(folder, n=4, T=90, fps=30.0):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        np.savez(folder / f"take{k}.npz", hand_pose=wave(T, fps, seed=k), global_orient=np.zeros((T, 3)), fps=fps)
    return folder


def train_args(tmp_path, data, **kw):
    argv = ["--data", str(data), "--out", str(tmp_path / "p.pt"), "--epochs", "40", "--window", "32",
            "--latent", "16", "--hidden", "32", "--decoder-width", "64", "--progress", "quiet", "--held-out", "0.25", "--lr", "0.003",
            "--threads", "1", "--checkpoint-every", "5", "--batch", "8"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return parser().parse_args(argv)


def test_training_lowers_reconstruction_and_kl_and_resumes(tmp_path):
    data = write_mano_sequences(tmp_path / "data")
    # 20 epochs of 16 windows: the losses fall to ~0.6x (rotation) and ~0.5x (positions) of the first
    # epoch's mean on this data (the model first sits on a plateau)
    model, summary, history = train(train_args(tmp_path, data, epochs=20, batch=16, lr=0.006))
    assert history[-1]["rot"] < 0.8 * history[0]["rot"] and history[-1]["pos"] < 0.8 * history[0]["pos"]
    assert np.isfinite(summary["held_out_mm"]) and summary["held_out_windows"] > 0
    # the KL term is optimised too: weighted alone it goes down
    _, _, kl_history = train(train_args(tmp_path, data, w_rot=0, w_ori=0, w_pos=0, w_kl=1, epochs=3, lr=0.01,
                                           out=tmp_path / "kl.pt"))
    assert kl_history[-1]["kl"] < 0.5 * kl_history[0]["kl"] + 1e-6
    # checkpoints load, and training resumes from one
    prior = load_prior(tmp_path / "p.pt")
    assert prior.window == 32 and prior.latent == 16
    _, _, more = train(train_args(tmp_path, data, resume=tmp_path / "p.pt", epochs=22, batch=16, lr=0.006))
    assert len(more) == 2


def test_amass_and_mano_loaders_read_known_content(tmp_path):
    T = 20
    poses = np.random.default_rng(0).normal(0, 0.3, (T, 156))
    np.savez(tmp_path / "smplh.npz", poses=poses, mocap_framerate=120.0, trans=np.zeros((T, 3)))
    right, left = load_file(tmp_path / "smplh.npz")
    assert right["fps"] == 120.0 and np.allclose(right["hand_pose"], poses[:, 111:156])
    assert np.allclose(left["hand_pose"], mirror(poses[:, 66:111]))  # left hands become right ones
    hands = np.random.default_rng(1).normal(0, 0.3, (T, 90))
    np.savez(tmp_path / "smplx.npz", pose_hand=hands, mocap_frame_rate=60.0)
    right, left = load_file(tmp_path / "smplx.npz")
    assert right["fps"] == 60.0 and np.allclose(right["hand_pose"], hands[:, 45:]) and np.allclose(
        left["hand_pose"], mirror(hands[:, :45]))
    np.savez(tmp_path / "mano.npz", hand_pose=hands[:, :45], fps=25.0, side="left")
    (seq,) = load_file(tmp_path / "mano.npz")
    assert seq["fps"] == 25.0 and np.allclose(seq["hand_pose"], mirror(hands[:, :45]))
    np.savez(tmp_path / "junk.npz", something=np.zeros(3))
    with pytest.raises(EngineError, match="not an AMASS"):
        load_file(tmp_path / "junk.npz")
    with pytest.raises(EngineError, match="not found"):
        load_sequences([tmp_path / "absent"])
    # resampling 120 -> 30 fps keeps every 4th frame exactly
    assert np.allclose(resample(poses[:, 111:156], 120.0, 30.0), poses[::4, 111:156], atol=1e-6)
    hp, go, src = windows([right], 8, 30.0, stride=4)
    assert hp.shape[1:] == (8, 45) and go.shape[1:] == (8, 3) and len(src) == len(hp)


def test_training_loader_keeps_every_take_of_the_bundled_data():
    """Every take of the shipped training data reaches training or the held-out split, with every
    hand and segment of one of its recordings (the longest), and nothing else is dropped."""
    for path in TRAINING_DATA:
        seqs = load_sequences([path])
        files = {}  # take -> file -> [names]
        for s in seqs:
            take, file = take_of(s["name"])
            files.setdefault(take, {}).setdefault(file, []).append(s["name"])
        every, tr, te = training_sequences([path])
        kept = {s["name"] for s in every}
        assert kept == {s["name"] for s in tr} | {s["name"] for s in te} and len(tr) + len(te) == len(every)
        frames = {s["name"]: len(s["hand_pose"]) for s in seqs}
        for take, by_file in files.items():
            kept_files = [f for f, names in by_file.items() if kept & set(names)]
            assert len(kept_files) == 1, (path, take, kept_files)
            assert set(by_file[kept_files[0]]) <= kept, (path, take, "a hand or segment dropped")
            longest = max(sum(frames[n] for n in names) for names in by_file.values())
            assert sum(frames[n] for n in by_file[kept_files[0]]) == longest
        assert sum(frames[n] for n in kept) == sum(max(sum(frames[n] for n in names) for names in by_file.values())
                                                   for by_file in files.values())
    # the Leap bundle has two-hand recordings and takes saved at several rates: both hands stay,
    # one rate goes
    leap = load_sequences([LEAP_BUNDLE])
    kept = dedupe_takes(leap)
    assert len({take_of(s["name"])[0] for s in kept}) == len({take_of(s["name"])[0] for s in leap}) < len(kept) < len(leap)
    # the held-out source is never training data
    assert HELD_OUT_SOURCE not in TRAINING_DATA
    assert not {take_of(s["name"])[0] for s in load_sequences([HELD_OUT_SOURCE])} & \
        {take_of(s["name"])[0] for path in TRAINING_DATA for s in load_sequences([path])}


def _slerp_reference(rotvecs, fps_in, fps_out):
    """The textbook SLERP (sin formula, shortest arc) in numpy/scipy, independent of roma."""
    from scipy.spatial.transform import Rotation

    T = rotvecs.shape[0]
    times = np.arange(0, (T - 1) / fps_in + 1e-9, 1.0 / fps_out) * fps_in
    i0 = np.clip(np.floor(times).astype(int), 0, T - 2)
    w = (times - i0)[:, None, None]
    q = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_quat().reshape(T, -1, 4)
    q0, q1 = q[i0], q[i0 + 1]
    dot = (q0 * q1).sum(-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), 0, 1))
    s = np.sin(theta)
    safe = np.where(s < 1e-9, 1.0, s)
    a = np.where(s < 1e-9, 1 - w, np.sin((1 - w) * theta) / safe)
    b = np.where(s < 1e-9, w, np.sin(w * theta) / safe)
    out = a * q0 + b * q1
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return Rotation.from_quat(out.reshape(-1, 4)).as_rotvec().reshape(len(times), -1)


@pytest.mark.parametrize("fps_in, fps_out", [(30.0, 60.0), (120.0, 30.0), (25.0, 30.0)])
def test_resample_is_slerp(fps_in, fps_out):
    rng = np.random.default_rng(3)
    T, J = 12, 4
    r = rng.normal(0, 1.2, (T, J, 3))  # large steps: many pairs have q0 . q1 < 0 (the shortest arc flips q1)
    r[:, 1] = r[0, 1] + 1e-8 * rng.normal(size=(T, 3))  # a joint that barely moves (the small-angle branch)
    r[:, 2] = wave(T, fps_in).reshape(T, 15, 3)[:, 0]  # smooth motion
    got = resample(r.reshape(T, -1), fps_in, fps_out)
    want = _slerp_reference(r, fps_in, fps_out)
    assert got.shape == want.shape == (len(np.arange(0, (T - 1) / fps_in + 1e-9, 1 / fps_out)), J * 3)
    assert np.allclose(got, want, atol=1e-9)
    import roma

    first, given = (roma.rotvec_to_rotmat(torch.as_tensor(x).reshape(-1, 3)) for x in (got[0], r[0]))
    assert torch.allclose(first, given, atol=1e-9)  # the first frame is kept (as a rotation)


def test_decoding_at_another_frame_rate_matches_resampling():
    prior = load_prior()
    seqs = dedupe_takes(load_sequences([LEAP_BUNDLE]))
    hp, go, _ = windows(seqs[:3], prior.window, prior.fps)
    with torch.no_grad():
        mu, _ = prior.encode(torch.as_tensor(hp[:4], dtype=torch.float32))
        at30 = prior.decode(mu, prior.default_times(4)).numpy()
        n60 = 2 * prior.window - 1
        at60 = prior.decode(mu, (torch.arange(n60, dtype=torch.float32) / 60.0)[None].expand(4, n60)).numpy()
    for k in range(4):
        up = resample(at30[k], 30.0, 60.0)
        # in-between frames: the blend of the two grid frames beside them (as resampling does)
        assert np.abs(up[1::2] - at60[k, 1::2]).mean() < 0.01
        assert np.allclose(at60[k, ::2], at30[k], atol=1e-5)  # shared frames: the same decoding


def test_decoding_off_the_grid_is_as_smooth_as_on_it():
    """Asked at a 25 fps clip's times, the decoded fingers accelerate (per second^2) no more than on
    the 30 fps grid the field was trained on. The field itself, between its grid frames, jitters: its
    highest Fourier features have periods of a few frames (this is what decode_rot avoids)."""
    prior = load_prior()
    seqs = dedupe_takes(load_sequences([LEAP_BUNDLE]))
    hp, _, _ = windows(seqs[:3], prior.window, prior.fps)
    duration = (prior.window - 1) / prior.fps
    t25 = (torch.arange(int(duration * 25) + 1, dtype=torch.float32) / 25.0)[None].expand(4, -1)

    def acc_per_s2(rot, fps):  # mean angle of the second difference of rotations, degrees / s^2
        r = roma.rotmat_to_rotvec(rot[:, :, 1:]).numpy()
        return np.degrees(np.linalg.norm(r[:, 2:] - 2 * r[:, 1:-1] + r[:, :-2], axis=-1)).mean() * fps ** 2

    with torch.no_grad():
        mu, _ = prior.encode(torch.as_tensor(hp[:4], dtype=torch.float32))
        on_grid = acc_per_s2(prior.decode_rot(mu, prior.default_times(4)), 30.0)
        at25 = acc_per_s2(prior.decode_rot(mu, t25), 25.0)
        field25 = acc_per_s2(prior.decode_field(mu, t25), 25.0)
    assert at25 <= 1.0 * on_grid, (at25, on_grid)
    assert field25 > 2.0 * on_grid, (field25, on_grid)  # the field alone: why decode_rot interpolates


def test_shipped_weights_beat_the_mean_pose_on_the_held_out_source():
    """On recordings of a source it never trained on (benchmarks/data), the shipped prior
    reconstructs real hand motion far better than the training data's mean pose."""
    prior = load_prior()
    _, tr, _ = training_sequences(TRAINING_DATA)
    hp_te, go_te = make_windows(load_sequences([HELD_OUT_SOURCE]), prior.window, prior.fps, augment=False)
    hp_tr, _ = make_windows(tr, prior.window, prior.fps, augment=False)
    assert len(hp_te) > 40
    err = evaluate(prior, hp_te, go_te)
    base = mean_pose_error(prior, hp_tr, hp_te)
    assert err < 0.7 * base, (err, base)


def test_bad_checkpoints_are_clear_errors(tmp_path, rest):
    with pytest.raises(EngineError, match="not found"):
        load_prior(tmp_path / "absent.pt")
    good = save_checkpoint(tmp_path / "good.pt", MotionPrior(rest, window=16, latent=8, hidden=16, decoder_width=32))
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="cannot read"):
        load_prior(tmp_path / "cut.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(EngineError, match="not an HMP motion prior"):
        load_prior(tmp_path / "list.pt")
    ckpt = torch.load(good, weights_only=True)
    ckpt["config"]["latent"] = 9  # the weights no longer fit the model
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(EngineError, match="does not match"):
        load_prior(tmp_path / "mismatch.pt")
