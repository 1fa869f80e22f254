"""``python -m engine train-prior``: train the hand motion prior.

    python -m engine train-prior --out prior.pt                          # the shipped Leap data
    python -m engine train-prior --data /data/AMASS/GRAB /data/AMASS/SAMP --out prior.pt --device cuda

Data: AMASS npz (SMPL-H or SMPL-X), plain MANO sequence npz, or converted bundles (see
engine.prior.data), files or folders. Split by take into training and held-out sets; windows of
``--window`` frames at ``--fps``; augmented by playback speed (x0.8, x1.25) and time reversal
(hand motion reversed is still hand motion). Adam, a fixed seed, a checkpoint every
``--checkpoint-every`` epochs (atomic), ``--resume`` continues from one. At the end the held-out
reconstruction error (mm, joint positions through the hand model's kinematics) is printed next to
a mean-pose baseline.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.contract.choices import PROGRESS_MODES
from engine.util.errors import EngineError

if TYPE_CHECKING:  # for the hints only: torch is imported when training starts
    import torch

    from engine.contract.progress import Reporter
    from engine.prior.model import MotionPrior

LEAP_BUNDLE = "engine/assets/prior/leap_mano.npz"
# the shipped training data (docs/prior.md): real Leap Motion recordings of two repositories and
# SYNTHETIC motion between the real static poses of handy.js
TRAINING_DATA = (LEAP_BUNDLE, "engine/assets/prior/leap_plugins_mano.npz", "engine/assets/prior/handy_synthetic.npz")
# never trained on: the held-out-by-source evaluation set (benchmarks/bench_prior.py)
HELD_OUT_SOURCE = "benchmarks/data/leap_javascript_v2.npz"


def parser() -> argparse.ArgumentParser:
    from engine.commands.args import Parser

    p = Parser(prog="python -m engine train-prior", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=None, help="motion files or folders (default: the shipped training data, TRAINING_DATA)")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--window", type=int, default=64, help="frames per window")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128, help="encoder channels")
    p.add_argument("--decoder-width", type=int, default=256)
    p.add_argument("--w-rot", type=float, default=1.0)
    p.add_argument("--w-ori", type=float, default=1.0)
    p.add_argument("--w-pos", type=float, default=0.1)
    p.add_argument("--w-kl", type=float, default=1e-4)
    p.add_argument("--held-out", type=float, default=0.15, help="fraction of takes held out")
    p.add_argument("--checkpoint-every", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    return p


def dedupe_takes(sequences: list[dict]) -> list[dict]:
    """Keep one recording per take where a take was saved several times ("take@file#..." names,
    as the converted Leap bundles have: the same motion at other frame rates or cropped adds cost,
    not information): all the sequences (hands, segments) of the file with the most frames, the
    first such file on ties. Sequences whose name has no take@file keep as they are."""
    from engine.prior.data import take_of

    frames = {}
    for s in sequences:
        take, file = take_of(s["name"])
        if file is not None:
            frames[take, file] = frames.get((take, file), 0) + len(s["hand_pose"]) / s["fps"]
    best = {}
    for (take, file), n in frames.items():  # dicts keep insertion order: the first file wins ties
        if take not in best or n > frames[take, best[take]]:
            best[take] = file
    return [s for s in sequences if take_of(s["name"])[1] in (None, best.get(take_of(s["name"])[0]))]


def training_sequences(paths: list, held_out: float = 0.15, seed: int = 0) -> tuple[list, list, list]:
    """The training loader: (all sequences, training ones, held-out ones) of ``paths``, each path's
    takes de-duplicated (``dedupe_takes``) and split (``split_by_take``) on its own, so a file's
    held-out takes are the same whatever else is trained with it (the fitter's tests and benchmark
    take theirs from the Leap bundle alone)."""
    from engine.prior.data import load_sequences, split_by_take

    everything, train, held = [], [], []
    for path in paths:
        seqs = dedupe_takes(load_sequences([path]))
        tr, te = split_by_take(seqs, held_out, seed=seed)
        everything += seqs
        train += [seqs[i] for i in tr]
        held += [seqs[i] for i in te]
    return everything, train, held


def make_windows(sequences: list[dict], window: int, fps: float, augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training windows: hand_pose (N,window,45), global_orient (N,window,3); ``augment`` adds the
    motion played at x0.8 and x1.25 speed, then every window reversed in time."""
    from engine.prior.data import windows

    hp, go, _ = windows(sequences, window, fps)
    if augment and len(sequences):
        for speed in (0.8, 1.25):  # the same motion played slower / faster
            scaled = [dict(s, fps=s["fps"] * speed) for s in sequences]
            h2, g2, _ = windows(scaled, window, fps)
            hp, go = np.concatenate([hp, h2]), np.concatenate([go, g2])
        hp, go = np.concatenate([hp, hp[:, ::-1]]), np.concatenate([go, go[:, ::-1]])
    return hp, go


