"""fp16 checks for your own test suite, and the ``--fail-on`` levels the CLI gates on.

    from milguard.testing import assert_fp16_safe

    def test_model_is_fp16_safe():
        assert_fp16_safe("model.mlpackage", input_ranges={"x": (-30, 30)}, calibration="batch.npz")

Fail-on levels (:data:`FAIL_ON`), applied to the active findings of :func:`milguard.audit` (those
neither superseded by calibration nor ignored):

* ``overflow`` — a finding of kind ``overflow`` or ``nan`` with severity ``error`` or
  ``warning``: an fp16 value may exceed ±65504 (stored as ±inf) or an op may create NaN
  itself. ``nonfinite`` findings (severity ``info``: inf/NaN passed on from upstream) do not
  count: their root cause is reported as its own finding. Neither do ``analysis`` findings (a
  range rule that raised): its op's outputs become unbounded, so the overflow and NaN findings
  that follow from it are what this level gates on.
* ``any`` — any finding of severity ``error`` or ``warning``, of any kind (underflow of an
  epsilon, fp16 accumulation of long sums and ``analysis`` included).
* ``never`` — nothing fails.

``info`` findings never fail.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .config import FAIL_ON_LEVELS

GATING_SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class FailOn:
    kinds: tuple[str, ...] | None        # None: every kind
    severities: tuple[str, ...]

    def reached_by(self, finding: Mapping[str, Any]) -> bool:
        from .analysis.findings import is_active

        return is_active(finding) and finding["severity"] in self.severities and \
            (self.kinds is None or finding["kind"] in self.kinds)


FAIL_ON: dict[str, FailOn] = {
    "overflow": FailOn(kinds=("overflow", "nan"), severities=GATING_SEVERITIES),
    "any": FailOn(kinds=None, severities=GATING_SEVERITIES),
    "never": FailOn(kinds=(), severities=()),
}
assert set(FAIL_ON) == set(FAIL_ON_LEVELS), "every level the config and the CLI accept has a meaning here"


def failing(findings: Iterable[Mapping[str, Any]], fail_on: str) -> list[Mapping[str, Any]]:
    """The findings (dicts of the audit schema) that reach the level ``fail_on``."""
    check_level(fail_on)
    level = FAIL_ON[fail_on]
    return [f for f in findings if level.reached_by(f)]


def check_level(fail_on: str) -> None:
    if fail_on not in FAIL_ON:
        from .errors import MilguardError
        raise MilguardError(f"fail_on must be one of {', '.join(FAIL_ON)}, got '{fail_on}'")


def describe(finding: Mapping[str, Any]) -> str:
    """One line: severity, kind, op (type), module, message."""
    module = f" [{finding['module']}]" if finding.get("module") else ""
    return (f"{finding['severity']} {finding['kind']} at {finding['op']} ({finding['op_type']}){module}: "
            f"{finding['message']} ({finding['source']})")


def assert_fp16_safe(model: Any, input_ranges: Mapping[str, tuple[float, float]] | None = None,
                     calibration: Any = None, fail_on: str | None = None, ignore: Sequence[str] = (), *,
                     config: bool | str | Path = True, **audit_options: Any) -> Any:
    """Audit ``model`` and raise ``AssertionError`` listing every finding that reaches ``fail_on``.

    ``model``: Program, MLModel or ``.mlpackage`` path; ``input_ranges``, ``calibration`` and
    ``ignore`` as for :func:`milguard.audit` (so are ``audit_options``: function, ane_limits,
    compute_units). ``config``: read ``[tool.milguard]`` from the nearest ``pyproject.toml`` (True,
    the default), from this file (a path), or not at all (False); its settings apply where an
    argument is not given (``fail_on`` then defaults to ``overflow``), its ``ignore`` rules add to
    ``ignore`` and an ``input_ranges`` entry replaces its range for that input
    (:mod:`milguard.config`). Returns the :class:`~milguard.report.audit.AuditReport` when the
    model passes.
    """
    from .config import load_config
    from .report.audit import audit

    settings = load_config(None if config is True else config) if config else None
    if settings is not None:
        fail_on = fail_on or settings.fail_on
        input_ranges = {**settings.input_ranges(), **(input_ranges or {})} or None
        calibration = calibration if calibration is not None else settings.calibration_paths() or None
        ignore = [*settings.ignore, *ignore]
        for key, value in settings.audit_options().items():
            audit_options.setdefault(key, value)
    fail_on = fail_on or "overflow"
    check_level(fail_on)                 # reject a bad level before the (slow) audit
    report = audit(model, input_ranges, calibration, ignore=ignore, **audit_options)
    data = report.to_dict()
    bad = failing(data["findings"], fail_on)
    if bad:
        lines = "\n".join(f"  - {describe(f)}" for f in bad)
        raise AssertionError(f"{data['model']} is not fp16-safe: {len(bad)} finding(s) reach "
                             f"fail_on='{fail_on}':\n{lines}")
    return report
