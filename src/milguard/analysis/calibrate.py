"""Observed ranges: per-var min/max from executor traces on sample inputs.

Two runs per sample, both through the reference executor with ``trace=True``:

* the **reference** run of the retyped program (:func:`milguard.analysis.reference.widened`):
  what every op wants to produce, in fp32 range;
* the **typed** run of the program as it is: what fp16 actually produces (inf, NaN, flushed
  zeros included).

Samples are a dict ``{input name: array}``, a list of such dicts, a path to an ``.npz`` file (one
sample: its arrays by input name), or a list of such paths. Observed ranges are the hull over
all samples (``Interval.of`` per var, NaN flagged).

Every sample is checked against the function's declared inputs before anything runs
(:func:`milguard.executor.inputs.check_inputs`: numbers only, shapes within the declared flexible
dims); a state input a sample does not give starts as zeros, as Core ML allocates it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import MilguardError, ModelError
from ..mil import load
from .interval import Interval
from .reference import widened


@dataclass
class Calibration:
    """Per var: observed interval in the fp32 reference and in the typed run, over all samples."""

    function: str
    samples: int
    reference: dict[str, Interval] = field(default_factory=dict)
    actual: dict[str, Interval] = field(default_factory=dict)

    def nonfinite(self, var: str) -> bool:
        """Whether the typed run produced inf or NaN in ``var`` for some sample."""
        got = self.actual.get(var)
        return got is not None and (got.may_nan or got.has_inf)


def labelled_samples(calibration: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(where, sample) per sample: the .npz path, or "calibration sample i" for a dict."""
    if isinstance(calibration, (str, os.PathLike)):
        return [(str(calibration), _npz(Path(calibration)))]
    if isinstance(calibration, Mapping):
        return [("calibration sample 1", {k: np.asarray(v) for k, v in calibration.items()})]
    if isinstance(calibration, Iterable):
        out: list[tuple[str, dict[str, np.ndarray]]] = []
        for item in calibration:
            for where, sample in labelled_samples(item):
                out.append((f"calibration sample {len(out) + 1}" if isinstance(item, Mapping) else where, sample))
        if not out:
            raise MilguardError("calibration: no samples given")
        return out
    raise MilguardError(f"calibration: expected a dict of arrays, a list of them or an .npz path, "
                        f"got a {type(calibration).__name__}")


def checked_samples(model: Any, calibration: Any, function: str = "main") -> list[dict[str, np.ndarray]]:
    """The samples, each checked against ``function``'s declared inputs (states filled in)."""
    from ..executor.inputs import check_inputs
    from ..executor.run import declared

    inputs = declared(model, function)
    return [check_inputs(inputs, sample, where) for where, sample in labelled_samples(calibration)]


def _npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ModelError(f"{path}: no such calibration file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises several kinds for a bad file
        raise ModelError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None


def calibrate(model: Any, calibration: Any, *, function: str = "main",
              accumulate: str = "fp32") -> Calibration:
    """Run every sample through the fp32 reference and the typed program; hull the traces."""
    from ..executor import prepare

    loaded = load(model)
    samples = checked_samples(loaded, calibration, function)
    reference = prepare(widened(loaded.program, function), function=function)   # each prepared once, run per sample
    typed = prepare(loaded, accumulate=accumulate, function=function)
    cal = Calibration(function=function, samples=len(samples))
    for sample in samples:
        with np.errstate(all="ignore"):
            ref = reference(_as_fp32(sample), trace=True)
            act = typed(sample, trace=True)
        _merge(cal.reference, ref)
        _merge(cal.actual, act)
    return cal


def _as_fp32(sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: (v.astype(np.float32) if np.asarray(v).dtype == np.float16 else v) for k, v in sample.items()}


def _merge(into: dict[str, Interval], trace: Mapping[str, Any]) -> None:
    for name, value in trace.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            continue
        iv = Interval.of(arr)
        into[name] = into[name].hull(iv) if name in into else iv
