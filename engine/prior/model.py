"""The hand motion prior: a NeMF-style motion VAE (docs/method.md section 4).

Encoder E over a window: per frame and joint X_t = (position 3, velocity 3, global rotation as 6D 6,
angular velocity 3) -> R^{16 x 15} (NeMF's features: positions root-relative by forward kinematics
of the hand model at mean shape, rotations accumulated down the chain), normalised by the training
set's statistics, then 1D convolutions over time and a mean over the window -> mu, log sigma^2 of z.

Decoder D(t, z): a neural motion field, an MLP of a Fourier encoding of the time t (seconds from the
window start, relative to the trained window length, so any frame rate and any length inside the
window decode from one latent; between the frames of its training grid by interpolation, see
``decode_rot``) concatenated with z, giving 6D rotations for the 16 joints: joint 0
is the root's orientation relative to the window's first frame (canonical root), joints 1..15 the
15 MANO joint rotations (``hand_pose``). The fitter uses the latter; the global rotation is a
variable of its own there (stage II's Phi).

Much smaller than the authors' NeMF (sizes of both in docs/prior.md):
the open training data here is small, and the fitter backpropagates through it every iteration.

Losses (``losses``): L_rot (local joint rotations, squared Frobenius), L_ori (root orientation),
L_pos (joint positions through forward kinematics, cm^2), L_KL (to N(0, I)), weights configurable.
"""

import math

import numpy as np
import roma
import torch
from smplx.lbs import batch_rigid_transform
from torch import Tensor, nn

from engine.contract import joints as J

NUM_JOINTS = 16
FEATURES = 15


