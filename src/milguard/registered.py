"""Imports every module that defines a registered ``milguard::*`` coremltools pass."""
from __future__ import annotations

from importlib import import_module

_PASS_MODULES: tuple[str, ...] = (
    "milguard.precision",
    "milguard.analysis.check_pass",
    "milguard.placement.annotate_pass",
)

for _name in _PASS_MODULES:
    import_module(_name)
