"""``milguard::check_fp16_overflow``: the static fp16 risk analysis as a coremltools pass.

The pass changes nothing in the program. It propagates ranges through every function, computes
the static findings (:mod:`milguard.analysis.findings`) and records them in the program's side
store (:func:`milguard.mil.program_state`)::

    program_state(prog)["findings"] = {
        "by_function": {function: [(op, var, Finding), ...]},   # live op/var objects
        "ops_by_name": {op name at this point: op},             # to rename "from <op>" in messages
        "options": {"input_ranges": ..., "ane_limits": ..., "accumulate": ...},
    }

so :func:`milguard.report.audit.attach` can key them by the names the ops end up with.

It analyses the program *as typed at its position*: place it after ``common::add_fp16_cast``
(and after milguard's keep-fp32 passes) so the fp16 vars and the fp32 islands are those of the
final model; :func:`install` appends it to the end of a pipeline, where that holds.

Options (strings, as coremltools passes them):

* ``input_ranges`` — JSON ``{"input name": [lo, hi], ...}`` or ``"x=lo:hi,y=lo:hi"``
  (:func:`milguard.input_ranges.parse_input_ranges`; defaults: see :mod:`milguard.analysis.ranges`);
* ``ane_limits`` — ``"1"``/``"true"`` to add the Neural Engine limits;
* ``accumulate`` — ``"fp32"`` (default) or ``"fp16"``.

Coremltools serializes nothing a pass attaches, so call ``milguard.report.audit.attach(mlmodel)``
after ``ct.convert`` to store the findings in the model's metadata before saving it.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import MilguardError
from ..input_ranges import parse_input_ranges
from ..mil import AbstractGraphPass, PassPipeline, iter_ops, program_state, register_pass
from .findings import static_findings
from .graph import pattern_index
from .ranges import propagate

log = logging.getLogger("milguard")

PASS_NAME = "milguard::check_fp16_overflow"
_TRUE = ("1", "true", "yes", "on")


@register_pass(namespace="milguard", name="check_fp16_overflow")
class CheckFp16Overflow(AbstractGraphPass):
    """Record fp16 overflow/underflow findings on the program; the graph is not modified."""

    def __init__(self) -> None:
        self.input_ranges = ""
        self.ane_limits = "0"
        self.accumulate = "fp32"

    def apply(self, prog: Any) -> None:
        try:
            ranges = parse_input_ranges(self.input_ranges)
        except MilguardError as exc:
            raise MilguardError(f"{PASS_NAME}: {exc}") from None
        ane = str(self.ane_limits).strip().lower() in _TRUE
        recorded: dict[str, list] = {}
        names: dict[str, Any] = {}                 # op name at this point -> op, for renaming
        for name, fn in prog.functions.items():
            given = {k: v for k, v in ranges.items() if k in fn.inputs}
            rm = propagate(prog, given, function=name, accumulate=self.accumulate)
            findings = static_findings(fn, rm, pattern_index(prog, name), ane_limits=ane)
            ops = {op.name: op for op in iter_ops(fn)}
            names.update(ops)
            vars_ = {v.name: v for op in ops.values() for v in op.outputs}
            vars_.update({v.name: v for v in fn.inputs.values()})
            recorded[name] = [(ops.get(f.op), vars_.get(f.var), f) for f in findings]
            log.info("%s: %d findings in function %s", PASS_NAME, len(findings), name)
        program_state(prog)["findings"] = {
            "by_function": recorded, "ops_by_name": names,
            "options": {"input_ranges": ranges, "ane_limits": ane, "accumulate": self.accumulate},
        }


def install(pipeline: PassPipeline, *, input_ranges: dict[str, tuple[float, float]] | None = None,
            ane_limits: bool = False, accumulate: str = "fp32") -> PassPipeline:
    """Append ``milguard::check_fp16_overflow`` to ``pipeline`` (once) with these options."""
    if PASS_NAME not in pipeline.passes:
        pipeline.append_pass(PASS_NAME)
    pipeline.set_options(PASS_NAME, {
        "input_ranges": json.dumps({k: [float(a), float(b)] for k, (a, b) in (input_ranges or {}).items()}),
        "ane_limits": "1" if ane_limits else "0",
        "accumulate": accumulate,
    }, override=True)
    return pipeline