def evaluate(model: "MotionPrior", hp: np.ndarray, go: np.ndarray, batch: int = 64) -> float:
    """Held-out reconstruction error (mm, mean over joints and frames) of the prior (z = mu) on the
    windows hp (N,T,45) hand pose and go (N,T,3) global orientation, axis-angle (``make_windows``);
    ``mean_pose_error`` gives the baseline it is read against."""
    import torch

    errs = []
    with torch.no_grad():
        for i in range(0, len(hp), batch):
            h = torch.as_tensor(hp[i:i + batch], dtype=torch.float32, device=model.rest_joints.device)
            g = torch.as_tensor(go[i:i + batch], dtype=torch.float32, device=h.device)
            rot = model.rotations(h, g)
            errs.append(float(model.losses(rot, {"rot": 0, "ori": 0, "pos": 0, "kl": 0}, sample=False)["mpjpe_mm"])
                        * len(h))
    return sum(errs) / max(len(hp), 1)


def mean_pose_error(model: "MotionPrior", hp_train: np.ndarray, hp_test: np.ndarray) -> float:
    """Mean joint error (mm) of the training windows' mean pose (hp_train (N,T,45)) on every frame of
    hp_test (M,T,45): the baseline the prior's held-out error is read against."""
    import torch

    with torch.no_grad():
        mean = torch.as_tensor(hp_train.reshape(-1, 45).mean(0), dtype=torch.float32, device=model.rest_joints.device)
        h = torch.as_tensor(hp_test, dtype=torch.float32, device=mean.device)
        p_true, _ = model.forward_kinematics(model.rotations(h))
        p_mean, _ = model.forward_kinematics(model.rotations(mean.expand_as(h)))
        return float((p_true - p_mean).norm(dim=-1).mean()) * 1000


def train(args: argparse.Namespace, reporter: "Reporter | None" = None) -> tuple:
    """Train the motion prior as ``parser()`` describes -> (model, summary dict, history [per-epoch
    mean loss terms]). Steps: the training windows (``training_windows``), the model and its optimiser,
    fresh or resumed (``new_or_resumed``), the epochs (``run_epochs``, checkpointing), the final
    checkpoint and the held-out figures (``finish``)."""
    import torch

    from engine.contract.progress import Reporter
    from engine.util.device import resolve_device

    reporter = reporter or Reporter(args.progress)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    data = args.data or [str(Path(__file__).resolve().parents[2] / d) for d in TRAINING_DATA]
    (hp_tr, go_tr), (hp_te, go_te) = training_windows(data, args, reporter)
    model, opt, sched, start_epoch = new_or_resumed(args, hp_tr, go_tr, device, reporter)
    t0 = time.time()
    history = run_epochs(model, opt, sched, hp_tr, go_tr, start_epoch, data, args, reporter)
    summary = finish(model, history, hp_tr, hp_te, go_te, data, args, reporter)
    summary["seconds"] = time.time() - t0
    return model, summary, history


def training_windows(data: list, args: argparse.Namespace, reporter: "Reporter") -> tuple:
    """-> ((hand_pose (N,W,45), global_orient (N,W,3)) training windows, augmented; the same of the
    held-out takes (M,W,...), not augmented). W = ``args.window`` frames at ``args.fps``."""
    sequences, tr_seqs, te_seqs = training_sequences(data, args.held_out, args.seed)
    hp_tr, go_tr = make_windows(tr_seqs, args.window, args.fps, augment=True)
    hp_te, go_te = make_windows(te_seqs, args.window, args.fps, augment=False)
    if len(hp_tr) == 0:
        raise EngineError(f"no training window of {args.window} frames: the data is too short")
    reporter.log(f"{len(sequences)} sequences: {len(hp_tr)} training windows (augmented), "
                 f"{len(hp_te)} held-out windows of {args.window} frames at {args.fps:g} fps")
    return (hp_tr, go_tr), (hp_te, go_te)


