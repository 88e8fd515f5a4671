"""What a prediction is made for: compute units, the Neural Engine chip family, and tunable options.

Chip families follow the ANEForge ladder (sbryngelson/ANEForge, _op_catalog.py):
``M1`` = A13-class Neural Engine, ``M2`` = A14, ``M3`` = A15, ``M4`` = A16/A17 (M4, M5).
Limits per family (rule ids of ``rules.py``): R1/R2 (dimension limits; 65536 spatial/contraction
extents on A16+), O8 (``sin``/``cos`` need A15+), O16 (texture ops need A14+), O12
(``reduce_argmin`` walled on A14 and older), A3.reflect_pad_chip (reflect/symmetric ``pad``
walled on A13).
"""
from __future__ import annotations

from dataclasses import dataclass

from milguard.compute_units import COMPUTE_UNITS
from milguard.errors import MilguardError


@dataclass(frozen=True)
class Chip:
    """Neural Engine limits of one chip family."""

    family: str
    ane_class: str
    spatial_max: int        # H, W (and D) extent limit, R1/R2
    channel_max: int        # N, C extent limit, R1
    transpose_max: int      # largest transposed extent, R2
    trig: bool              # sin/cos lowered natively (A15+), O8
    texture: bool           # resize/upsample/crop_resize/affine/resample native (A14+), O16
    argmin: bool            # reduce_argmin native (A15+), O12
    reflect_pad: bool       # reflect/symmetric pad native (A14+), ANEForge


CHIPS: dict[str, Chip] = {
    "M1": Chip("M1", "A13", 16384, 65536, 16384, False, False, False, False),
    "M2": Chip("M2", "A14", 16384, 65536, 16384, False, True, False, True),
    "M3": Chip("M3", "A15", 16384, 65536, 16384, True, True, True, True),
    "M4": Chip("M4", "A16", 65536, 65536, 65536, True, True, True, True),
}
_ALIASES = {"A13": "M1", "A14": "M2", "A15": "M3", "A16": "M4", "A17": "M4", "A17PRO": "M4",
            "M5": "M4"}


@dataclass(frozen=True)
class PlacementOptions:
    """Thresholds of the predictor. Defaults come from the sources of the rule in brackets.

    size_floor_flops: a function whose Neural Engine work is below this runs on the CPU [S1];
        2e8 lies between the CPU-placed 384^3 (1.1e8 FLOPs) and ANE-placed 512^3 (2.7e8) matmuls.
    sdpa_min_elements: fused attention needs at least this many elements per Q/K/V [O15].
    min_ane_segment_flops: an ANE segment with less work moves to its neighbour's device [P4].
    gpu_region_min_ops / gpu_region_min_flops: under ALL a run of non-ANE ops goes to the GPU
        when it has at least this many ops or FLOPs, else to the CPU [P2]. These two defaults are
        milguard's choice (no published number).
    gather_on_ane: let gathers stay on A14+ Neural Engines (the compiler can lower them) [O3].
    assume_fp16: predict every float op as if it were typed fp16 (D1 is not applied): where an fp32
        program will run once ``common::add_fp16_cast`` has made it fp16, as remedies are decided.
    """

    size_floor_flops: float = 2e8
    sdpa_min_elements: int = 2_000_000
    min_ane_segment_flops: float = 4e6
    gpu_region_min_ops: int = 32
    gpu_region_min_flops: float = 1e8
    gather_on_ane: bool = False
    assume_fp16: bool = False


@dataclass(frozen=True)
class Target:
    compute_units: str
    chip: Chip
    options: PlacementOptions


def resolve_units(compute_units: object) -> str:
    """'ALL' | 'CPU_AND_NE' | 'CPU_AND_GPU' | 'CPU_ONLY' from a string or a ct.ComputeUnit."""
    name = getattr(compute_units, "name", compute_units)
    key = str(name).upper()
    if key not in COMPUTE_UNITS:
        raise MilguardError(f"unknown compute units '{name}' "
                            f"(expected one of {', '.join(COMPUTE_UNITS)})")
    return key


def resolve_chip(chip: str | Chip) -> Chip:
    """A Chip from a family name ('M1'...'M4') or an alias ('A15', 'M5')."""
    if isinstance(chip, Chip):
        return chip
    key = str(chip).upper().replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in CHIPS:
        raise MilguardError(f"unknown chip family '{chip}' (expected one of {', '.join(CHIPS)})")
    return CHIPS[key]


def make_target(compute_units: object = "ALL", chip: str | Chip = "M1",
                options: PlacementOptions | None = None) -> Target:
    return Target(resolve_units(compute_units), resolve_chip(chip), options or PlacementOptions())
