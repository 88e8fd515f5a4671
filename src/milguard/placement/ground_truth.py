"""Ground truth from ``MLComputePlan`` dumps taken on a Mac, and agreement with the prediction.

Only ``MLComputePlan`` (macOS 14.4+) knows where Core ML really puts each op. A dump is a JSON
file, one model per file, following coremltools' API (``ct.models.compute_plan``):
``MLModelStructureProgramOperation`` gives ``operator_name`` and ``outputs``;
``MLComputePlanDeviceUsage`` gives ``preferred_compute_device`` and
``supported_compute_devices``; ``MLComputePlanCost`` gives ``weight`` in [0, 1]::

    {
      "format": "milguard.compute_plan/1",
      "source": "where the dump comes from (a URL, or the machine it was taken on)",
      "device": "Apple M3 Pro", "os": "macOS 15.2", "coremltools": "9.0",
      "compute_units": "CPU_AND_NE",
      "functions": {
        "main": [
          {"outputs": ["var_20_cast_fp16"], "operator": "ios18.mul",
           "preferred": "ane", "supported": ["cpu", "ane"], "cost": 0.0123},
          {"outputs": ["var_25_to_fp16"], "operator": "const", "preferred": null, "supported": []}
        ]
      }
    }

Operations are listed in the plan's program order. ``name`` (the MIL op name) is optional:
ops are joined to the prediction by ``name`` if given, else by their output names (through
the function's vars when ``compare`` gets the function, else assuming op name = first output
name, which holds for most converted ops). Devices may be written ``ane``/``gpu``/``cpu`` or
as the class names ``MLNeuralEngineComputeDevice``/``MLGPUComputeDevice``/``MLCPUComputeDevice``;
``null`` or ``"unreported"`` means the plan gave no device (const ops). ``cost`` may be null.

``record_from_plan`` turns a live ``MLComputePlan`` into this format (it runs on macOS only);
``evaluate(model, dump)`` predicts the model with the dump's compute units and compares.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from milguard.errors import ModelError

from .predict import DEVICES, Placement, as_function, placed_ops, predict

FORMAT = "milguard.compute_plan/1"
_DEVICE_NAMES = {
    "ane": "ane", "gpu": "gpu", "cpu": "cpu", "neuralengine": "ane", "neural_engine": "ane",
    "mlneuralenginecomputedevice": "ane", "mlgpucomputedevice": "gpu",
    "mlcpucomputedevice": "cpu",
}


@dataclass(frozen=True)
class TruthOp:
    outputs: tuple[str, ...]
    operator: str
    preferred: str | None                 # "ane" | "gpu" | "cpu" | None (unreported)
    supported: tuple[str, ...] = ()
    cost: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class GroundTruth:
    functions: dict[str, tuple[TruthOp, ...]]
    compute_units: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def ops(self, function: str = "main") -> tuple[TruthOp, ...]:
        return self.functions.get(function, ())


@dataclass(frozen=True)
class Agreement:
    compared: int                                  # truth ops with a device matched to a prediction
    correct: int
    accuracy: float | None                         # correct / compared (None if nothing compared)
    truth_segments: int                            # same-device runs over the compared ops
    predicted_segments: int
    segment_count_error: int                       # predicted - truth
    confusion: dict[str, dict[str, int]]           # truth device -> predicted device -> count
    mismatches: tuple[tuple[str, str, str], ...]   # (op, truth, predicted)
    unmatched: tuple[str, ...]                     # truth ops (first output) with no prediction
    truth_ane_cost_share: float | None = None      # Σ cost on the ANE / Σ cost, both by the plan
    predicted_ane_cost_share: float | None = None  # same weights, predicted devices

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared, "correct": self.correct, "accuracy": self.accuracy,
            "truth_segments": self.truth_segments, "predicted_segments": self.predicted_segments,
            "segment_count_error": self.segment_count_error,
            "confusion": {t: dict(row) for t, row in self.confusion.items()},
            "mismatches": [list(m) for m in self.mismatches], "unmatched": list(self.unmatched),
            "truth_ane_cost_share": self.truth_ane_cost_share,
            "predicted_ane_cost_share": self.predicted_ane_cost_share,
        }


def load(path: str | os.PathLike) -> GroundTruth:
    """Read a dump in the format above; ModelError with one line if it is not one."""
    try:
        with open(path, encoding="utf-8") as fh:
            return parse(json.load(fh))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the compute-plan dump ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a milguard compute-plan dump ({exc})") from None


def parse(record: Mapping[str, Any]) -> GroundTruth:
    if record.get("format") != FORMAT:
        raise ValueError(f"format is {record.get('format')!r}, expected {FORMAT!r}")
    functions = {
        fn: tuple(TruthOp(outputs=tuple(e["outputs"]), operator=str(e["operator"]),
                          preferred=_device(e.get("preferred")),
                          supported=tuple(d for d in map(_device, e.get("supported") or ()) if d),
                          cost=None if e.get("cost") is None else float(e["cost"]),
                          name=e.get("name"))
                  for e in entries)
        for fn, entries in record["functions"].items()
    }
    meta = {k: v for k, v in record.items() if k not in ("functions", "format", "compute_units")}
    return GroundTruth(functions, record.get("compute_units"), meta)


def _device(value: Any) -> str | None:
    if value is None or str(value).lower() in ("", "unreported", "none", "null"):
        return None
    key = type(value).__name__ if not isinstance(value, str) else value
    device = _DEVICE_NAMES.get(key.lower().replace("proxy", ""))
    if device is None:
        raise ValueError(f"unknown device {value!r}")
    return device


def compare(predicted: Mapping[str, Placement], truth: GroundTruth, *, function: Any = None,
            function_name: str = "main") -> Agreement:
    """Agreement of ``predicted`` ({op name: Placement}) with the plan's preferred devices."""
    var_to_op: dict[str, str] = {}
    if function is not None:
        for op, _ in placed_ops(as_function(function, function_name)):
            var_to_op.update({v.name: op.name for v in op.outputs})
    pairs: list[tuple[str, str, str, float | None]] = []
    unmatched: list[str] = []
    for entry in truth.ops(function_name):
        if entry.preferred is None:
            continue
        candidates = [entry.name] if entry.name else []
        candidates += [var_to_op.get(o, o) for o in entry.outputs]
        name = next((c for c in candidates if c in predicted), None)
        if name is None:
            unmatched.append(entry.outputs[0] if entry.outputs else entry.operator)
            continue
        pairs.append((name, entry.preferred, predicted[name].device, entry.cost))
    confusion = {t: {p: 0 for p in DEVICES} for t in DEVICES}
    for _, t, p, _ in pairs:
        confusion[t][p] += 1
    correct = sum(1 for _, t, p, _ in pairs if t == p)
    truth_segs, pred_segs = _runs([t for _, t, _, _ in pairs]), _runs([p for _, _, p, _ in pairs])
    truth_share, predicted_share = _ane_cost_shares(pairs)
    return Agreement(
        compared=len(pairs), correct=correct,
        accuracy=correct / len(pairs) if pairs else None,
        truth_segments=truth_segs, predicted_segments=pred_segs,
        segment_count_error=pred_segs - truth_segs,
        confusion=confusion,
        mismatches=tuple((n, t, p) for n, t, p, _ in pairs if t != p),
        unmatched=tuple(unmatched),
        truth_ane_cost_share=truth_share,
        predicted_ane_cost_share=predicted_share,
    )


