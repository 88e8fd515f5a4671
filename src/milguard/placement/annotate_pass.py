"""The registered pass ``milguard::annotate_placement``.

Input graph / output graph: unchanged. The pass only records, in the program's side store
(:func:`milguard.mil.program_state`)::

    program_state(prog)["placement"] = {
        "by_name": {op name: Placement},      # every non-const op of every function, as named then
        "by_op": ((op, Placement), ...),      # the same, by op object
        "options": {"compute_units": ..., "chip": ...},
    }

Later passes rename ops in place, so ``milguard.placement.annotations(prog)`` reads the names
from the op objects: it gives the current names of the ops that are still in the program.

Options (strings, as ``PassPipeline.set_options`` passes them): ``compute_units``
(ALL | CPU_AND_NE | CPU_AND_GPU | CPU_ONLY, default ALL) and ``chip`` (M1 | M2 | M3 | M4 or an
alias such as A15, default M1). Usage::

    pipeline = ct.PassPipeline.DEFAULT
    pipeline.append_pass("milguard::annotate_placement")
    pipeline.set_options("milguard::annotate_placement", {"compute_units": "CPU_AND_NE"})
    mlmodel = ct.convert(..., pass_pipeline=pipeline)
    milguard.placement.attach(mlmodel)     # persist into user_defined_metadata before saving

The backend renames ops after the main pipeline (``mil_backend::sanitize_name_strings``) and a
pass cannot write to the model spec, so persistence is ``attach``'s job (``persist.py``).
"""
from __future__ import annotations

from milguard.mil import AbstractGraphPass, Operation, Program, program_state, register_pass

from .predict import Placement, placed_ops, predict
from .target import resolve_chip, resolve_units


@register_pass(namespace="milguard", name="annotate_placement")
class AnnotatePlacement(AbstractGraphPass):
    """Annotate every op with its expected device, the deciding rule and its certainty."""

    def __init__(self) -> None:
        self.compute_units = "ALL"
        self.chip = "M1"

    def apply(self, prog: Program) -> None:
        units, chip = resolve_units(self.compute_units), resolve_chip(self.chip).family
        by_op: list[tuple[Operation, Placement]] = []
        for fn in prog.functions.values():
            placements = predict(fn, compute_units=units, chip=chip)
            by_op += [(op, placements[op.name]) for op, _ in placed_ops(fn)]
        program_state(prog)["placement"] = {
            "by_name": {op.name: p for op, p in by_op}, "by_op": tuple(by_op),
            "options": {"compute_units": units, "chip": chip},
        }
