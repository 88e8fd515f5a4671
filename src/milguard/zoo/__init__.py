"""Reference models written the way widely used libraries write them, with planted activation magnitudes.

``MODELS[name]`` is a ``ZooEntry`` (``build(seed)``, ``example_inputs(seed)``, ``planted_inputs(seed)``,
``input_names``, ``scenario`` with its literature source); ``convert(entry)`` traces and converts it.
``EXAMPLE`` names the bundled example model. Needs torch (and safetensors for ``minilm``).
"""
from __future__ import annotations

from .magnitudes import FP16_MAX, FP16_SQUARE_LIMIT, SCENARIOS, Scenario
from .registry import EXAMPLE, MODELS, ZooEntry, convert

__all__ = ["EXAMPLE", "FP16_MAX", "FP16_SQUARE_LIMIT", "MODELS", "SCENARIOS", "Scenario", "ZooEntry",
           "convert"]
