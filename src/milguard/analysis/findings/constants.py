"""fp16 constants that hold ±inf, usually an additive attention mask made of ``finfo(float32).min``.

``finfo(float32).min = -3.4e38`` rounds to -inf in fp16. Added to attention logits right before a
softmax it still masks exactly: ``exp(-inf - max) = 0``. It breaks only where a whole row along the
softmax axis is -inf: then the row maximum is -inf too and softmax computes
``exp(-inf - (-inf)) = exp(NaN)``, a row of NaN.

So a constant holding ±inf is reported as

* ``info`` — it holds -inf only, every use is an ``add`` that goes straight into softmaxes, and
  every row of the constant along each softmax axis keeps a finite entry (a causal or padding
  mask that leaves every query something to attend to): a hazard by construction, not a failure;
* ``warning`` — otherwise: a fully masked row, +inf or NaN in the constant, or a use the analysis
  cannot vouch for (the inf flows on).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...mil import const_value


def inf_constant(var: Any) -> tuple[str, str]:
    """(severity, message) for an fp16 constant ``var`` holding ±inf."""
    value = np.asarray(const_value(var), np.float64)
    problem = _mask_problem(var, value)
    if problem is None:
        return "info", (f"fp16 constant holds -inf in {int(np.isneginf(value).sum())} entries "
                        "(a value below -65504, such as finfo(float32).min, cast to fp16): an additive "
                        "softmax mask that leaves a finite entry in every row, so exp(-inf) = 0 masks exactly")
    return "warning", f"fp16 constant holds ±inf (a value beyond ±65504 was cast to fp16); {problem}"


def _mask_problem(var: Any, value: np.ndarray) -> str | None:
    """Why ``var`` is not a harmless additive softmax mask (None when it is one)."""
    if np.isnan(value).any() or np.isposinf(value).any():
        return "it holds +inf or NaN, which no softmax masks away"
    uses = list(var.child_ops)
    if not uses or any(u.op_type != "add" for u in uses):
        types = sorted({u.op_type for u in uses}) or ["no op (a function output)"]
        return f"it is used by {', '.join(types)}, not only added to softmax logits: the inf flows on"
    for add in uses:
        out = add.outputs[0]
        softmaxes = list(out.child_ops)
        if not softmaxes or any(s.op_type != "softmax" for s in softmaxes):
            return f"{add.name} adds it, and its result does not go only into softmax: the inf flows on"
        for softmax in softmaxes:
            if _fully_masked_row(value, out, softmax):
                return (f"a whole row along the softmax axis of {softmax.name} is -inf, so that softmax "
                        "row is NaN")
    return None


def _fully_masked_row(value: np.ndarray, out: Any, softmax: Any) -> bool:
    """Whether some row of ``value`` (broadcast against ``out``) along the softmax axis is all -inf."""
    axis = const_value(softmax.inputs.get("axis"))
    rank = len(out.shape)
    axis = (int(np.asarray(axis).reshape(-1)[0]) if axis is not None else -1) % max(rank, 1)
    own = axis - (rank - value.ndim)                 # the axis in the constant, aligned from the right
    if own < 0 or value.ndim == 0 or value.shape[own] == 1:   # broadcast along the axis: one value per row
        return bool(np.isneginf(value).any())
    return bool(np.isneginf(value).all(axis=own).any())
