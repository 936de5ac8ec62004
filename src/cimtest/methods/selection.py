"""What the learned tests (`cimtest.methods.learned`) need besides their optimisation: the
greedy choice of K candidates by held-out ridge regression, and the check that a model has a
gradient in its inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cimtest.exceptions import ConfigError
from cimtest.methods._model import module_device

__all__ = ["check_differentiable", "greedy_selection"]

RIDGE = 1.0
"""Ridge penalty of the greedy selection, on standardised features."""


def greedy_selection(outputs: torch.Tensor, target: np.ndarray, k: int, seed: int
                     ) -> np.ndarray:
    """Indices (K,) int64 of the candidates chosen one at a time, each the one whose outputs,
    with those already chosen, best predict `target` (D,) by ridge regression fitted on two
    thirds of the chips and scored (mean squared error) on the rest (a seeded split)."""
    d, n = outputs.shape[:2]
    features = outputs.detach().double().reshape(d, n, -1).cpu().numpy()
    order = np.random.default_rng(seed).permutation(d)
    fit, held = order[: 2 * d // 3], order[2 * d // 3 :]
    y = (target - target[fit].mean()) / (target[fit].std() or 1.0)
    chosen: list[int] = []
    for _ in range(k):
        errors = np.full(n, np.inf)
        for j in set(range(n)) - set(chosen):
            errors[j] = _ridge_error(features[:, [*chosen, j]].reshape(d, -1), y, fit, held)
        chosen.append(int(np.argmin(errors)))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _ridge_error(x: np.ndarray, y: np.ndarray, fit: np.ndarray, held: np.ndarray) -> float:
    """Held-out mean squared error of a ridge regression of `y` on standardised `x`."""
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0) + 1e-9
    z = (x - mean) / std
    a = z[fit]
    coef = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ (y[fit] - y[fit].mean()))
    residual = y[held] - y[fit].mean() - z[held] @ coef
    return float(np.mean(residual**2))


def check_differentiable(module: nn.Module, x: torch.Tensor,
                         owner: str = "learned and optimized tests") -> None:
    """`ConfigError` unless `module`'s outputs on `x` have a finite gradient in `x` (`owner`
    names what needs it); `x` is moved to the module's device."""
    x = x.detach().to(module_device(module), copy=True).requires_grad_()
    try:
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(module(x).float().sum(), x, allow_unused=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"the model is not differentiable in its inputs ({first}); "
                          f"{owner} need its gradient") from None
    if grad is None or not torch.isfinite(grad).all():
        raise ConfigError("the model is not differentiable in its inputs (no finite gradient "
                          f"reaches them); {owner} need its gradient")
