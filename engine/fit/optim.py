"""Adam, its step schedule and gradient clipping, without ``torch.optim``.

``torch.optim``'s first optimiser imports ``torch._dynamo`` (its step functions are wrapped to be
compiled), about 2.8 s of every engine process's start on a 2-core CPU (issue 22). The fits here use
only plain Adam (no weight decay, no AMSGrad) with a multi-step learning-rate schedule and
gradient-norm clipping: this module is that, with the same arithmetic as torch's single-tensor Adam
(the implementation torch runs on CPU tensors), so a fit gives the same numbers as before (tested
against ``torch.optim.Adam`` in tests/test_fit.py).

    opt = Adam(params, lr=0.05, milestones=(120, 170), gamma=0.5)
    loss.backward(); clip_grad_norm(params, 1.0); opt.step()   # the schedule advances with each step
    converged, best = optimise(params, closure, iters, options, reporter, tol)  # the fit's loop

``optimise`` is the loop every stage of the fit runs (docs/method.md section 5, "Optimisation"):
Adam at ``options.lr`` with a three-phase step schedule, gradient clipping, an early stop when a
phase's loss is flat, and the best iterate kept.
"""

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # annotations only: this module imports nothing of the engine
    from engine.contract.progress import Reporter
    from engine.fit.options import FitOptions


class Adam:
    """Adam (Kingma & Ba; torch.optim.Adam's defaults: betas 0.9 / 0.999, eps 1e-8) over a list of
    tensors, with the learning rate multiplied by ``gamma`` at each of ``milestones`` steps (as
    ``torch.optim.lr_scheduler.MultiStepLR`` stepped once per optimiser step)."""

    def __init__(self, params: Iterable[Tensor], lr: float, milestones: Iterable[int] = (), gamma: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params]
        self.base_lr = float(lr)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= self.steps)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr = self.lr
        self.steps += 1
        step = self.steps
        bias1 = 1 - self.beta1 ** step
        bias2_sqrt = math.sqrt(1 - self.beta2 ** step)
        step_size = lr / bias1
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g.conj(), value=1 - self.beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


@torch.no_grad()
def clip_grad_norm(params: list[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients of ``params`` so that their joint 2-norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``); returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2) for g in grads]), 2)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


def optimise(params: list[Tensor], closure: Callable[[], Tensor], iters: int, options: "FitOptions",
             reporter: "Reporter | None" = None, tol: float | None = None) -> tuple[bool, float]:
    """Adam with the step schedule. Leaves params at the best iterate and returns (converged, best
    loss). Divergence is judged on what is returned, the best iterate: converged is False when the
    loss became non-finite (params are left at the best finite iterate) or when no step brought it
    back to its start (every iterate worse than the first: the best is the start, nothing was
    fitted). A loss that rose again after its best (Adam overshooting late in the run) is not a
    divergence: the best iterate is what is kept.

    The schedule has three phases, at lr, lr / 2 and lr / 4, of at most 60 %, 25 % and 15 % of
    ``iters``. With a tolerance ``tol`` (the stage's: ``FitOptions.tol1`` / ``tol2``) a phase also ends
    when it has converged: its best loss improved by less than ``tol`` of itself over the last
    ``options.patience`` iterations; the last phase converged, the stage stops. ``tol`` 0 (or None):
    the fixed schedule, every iteration run. params: the leaf tensors optimised (any shapes), changed
    in place; closure: the loss (a scalar tensor) at their current values; options: lr, clip_grad and
    patience are read; reporter: advanced once per iteration (and by the iterations an early stop
    skips)."""
    opt = Adam(params, lr=options.lr)
    ends = [int(iters * 0.6), int(iters * 0.85), iters]  # where each phase ends at the latest
    phase, phase_start = 0, 0
    history, bests = [], []
    best = (float("inf"), [p.detach().clone() for p in params])
    for it in range(iters):
        while phase < 2 and it >= ends[phase]:
            phase, phase_start = phase + 1, it
        opt.base_lr = options.lr * 0.5 ** phase
        opt.zero_grad()
        loss = closure()
        value = float(loss.detach())
        if not math.isfinite(value):
            with torch.no_grad():  # restore the best finite state and stop
                for p, b in zip(params, best[1]):
                    p.copy_(b)
            return False, best[0]
        if value < best[0]:
            best = (value, [p.detach().clone() for p in params])
        loss.backward()
        clip_grad_norm(params, options.clip_grad)
        opt.step()
        history.append(value)
        bests.append(best[0])
        if reporter is not None:
            reporter.advance()
        p = options.patience
        if tol and it - phase_start >= p and bests[-p - 1] - best[0] <= tol * abs(best[0]):
            if phase == 2:  # converged in the last phase: done
                if reporter is not None:
                    reporter.advance(iters - it - 1)
                break
            phase, phase_start = phase + 1, it + 1  # converged at this rate: on to the next, smaller one
            ends[phase - 1] = it + 1
    with torch.no_grad():
        for p, b in zip(params, best[1]):
            p.copy_(b)
    if not history:  # no iteration at all (iters 0): nothing to keep
        return False, best[0]
    return len(history) == 1 or min(history[1:]) <= history[0], best[0]
