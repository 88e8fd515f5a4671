"""fp16 risk findings per op, from static ranges or from calibration.

Kinds (``Finding.kind``, :data:`KINDS`), one module each:

* ``overflow`` — a value of an fp16-typed var may exceed ±65504 (it is stored as ±inf)
  (:mod:`.values`); constants holding ±inf, usually an additive attention mask, are classified by
  :mod:`.constants`; with ``ane_limits=True`` lower Neural Engine limits apply too
  (:mod:`.neural_engine`);
* ``nan`` — the op itself may create NaN (``inf - inf``, ``0·inf``, ``0/0``, softmax of a row
  that is -inf everywhere, sqrt/log of a negative) in an op touching fp16 (:mod:`.values`);
* ``nonfinite`` — the op receives inf/NaN from upstream and passes it on (severity ``info``; the
  root cause has its own finding, named in the message) (:mod:`.values`);
* ``underflow`` — a small positive epsilon is subnormal or zero in fp16 (:mod:`.epsilon`), or a log
  reads fp16 values that may be below 6.1e-5 (:mod:`.log_input`);
* ``accumulation`` — a reduction sums more than 2048 fp16 elements (:mod:`.accumulation`);
* ``analysis`` — a rule of the range analysis raised on the op, which weakens the analysis there
  (:mod:`.rule_failures`).

Severity: ``error`` — certain (every value of the static interval is beyond the limit) or
observed in calibration; ``warning`` — possible by the static bound, a constant holding ±inf that
is not a harmless additive mask, a failed analysis rule; ``info`` — propagation, a harmless mask,
an epsilon that keeps enough bits.
``source`` is ``static``, ``calibration`` or ``pass`` (read back from a saved model).
``covered_by`` names the family pass (``milguard::keep_fp32_<family>``) whose remedy covers the op:
the pass of the op's pattern family here; the audit keeps it only where its decision remedies the
region, or already did (``milguard.report.audit``), else None.
``superseded_by`` (``"calibration"``, :mod:`.supersede`) and ``ignored_by`` (the matching rule,
:mod:`.ignore`) mark findings that are listed but neither counted nor gated on.

What "would overflow" means in calibration: a var typed fp16 whose value in the fp32 reference
run (:mod:`milguard.analysis.reference`) exceeds the limit — the op wants a value fp16 cannot
hold. The typed run confirms it (the var is non-finite there) or not (e.g. the inputs were
already rounded differently); ops that go non-finite in the typed run without wanting an
out-of-range value are reported too (``nonfinite`` when an input was already non-finite,
otherwise ``overflow``/``nan`` observed in the typed run), so every non-finite op is flagged.
"""
from __future__ import annotations

from .collect import calibrated_findings, static_findings
from .finding import KINDS, Finding, count, covering, is_active
from .ignore import IgnoreRule, apply_ignores, parse_ignore, parse_ignores
from .neural_engine import ANE_LIMITS, AneLimit
from .supersede import combine

__all__ = ["ANE_LIMITS", "KINDS", "AneLimit", "Finding", "IgnoreRule", "apply_ignores",
           "calibrated_findings", "combine", "count", "covering", "is_active", "parse_ignore",
           "parse_ignores", "static_findings"]
