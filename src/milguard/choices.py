"""The values the decision options take, as plain data: the command line offers them without
importing coremltools (``milguard.actions.options`` validates against the same tuples).

* ``REMEDY_MODES``: ``auto`` (the cheapest remedy where a region is at risk), ``rescale`` (rewrite
  wherever a rewrite exists), ``fp32`` (every decomposed region an fp32 island).
* ``SCOPES``: an fp32 island holds the whole ``region`` or only its overflow-prone ``core``.
* ``NATIVE``: native single-op members are decided like the others (``at_risk``), ``never``
  touched, or ``always`` kept fp32.
* ``ACCUMULATE``: what reductions are assumed to accumulate in.
"""
from __future__ import annotations

REMEDY_MODES = ("auto", "rescale", "fp32")
SCOPES = ("region", "core")
NATIVE = ("at_risk", "never", "always")
ACCUMULATE = ("fp32", "fp16")
