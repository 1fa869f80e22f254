"""The two-stage fit keeps what it optimised: divergence judged on the returned iterate, the shape
found where there is data, the result's translation optimised for its (filtered) rotation, smoothness
and prior windows on the frames' real times."""

import numpy as np
import pytest
import torch

from engine.fit.stages import FitOptions, _optimise


def _lopsided_loss(x):
    """(x - 1)^2, fifty times steeper past the minimum: Adam at a high rate overshoots into the steep
    side, so the loss climbs above its start after it has reached the minimum."""
    d = x - 1
    return torch.where(d < 0, d ** 2, 50 * d ** 2).sum()


def test_a_loss_that_rises_after_its_best_is_not_a_divergence():
    x = torch.zeros(1, requires_grad=True)
    seen = []

    def closure():
        loss = _lopsided_loss(x)
        seen.append(float(loss.detach()))
        return loss

    converged, best = _optimise([x], closure, 6, FitOptions(lr=0.5, tol=0.0))
    assert seen[-1] > seen[0]  # the last iterate is worse than the start...
    assert best == min(seen) < 1e-3 and float(x.detach()) == pytest.approx(1.0, abs=1e-3)  # ...the returned one is not
    assert converged


def test_a_run_where_every_step_is_worse_than_the_start_diverges():
    x = torch.zeros(1, requires_grad=True)
    seen = []

    def closure():
        loss = ((x - 1) ** 2).sum()
        seen.append(float(loss.detach()))
        return loss

    converged, best = _optimise([x], closure, 10, FitOptions(lr=1e6, tol=0.0))  # absurd steps
    assert min(seen[1:]) > seen[0] and best == seen[0] and float(x.detach()) == 0.0  # the start, kept
    assert not converged


def test_a_non_finite_loss_still_diverges_and_leaves_the_best_finite_iterate():
    x = torch.zeros(1, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        loss = ((x - 1) ** 2).sum()
        return loss * float("nan") if len(calls) == 5 else loss

    converged, best = _optimise([x], closure, 20, FitOptions(lr=0.05, tol=0.0))
    assert not converged and len(calls) == 5
    assert np.isfinite(best) and float(((x.detach() - 1) ** 2).sum()) == pytest.approx(best)