def new_or_resumed(args: argparse.Namespace, hp_tr: np.ndarray, go_tr: np.ndarray, device: str,
                   reporter: "Reporter") -> tuple:
    """-> (MotionPrior on ``device``, Adam, its MultiStepLR schedule, first epoch to run). Resumed from
    ``args.resume`` (model, and optimiser when the checkpoint has it, else a fresh Adam at the scheduled
    rate), or new with its feature normalisation from the training windows hp_tr (N,W,45), go_tr (N,W,3)."""
    import torch

    from engine.hand_model import load_hand_model
    from engine.prior import read_checkpoint
    from engine.prior.model import MotionPrior

    rest = load_hand_model("right").rest_joints(torch.zeros(10))[0].numpy()
    model = MotionPrior(rest, window=args.window, fps=args.fps, latent=args.latent, hidden=args.hidden,
                        decoder_width=args.decoder_width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    milestones = [int(args.epochs * 0.6), int(args.epochs * 0.85)]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.3)
    start_epoch = 0
    if args.resume:
        ckpt = read_checkpoint(args.resume)
        model.load_state_dict(ckpt["state_dict"])
        start_epoch = int(ckpt.get("epoch", 0))
        if "optimizer" in ckpt:  # its learning rate is where the schedule had brought it
            opt.load_state_dict(ckpt["optimizer"])
        else:  # a final checkpoint (no optimizer state): a fresh Adam at the scheduled rate
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.3 ** sum(m <= start_epoch for m in milestones)
        sched.last_epoch = start_epoch  # the schedule continues where it was
        reporter.log(f"resumed from {args.resume} at epoch {start_epoch}")
    else:  # feature normalisation from the training windows
        with torch.no_grad():
            feats = []
            for i in range(0, len(hp_tr), 256):
                h = torch.as_tensor(hp_tr[i:i + 256], dtype=torch.float32, device=device)
                g = torch.as_tensor(go_tr[i:i + 256], dtype=torch.float32, device=device)
                feats.append(model.features(model.rotations(h, g)).reshape(-1, model.feature_mean.numel()))
            feats = torch.cat(feats)
            model.feature_mean.copy_(feats.mean(0))
            model.feature_std.copy_(feats.std(0).clamp(min=1e-3))
    return model, opt, sched, start_epoch


def run_epochs(model: "MotionPrior", opt: "torch.optim.Optimizer", sched: "torch.optim.lr_scheduler.LRScheduler",
               hp_tr: np.ndarray, go_tr: np.ndarray, start_epoch: int, data: list, args: argparse.Namespace,
               reporter: "Reporter") -> list:
    """Epochs ``start_epoch``..``args.epochs`` of shuffled mini-batches of the windows hp_tr (N,W,45),
    go_tr (N,W,3); a checkpoint with the optimiser every ``args.checkpoint_every`` epochs (not the
    last). -> history: per epoch, the mean of each loss term."""
    import torch

    from engine.prior import save_checkpoint

    device = model.feature_mean.device
    weights = {"rot": args.w_rot, "ori": args.w_ori, "pos": args.w_pos, "kl": args.w_kl}
    hp_t = torch.as_tensor(hp_tr, dtype=torch.float32, device=device)
    go_t = torch.as_tensor(go_tr, dtype=torch.float32, device=device)
    gen = torch.Generator(device="cpu").manual_seed(args.seed + start_epoch)
    history = []
    reporter.stage("train", "Training the motion prior", total=args.epochs - start_epoch)
    for epoch in range(start_epoch, args.epochs):
        model.train()
        perm = torch.randperm(len(hp_t), generator=gen).to(device)
        sums = {}
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            terms = model.losses(model.rotations(hp_t[idx], go_t[idx]), weights)
            opt.zero_grad()
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        sched.step()
        history.append({k: v / len(perm) for k, v in sums.items()})
        reporter.advance()
        if (epoch + 1) % args.checkpoint_every == 0 and epoch + 1 < args.epochs:
            save_checkpoint(args.out, model, {"epoch": epoch + 1, "optimizer": opt.state_dict(),
                                              "seed": args.seed, "data": [str(d) for d in data]})
    return history


def finish(model: "MotionPrior", history: list, hp_tr: np.ndarray, hp_te: np.ndarray, go_te: np.ndarray, data: list,
           args: argparse.Namespace, reporter: "Reporter") -> dict:
    """Write the final checkpoint (no optimiser state: a third of the size; --resume from it starts a
    fresh Adam) and measure the held-out windows hp_te (M,W,45), go_te (M,W,3) -> the summary (mm)."""
    from engine.prior import save_checkpoint

    save_checkpoint(args.out, model, {"epoch": args.epochs, "seed": args.seed, "data": [Path(d).name for d in data],
                                      "history": history[-1] if history else {}})
    model.eval()
    summary = {"train_loss": history[-1] if history else None,
               "train_windows": len(hp_tr), "held_out_windows": len(hp_te)}
    if len(hp_te):
        summary["held_out_mm"] = evaluate(model, hp_te, go_te)
        summary["mean_pose_mm"] = mean_pose_error(model, hp_tr, hp_te)
        reporter.log(f"held-out reconstruction: {summary['held_out_mm']:.2f} mm "
                     f"(mean-pose baseline {summary['mean_pose_mm']:.2f} mm)")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    _, summary, _ = train(args)
    print(f"wrote {args.out}" + (f"; held-out error {summary['held_out_mm']:.2f} mm vs mean pose "
                                  f"{summary['mean_pose_mm']:.2f} mm" if "held_out_mm" in summary else ""))
    return 0
