"""Planting a documented magnitude into a model input, calibrated at the hooked module input.

The planted input is ``x(v) = where(mask, sign * v, x0)``: the scenario's channels at its positions
are set to +v / -v (alternating per channel), everything else keeps the example input ``x0``. The
input of the target module is affine in ``v`` (only linear ops, convs and biases precede every
scenario's target), ``a * v + b``, so two forward passes give ``a`` and ``b`` and
``max |a * v + b| = magnitude`` is solved by bisection on that convex function of ``v``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import MilguardError
from .magnitudes import Scenario


class _Reached(Exception):
    """Raised by the hook to stop the forward pass once the target input is captured."""


def capture_input(model: nn.Module, where: str, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The first positional input of module ``where`` ("" = the model itself) for ``inputs``."""
    if where == "":
        return inputs[0].detach().clone()
    module = model.get_submodule(where)
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, args: tuple) -> None:
        seen.append(args[0].detach().clone())
        raise _Reached

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(*inputs)
    except _Reached:
        pass
    finally:
        handle.remove()
    return seen[0]


def plant_mask(shape: torch.Size, scenario: Scenario) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, sign) for an input of shape (1, S, C) (channels last) or (1, C, H, W) (channels first)."""
    mask, sign = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape)
    channels_first = len(shape) == 4
    n_pos = shape[2] * shape[3] if channels_first else shape[1]
    positions = range(n_pos) if scenario.positions is None else scenario.positions
    for k, c in enumerate(scenario.channels):
        for p in positions:
            idx = (0, c, p // shape[3], p % shape[3]) if channels_first else (0, p, c)
            mask[idx], sign[idx] = True, 1.0 if k % 2 == 0 else -1.0
    return mask, sign


def plant(model: nn.Module, inputs: tuple[torch.Tensor, ...], scenario: Scenario) -> tuple[torch.Tensor, ...]:
    """``inputs`` with the scenario planted into the first input, calibrated at ``scenario.where``."""
    if not scenario.channels:
        return inputs
    x0 = inputs[0]
    mask, sign = plant_mask(x0.shape, scenario)

    def planted(v: float) -> torch.Tensor:
        return torch.where(mask, sign * v, x0)

    b = capture_input(model, scenario.where, (planted(0.0), *inputs[1:])).double().numpy()
    a = capture_input(model, scenario.where, (planted(1.0), *inputs[1:])).double().numpy() - b
    v = _solve_max_abs(a, b, scenario.magnitude)
    return (planted(v), *inputs[1:])


def _solve_max_abs(a: np.ndarray, b: np.ndarray, target: float) -> float:
    """v >= 0 with max |a v + b| = target (convex in v; requires max |b| < target)."""
    def f(v: float) -> float:
        return float(np.abs(a * v + b).max())

    if f(0.0) >= target:
        raise MilguardError(f"the unplanted input already reaches {f(0.0):.3g} >= {target:.3g}")
    lo, hi = 0.0, 1.0
    while f(hi) < target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return hi
