"""Adam, its step schedule and gradient clipping, without ``torch.optim``.

``torch.optim``'s first optimiser imports ``torch._dynamo`` (its step functions are wrapped to be
compiled), about 2.8 s of every engine process's start on a 2-core CPU (issue 22). The fits here use
only plain Adam (no weight decay, no AMSGrad) with a multi-step learning-rate schedule and
gradient-norm clipping: this module is that, with the same arithmetic as torch's single-tensor Adam
(the implementation torch runs on CPU tensors), so a fit gives the same numbers as before (tested
against ``torch.optim.Adam`` in tests/test_fit.py).

    opt = Adam(params, lr=0.05, milestones=(120, 170), gamma=0.5)
    loss.backward(); clip_grad_norm(params, 1.0); opt.step()   # the schedule advances with each step
"""

import math

import torch


class Adam:
    """Adam (Kingma & Ba; torch.optim.Adam's defaults: betas 0.9 / 0.999, eps 1e-8) over a list of
    tensors, with the learning rate multiplied by ``gamma`` at each of ``milestones`` steps (as
    ``torch.optim.lr_scheduler.MultiStepLR`` stepped once per optimiser step)."""

    def __init__(self, params, lr, milestones=(), gamma=0.1, betas=(0.9, 0.999), eps=1e-8):
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
    def lr(self):
        """The learning rate of the next step."""
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= self.steps)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
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
def clip_grad_norm(params, max_norm):
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
