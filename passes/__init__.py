"""The rule library: one module per pattern family, each defining ``FAMILY`` (a ``milguard.families.Family``).

Importing this package registers every family it holds, in module-name order. A new family is a new
module here (plus its tests); nothing else names the families.
"""
from __future__ import annotations

import pkgutil
from importlib import import_module

from milguard.families import register

MODULES = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
for _name in MODULES:
    register(import_module(f"{__name__}.{_name}").FAMILY)

__all__ = ["MODULES"]
