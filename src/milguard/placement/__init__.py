"""Expected Neural Engine / GPU / CPU placement of every op, device segments and a relative cost.

A static predictor: it gives eligibility and a cost estimate from published rules, not ground
truth (only ``MLComputePlan`` on a Mac gives that; ``ground_truth`` compares against its dumps).

    placements = predict(function, compute_units="ALL", chip="M1")   # {op name: Placement}
    summary = summarize(function, placements)                        # segments, cost, ...
"""
from __future__ import annotations

from . import annotate_pass as _annotate_pass  # noqa: F401  (registers milguard::annotate_placement)
from .cost import CostModel
from .persist import METADATA_KEY, annotations, attach
from .predict import Placement, predict
from .rules import RULES, PlacementRule
from .segments import PlacementSummary, Segment, summarize
from .target import CHIPS, COMPUTE_UNITS, Chip, PlacementOptions

__all__ = [
    "CHIPS", "COMPUTE_UNITS", "Chip", "CostModel", "METADATA_KEY", "Placement",
    "PlacementOptions", "PlacementRule", "PlacementSummary", "RULES", "Segment", "annotations",
    "attach", "predict", "summarize",
]
