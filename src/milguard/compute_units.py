"""The compute units a Core ML model can be restricted to (the names of ``ct.ComputeUnit``).

Plain data, light to import: the command line's parser offers them without importing coremltools.
"""
from __future__ import annotations

COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")