def rotmat_to_6d(R: Tensor) -> Tensor:
    """(...,3,3) -> (...,6): the first two columns (Zhou et al. 2019)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def sixd_to_rotmat(x: Tensor) -> Tensor:
    """(...,6) -> (...,3,3) by Gram-Schmidt (roma.special_gramschmidt on the two columns)."""
    return roma.special_gramschmidt(torch.stack([x[..., :3], x[..., 3:]], dim=-1))


def blend_at(q: Tensor, pos: Tensor) -> Tensor:
    """Unit quaternions q (B,n,J,4) read at fractional positions pos (B,T) along their second axis
    -> (B,T,J,4): the normalised linear blend of the two entries beside each position (signs
    aligned; positions past the ends take the end entry). Shared by the prior's decoding between
    grid frames and the fit's windows (engine.fit.windows.resample_windows); the training data's
    resampling is exact SLERP instead (engine.prior.data.resample)."""
    n = q.shape[1]
    i0 = pos.floor().long().clamp(0, max(n - 2, 0))  # (B,T)
    i1 = (i0 + 1).clamp(max=n - 1)
    w = (pos - i0).clamp(0, 1)[..., None, None]
    rows = torch.arange(q.shape[0], device=q.device)[:, None]
    q0, q1 = q[rows, i0], q[rows, i1]  # (B,T,J,4)
    q1 = torch.where((q0 * q1).sum(-1, keepdim=True) < 0, -q1, q1)
    return roma.quat_normalize((1 - w) * q0 + w * q1)


class MotionPrior(nn.Module):
    def __init__(self, rest_joints: np.ndarray | Tensor, window: int = 64, fps: float = 30.0, latent: int = 64,
                 hidden: int = 256, decoder_width: int = 384, decoder_layers: int = 5, frequencies: int = 8) -> None:
        """rest_joints (16,3) m: the hand model's rest skeleton at mean shape (the features' forward
        kinematics); window frames at fps; latent D; encoder channels ``hidden``; the decoder's MLP
        ``decoder_layers`` x ``decoder_width`` on ``frequencies`` Fourier features of time."""
        super().__init__()
        self.config = {"window": int(window), "fps": float(fps), "latent": int(latent), "hidden": int(hidden),
                       "decoder_width": int(decoder_width), "decoder_layers": int(decoder_layers),
                       "frequencies": int(frequencies)}
        self.window, self.fps, self.latent = int(window), float(fps), int(latent)
        self.register_buffer("rest_joints", torch.as_tensor(np.asarray(rest_joints), dtype=torch.float32))  # (16,3)
        self.register_buffer("parents", torch.as_tensor(J.MANO_PARENTS))
        self.register_buffer("feature_mean", torch.zeros(NUM_JOINTS * FEATURES))
        self.register_buffer("feature_std", torch.ones(NUM_JOINTS * FEATURES))
        C = NUM_JOINTS * FEATURES
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv1d(C, hidden, 5, padding=2), act,
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), act,
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), act,
            nn.Conv1d(hidden, hidden, 5, padding=2), act,
        )
        self.to_latent = nn.Linear(hidden, 2 * latent)
        self.frequencies = int(frequencies)
        d_in = 2 * self.frequencies + 1 + latent
        layers = [nn.Linear(d_in, decoder_width), act]
        for _ in range(decoder_layers - 1):
            layers += [nn.Linear(decoder_width, decoder_width), act]
        self.decoder = nn.Sequential(*layers)
        self.to_rot = nn.Linear(decoder_width, NUM_JOINTS * 6)
        nn.init.zeros_(self.to_rot.weight)
        with torch.no_grad():  # start at the identity rotation for every joint
            self.to_rot.bias.copy_(rotmat_to_6d(torch.eye(3)).repeat(NUM_JOINTS))

    # ------------------------------------------------------------------ kinematics and features
    def rotations(self, hand_pose: Tensor, global_orient: Tensor | None = None) -> Tensor:
        """(B,T,45) [+ (B,T,3)] -> local rotation matrices (B,T,16,3,3) with a canonical root."""
        B, T = hand_pose.shape[:2]
        local = roma.rotvec_to_rotmat(hand_pose.reshape(B, T, 15, 3))
        if global_orient is None:
            root = torch.eye(3, dtype=hand_pose.dtype, device=hand_pose.device).expand(B, T, 3, 3)
        else:
            Rg = roma.rotvec_to_rotmat(global_orient)
            root = Rg[:, :1].transpose(-1, -2) @ Rg  # relative to the first frame
        return torch.cat([root[:, :, None], local], dim=2)

    def forward_kinematics(self, rot: Tensor) -> tuple[Tensor, Tensor]:
        """Local rotations (B,T,16,3,3) -> joint positions (B,T,16,3) root at 0, global rotations."""
        B, T = rot.shape[:2]
        joints = self.rest_joints[None].expand(B * T, -1, -1)
        pos, A = batch_rigid_transform(rot.reshape(B * T, 16, 3, 3), joints, self.parents)
        pos = pos - pos[:, :1]
        return pos.reshape(B, T, 16, 3), A[..., :3, :3].reshape(B, T, 16, 3, 3)

    def features(self, rot: Tensor, fps: float | None = None) -> Tensor:
        """(B,T,16,3,3) local rotations -> normalised features (B,T,240)."""
        fps = self.fps if fps is None else fps
        pos, glob = self.forward_kinematics(rot)
        vel = torch.diff(pos, dim=1, prepend=pos[:, :1]) * fps
        rel = glob[:, :-1].transpose(-1, -2) @ glob[:, 1:]
        ang = roma.rotmat_to_rotvec(rel) * fps
        ang = torch.cat([ang[:, :1], ang], dim=1)
        x = torch.cat([pos, vel, rotmat_to_6d(glob), ang], dim=-1)  # (B,T,16,15)
        x = x.reshape(*x.shape[:2], -1)
        return (x - self.feature_mean) / self.feature_std

    # ------------------------------------------------------------------ encoder / decoder
    def encode_rot(self, rot: Tensor, fps: float | None = None) -> tuple[Tensor, Tensor]:
        """Local rotations (B,T,16,3,3) -> mu (B,D), sigma (B,D) of the posterior q(z | window)."""
        h = self.encoder(self.features(rot, fps).transpose(1, 2)).mean(-1)
        mu, logvar = self.to_latent(h).chunk(2, dim=-1)
        sigma = torch.exp(0.5 * logvar.clamp(-12, 8))
        return mu, sigma

    def encode(self, hand_pose: Tensor, global_orient: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B,T,45) poses at the prior's frame rate (+ optional (B,T,3)) -> mu (B,D), sigma (B,D)."""
        return self.encode_rot(self.rotations(hand_pose, global_orient))

    def time_encoding(self, times: Tensor) -> Tensor:
        """(B,T) seconds -> (B,T,2F+1)."""
        duration = (self.window - 1) / self.fps
        u = times / duration  # 0..1 inside the trained window
        k = 2.0 ** torch.arange(self.frequencies, device=times.device, dtype=times.dtype) * math.pi
        ang = u[..., None] * k
        return torch.cat([u[..., None], torch.sin(ang), torch.cos(ang)], dim=-1)

    def decode_field(self, z: Tensor, times: Tensor) -> Tensor:
        """The neural motion field itself: z (B,D), times (B,T) seconds -> (B,T,16,3,3). Smooth only
        where it was trained: on the prior's frame grid (``decode_rot`` asks it there)."""
        B, T = times.shape
        h = torch.cat([self.time_encoding(times), z[:, None].expand(B, T, -1)], dim=-1)
        return sixd_to_rotmat(self.to_rot(self.decoder(h)).reshape(B, T, NUM_JOINTS, 6))

    def decode_rot(self, z: Tensor, times: Tensor) -> Tensor:
        """z (B,D), times (B,T) seconds from the window start -> local rotation matrices (B,T,16,3,3).

        The field is decoded on the frame grid it was trained on (multiples of 1 / self.fps) and a time
        between two grid frames is the normalised linear blend of their quaternions. NeMF's field is
        continuous in t, but trained, as here, only at its grid times its highest Fourier features
        (periods of 2-4 frames) are unconstrained in between: asked at a 25 fps clip's times, the
        shipped weights' fingers jittered several times as much as on the grid (docs/history.md),
        and stage II passed that on to the fit. Times on the grid (any clip at the prior's rate)
        decode exactly as the field does."""
        pos = times * self.fps  # (B,T) grid positions
        near = torch.round(pos)
        if bool(((pos - near).abs() < 1e-3).all()):
            return self.decode_field(z, near / self.fps)
        n = int(torch.ceil(pos.max()).item()) + 2  # grid frames 0..n-1 cover every time asked
        grid = self.decode_field(z, self.default_times(times.shape[0], n, z.device))  # (B,n,16,3,3)
        return roma.unitquat_to_rotmat(blend_at(roma.rotmat_to_unitquat(grid), pos))

    def decode(self, z: Tensor, times: Tensor) -> Tensor:
        """z (B,D), times (B,T) seconds from the window start -> hand_pose (B,T,45)."""
        rot = self.decode_rot(z, times)
        return roma.rotmat_to_rotvec(rot[:, :, 1:]).reshape(*times.shape, 45)

    def default_times(self, B: int, T: int | None = None, device: torch.device | str | None = None) -> Tensor:
        """(B,T) the prior's frame grid in seconds, 0 .. (T-1)/fps (T: the window)."""
        T = self.window if T is None else T
        return (torch.arange(T, device=device, dtype=torch.float32) / self.fps)[None].expand(B, T)

    @staticmethod
    def neg_log_likelihood(z: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
        """-log N(z; mu, diag(sigma^2)) of z, mu, sigma (B,D), summed over the latent dimensions: (B,)."""
        D = z.shape[-1]
        return (0.5 * ((z - mu) / sigma) ** 2 + torch.log(sigma)).sum(-1) + 0.5 * D * math.log(2 * math.pi)

    # ------------------------------------------------------------------ training losses
    def losses(self, rot: Tensor, weights: dict, sample: bool = True) -> dict[str, Tensor]:
        """Reconstruction of one batch of windows (B,T,16,3,3) through the VAE: dict of scalar terms
        (rot, ori: squared Frobenius; pos: cm^2; kl; total = the weighted sum; mpjpe_mm)."""
        B, T = rot.shape[:2]
        mu, sigma = self.encode_rot(rot)
        z = mu + sigma * torch.randn_like(sigma) if sample else mu
        rec = self.decode_rot(z, self.default_times(B, T, rot.device))
        pos_true, _ = self.forward_kinematics(rot)
        pos_rec, _ = self.forward_kinematics(rec)
        terms = {
            "rot": ((rec[:, :, 1:] - rot[:, :, 1:]) ** 2).sum((-1, -2)).mean(),
            "ori": ((rec[:, :, 0] - rot[:, :, 0]) ** 2).sum((-1, -2)).mean(),
            "pos": (((pos_rec - pos_true) * 100) ** 2).sum(-1).mean(),  # cm^2
            "kl": (0.5 * (mu ** 2 + sigma ** 2 - 1) - torch.log(sigma)).sum(-1).mean(),
        }
        terms["total"] = sum(weights[k] * terms[k] for k in ("rot", "ori", "pos", "kl"))
        with torch.no_grad():  # finger articulation error: the true root, decoded joints 1..15
            pos_fingers, _ = self.forward_kinematics(torch.cat([rot[:, :, :1], rec[:, :, 1:]], dim=2))
            terms["mpjpe_mm"] = (pos_fingers - pos_true).norm(dim=-1).mean() * 1000
        return terms