def _ane_cost_shares(pairs: list[tuple[str, str, str, float | None]]
                     ) -> tuple[float | None, float | None]:
    """Share of the plan's cost weight on the ANE by true and by predicted device (all costs known)."""
    if not pairs or any(c is None for *_, c in pairs):
        return None, None
    total = sum(c for *_, c in pairs)
    if total <= 0:
        return None, None
    return (sum(c for _, t, _, c in pairs if t == "ane") / total,
            sum(c for _, _, p, c in pairs if p == "ane") / total)


def evaluate(model: Any, dump: str | os.PathLike | GroundTruth, *, chip: str = "M1",
             compute_units: str | None = None, function: str = "main") -> Agreement:
    """Predict ``model`` with the dump's compute units (or ``compute_units``) and compare.

    ``model`` is what ``predict`` accepts (Program, MLModel, package path); ``dump`` a path
    to a compute-plan JSON or a loaded ``GroundTruth``.
    """
    truth = dump if isinstance(dump, GroundTruth) else load(dump)
    units = compute_units or truth.compute_units or "ALL"
    fn = as_function(model, function)
    return compare(predict(fn, compute_units=units, chip=chip), truth, function=fn,
                   function_name=function)


def _runs(devices: list[str]) -> int:
    return sum(1 for i, d in enumerate(devices) if i == 0 or d != devices[i - 1])


def record_from_plan(plan: Any, *, compute_units: str, function: str = "main",
                     **meta: Any) -> dict[str, Any]:
    """A dump record from a live ``ct.models.compute_plan.MLComputePlan`` (macOS only).

    Usage on a Mac::

        plan = ct.models.compute_plan.MLComputePlan.load_from_path(
            mlmodel.get_compiled_model_path(), compute_units=ct.ComputeUnit.CPU_AND_NE)
        record = record_from_plan(plan, compute_units="CPU_AND_NE", device="Apple M3 Pro")
        json.dump(record, open("plan.json", "w"), indent=1)
    """
    entries = []
    block = plan.model_structure.program.functions[function].block
    for op in block.operations:
        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
        cost = plan.get_estimated_cost_for_mlprogram_operation(op)
        entries.append({
            "outputs": [o.name for o in op.outputs],
            "operator": op.operator_name,
            "preferred": _device(usage.preferred_compute_device) if usage else None,
            "supported": [_device(d) for d in usage.supported_compute_devices] if usage else [],
            "cost": float(cost.weight) if cost is not None else None,
        })
    return {"format": FORMAT, **meta, "compute_units": compute_units,
            "functions": {function: entries}}
