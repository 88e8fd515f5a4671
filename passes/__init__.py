"""The rule library: one module per pattern family, each a list of ``Rule`` declared as data.

``RULES`` is every rule of every family, in the order families are listed here.
"""
from __future__ import annotations

from . import layer_norm, rms_norm, softmax

FAMILIES = {"layer_norm": layer_norm.RULES, "rms_norm": rms_norm.RULES, "softmax": softmax.RULES}
RULES = [rule for rules in FAMILIES.values() for rule in rules]

__all__ = ["FAMILIES", "RULES"]
