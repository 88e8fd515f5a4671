"""A relative cost model for a placed program. RELATIVE ONLY: it ranks variants, it is not a latency.

Structure (after ANEForge's _cost.py): one dispatch floor per segment, plus the work of its
ops, plus a price per device switch and per byte copied across a boundary::

    T = Σ_seg [ floor(dev) + Σ_op t_op ]
      + Σ_boundary switch(a, b)
      + Σ_crossing bytes · κ / copy_bandwidth
    t_op = max(FLOPs / peak_flops(dev), bytes / bandwidth(dev))      (a roofline per op)

ANEForge writes the segment term as ``floor + Σ_op max(0, t_op − floor)``.
Subtracting a 100 µs floor from every op makes all ops of a transformer layer free, so an
fp32 layer on the GPU would cost exactly what the fp16 layer costs on the Neural Engine; we
charge each op's whole roofline time instead, which keeps the ranking the seed measurement
shows (fp16 < fp16 with islands < fp32).

κ is ``kappa_cross_precision`` when the producer and the consumer of a crossing value differ
in precision (one fp32-typed, the other not: the copy converts fp16↔fp32, P5a), else
``kappa_same_precision``. A *crossing* is a value produced on one device and read on another,
counted once per reading device.

Every constant below is a default to be calibrated; override any with
``dataclasses.replace(CostModel(), copy_bandwidth=20e9)``. Sources:

==========================  =========  ===================================================
constant                    default    source / range
==========================  =========  ===================================================
dispatch_floor["ane"]       100 µs     70–220 µs (ANEForge _cost.py: M1 220, M2 Pro 100, M5 110)
dispatch_floor["gpu"]       100 µs     no published number; assumed equal to the ANE's
dispatch_floor["cpu"]       0          the CPU runs ops in the caller's process
switch["ane","cpu"]         200 µs     150–300 µs per cut (ANEForge); 1.75 ms topk island
                                       (apple/coreai-torch#66)
switch["ane","gpu"]         400 µs     2 × ANE↔CPU (hollance: texture conversion; no number)
switch["cpu","gpu"]         200 µs     no published number; assumed equal to ANE↔CPU
copy_bandwidth              10 GB/s    back-solved from smpanaro P5a/P5d
kappa cross / same          1.0 / 0.5  P5a (data copy vanishes with fp16 I/O)
peak_flops ane / gpu / cpu  10 / 2.6 /  ANE 9.98–16.8 (M3 Pro…M5), 1.8–3.25 on M1 (maderix,
                            1 TFLOP/s  ANEForge); GPU: Apple M1 figure; CPU: crude roofline
bandwidth ane / gpu / cpu   50 / 60 /  ANE 9–114 GB/s (ANEForge fits); GPU, CPU: crude
                            100 GB/s   roofline values, only ratios matter
==========================  =========  ===================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

UNIT = "relative units (µs-scale; not a latency)"


def _switch_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


@dataclass(frozen=True)
class CostModel:
    """Constants of the relative cost model (seconds, FLOP/s, bytes/s); all overridable."""

    peak_flops: Mapping[str, float] = field(
        default_factory=lambda: {"ane": 10e12, "gpu": 2.6e12, "cpu": 1e12})
    bandwidth: Mapping[str, float] = field(
        default_factory=lambda: {"ane": 50e9, "gpu": 60e9, "cpu": 100e9})
    dispatch_floor: Mapping[str, float] = field(
        default_factory=lambda: {"ane": 100e-6, "gpu": 100e-6, "cpu": 0.0})
    switch_cost: Mapping[str, float] = field(
        default_factory=lambda: {"ane|cpu": 200e-6, "ane|gpu": 400e-6, "cpu|gpu": 200e-6})
    copy_bandwidth: float = 10e9
    kappa_cross_precision: float = 1.0
    kappa_same_precision: float = 0.5

    def op_time(self, device: str, flops: float, nbytes: float) -> float:
        return max(flops / self.peak_flops[device], nbytes / self.bandwidth[device])

    def switch(self, a: str, b: str) -> float:
        return 0.0 if a == b else self.switch_cost[_switch_key(a, b)]

    def copy_time(self, nbytes: float, cross_precision: bool) -> float:
        kappa = self.kappa_cross_precision if cross_precision else self.kappa_same_precision
        return nbytes * kappa / self.copy_bandwidth

    def to_dict(self) -> dict[str, object]:
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v)
                for f in fields(self)}


@dataclass(frozen=True)
class SegmentWork:
    """What the cost model needs about one segment: its device and (FLOPs, bytes) per op."""

    device: str
    ops: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Crossing:
    """A value produced on ``src`` and read on ``dst``."""

    src: str
    dst: str
    nbytes: float
    cross_precision: bool


def relative_cost(segments: list[SegmentWork], crossings: list[Crossing],
                  model: CostModel) -> dict[str, float]:
    """{'dispatch', 'compute', 'switch', 'copy', 'total'} in µs-scale relative units."""
    dispatch = compute = 0.0
    for seg in segments:
        floor = model.dispatch_floor[seg.device]
        dispatch += floor
        compute += sum(model.op_time(seg.device, f, b) for f, b in seg.ops)
    switch = sum(model.switch(a.device, b.device) for a, b in zip(segments, segments[1:]))
    copy = sum(model.copy_time(c.nbytes, c.cross_precision) for c in crossings)
    parts = {"dispatch": dispatch, "compute": compute, "switch": switch, "copy": copy}
    parts = {k: v * 1e6 for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts
