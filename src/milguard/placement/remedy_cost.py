"""What a remedy adds to a region's cost, by the relative cost model (RELATIVE ONLY, see cost.py).

A region at risk in fp16 can be rewritten into an fp16-safe form ("rescale") or kept fp32 (an
"fp32" island). Where the region is expected to run decides which is cheaper:

* **rescale** stays on the region's device and adds ``passes`` element-wise passes over the
  rescaled tensor (read and write, fp16): ``passes · t_op(device, n, 4n bytes)``; no transition.
* **fp32 island** on the Neural Engine leaves it (D1): the island runs on ``alt`` (the GPU under
  ALL and CPU_AND_GPU, the CPU under CPU_AND_NE and CPU_ONLY), which costs two device switches, two
  dispatch floors (the island's segment and the second half of the split Neural Engine segment),
  the fp16<->fp32 copies of the values crossing the island boundary, the two casts, and the region's
  ops at fp32 width on ``alt`` instead of fp16 on the Neural Engine: two transitions. Off the Neural
  Engine (CPU_AND_GPU, CPU_ONLY, or a small model under the size floor) an island stays on its
  device: it costs the casts and the wider fp32 bytes, and no transition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from milguard.mil.shapes import numel

from .cost import CostModel
from .facts import op_facts

FP16_BYTES, FP32_BYTES = 2, 4
ISLAND_DEVICE = {"ALL": "gpu", "CPU_AND_NE": "cpu", "CPU_AND_GPU": "gpu", "CPU_ONLY": "cpu"}


@dataclass(frozen=True)
class RemedyCost:
    transitions: int          # device transitions the remedy adds
    relative: float           # relative cost units it adds (µs-scale; not a latency)

    def to_dict(self) -> dict[str, Any]:
        return {"transitions": self.transitions, "relative": self.relative}


def _fp16_bytes(facts: Any) -> float:
    return facts.bytes * FP16_BYTES / FP32_BYTES if facts.fp32 else facts.bytes


def rescale_cost(device: str, elements: int, passes: int, model: CostModel | None = None) -> RemedyCost:
    """``passes`` element-wise passes over ``elements`` fp16 values on ``device``."""
    model = model or CostModel()
    per_pass = model.op_time(device, elements, 2 * elements * FP16_BYTES)
    return RemedyCost(0, passes * per_pass * 1e6)


def island_cost(ops: Iterable[Any], boundary: Iterable[Any], device: str, compute_units: str,
                model: CostModel | None = None) -> RemedyCost:
    """An fp32 island of ``ops`` whose region is expected on ``device`` in fp16; ``boundary`` are
    the vars crossing into and out of it."""
    model = model or CostModel()
    alt = ISLAND_DEVICE[compute_units] if device == "ane" else device    # where the island runs
    crossing = sum(numel(v) for v in boundary)
    casts = model.op_time(alt, 0, crossing * (FP16_BYTES + FP32_BYTES))
    moved = 0.0                            # the region's ops at fp32 width on alt, less their fp16 time on device
    for facts in map(op_facts, ops):
        fp16_bytes = _fp16_bytes(facts)
        moved += model.op_time(alt, facts.flops, 2 * fp16_bytes) - model.op_time(device, facts.flops, fp16_bytes)
    if device != "ane":
        return RemedyCost(0, (casts + moved) * 1e6)
    total = (2 * model.switch("ane", alt) + model.dispatch_floor[alt] + model.dispatch_floor["ane"]
             + model.copy_time(crossing * FP16_BYTES, cross_precision=True) + casts + moved)
    return RemedyCost(2, total * 1e6)
