"""milguard: keep fp16-fragile subgraphs of Core ML programs in fp32, predict placement, audit fp16 risk.

Importing milguard registers its passes with coremltools' pass registry: at once when coremltools
is imported, otherwise as soon as it is (``milguard.registration``), so that ``import milguard``
itself stays light (the command line's ``--help`` never imports coremltools or torch).
"""
from __future__ import annotations

import logging
from importlib import import_module
from typing import Any


class _KnownImportNoise(logging.Filter):
    """coremltools warns on import about what milguard pins on purpose: the native proxies missing
    on Linux, and torch 2.13.0 (see constraints.txt), newer than the versions it was tested with."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Failed to load _ML") or text.startswith("Torch version 2.13.0"))


for _logger in ("coremltools", "coremltools._deps"):
    logging.getLogger(_logger).addFilter(_KnownImportNoise())

from .errors import MilguardError, ModelError, UnsupportedOpError  # noqa: E402
from .registration import register_passes as _register_passes  # noqa: E402

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use to keep `import milguard` light)
_API = {
    "find_patterns": "milguard.families",
    "pipeline": "milguard.precision",
    "install": "milguard.precision",
    "keep_fp32": "milguard.actions.repair",
    "run": "milguard.executor",
    "to_networkx": "milguard.analysis.graph",
    "audit": "milguard.report.audit",
}

__all__ = sorted([*_API, "MilguardError", "ModelError", "UnsupportedOpError"])


_register_passes()                       # milguard::* passes, when coremltools is (or gets) imported


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'milguard' has no attribute '{name}'")
