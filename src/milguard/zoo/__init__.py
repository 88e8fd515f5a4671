"""Reference models written the way widely used libraries write them, with planted activation magnitudes.

``MODELS[name]`` is a ``ZooEntry`` (``build(seed)``, ``example_inputs(seed)``, ``planted_inputs(seed)``,
``input_names``, ``scenario`` with its literature source); ``convert(entry)`` traces and converts it.
``EXAMPLE`` names the bundled example model. Needs torch (and safetensors for ``minilm``).
"""
from __future__ import annotations

from .magnitudes import SCENARIOS, Scenario
from .registry import EXAMPLE, MODELS, ZooEntry, convert

__all__ = ["EXAMPLE", "MODELS", "SCENARIOS", "Scenario", "ZooEntry", "convert"]
