"""Registers every ``milguard::*`` coremltools pass: the rule library's families first (they make the
``milguard::keep_fp32_<family>`` passes), then the modules that define the other passes."""
from __future__ import annotations

from importlib import import_module

_PASS_MODULES: tuple[str, ...] = (
    "milguard.passes",                       # registers the pattern families
    "milguard.precision",
    "milguard.analysis.check_pass",
    "milguard.placement.annotate_pass",
)

for _name in _PASS_MODULES:
    import_module(_name)

import_module("milguard.precision").register_family_passes()
