"""Persisting placement annotations in a saved ``.mlpackage`` and reading them back.

Scopes and pass results are not serialized (the MIL proto keeps only op names), so the
annotations travel in the model's user-defined metadata, under ``milguard.placement``, as
JSON keyed by the final op names (after ``mil_backend::sanitize_name_strings``)::

    {"format": "milguard.placement/1",
     "compute_units": "ALL", "chip": "M1",
     "functions": {"main": {"<op name>": {"op_type": "linear", "device": "ane",
                                           "rule": "A3.eligible", "certainty": "M"}, ...}}}

Const ops are absent (they have no placement).
"""
from __future__ import annotations

import json
import os
from typing import Any

import coremltools as ct

from milguard.errors import MilguardError, ModelError
from milguard.mil import Program, converted_program, load, program_state

from .predict import Placement, placed_ops, predict
from .target import resolve_chip, resolve_units

METADATA_KEY = "milguard.placement"
FORMAT = "milguard.placement/1"


def attach(mlmodel: "ct.models.MLModel", *, compute_units: Any = None,
           chip: Any = None) -> dict[str, Placement]:
    """Write the placement of every op of ``mlmodel`` into its user-defined metadata.

    Options default to those the ``milguard::annotate_placement`` pass recorded during
    conversion, else ALL / M1. The placement is computed on the model's final program
    (the converted program it still holds, or the program read from its spec), so the keys are
    the names saved in the package. Returns {op name: Placement} over all functions.
    """
    if not isinstance(mlmodel, ct.models.MLModel):
        raise MilguardError(f"attach needs an MLModel, got a {type(mlmodel).__name__}")
    program = converted_program(mlmodel)
    if program is None:                     # a model read from disk has no in-memory program
        program = load(mlmodel).program
    recorded = program_state(program).get("placement", {}).get("options", {})
    units = resolve_units(compute_units or recorded.get("compute_units", "ALL"))
    family = resolve_chip(chip or recorded.get("chip", "M1")).family
    record: dict[str, Any] = {"format": FORMAT, "compute_units": units, "chip": family,
                              "functions": {}}
    flat: dict[str, Placement] = {}
    for name, fn in program.functions.items():
        placements = predict(fn, compute_units=units, chip=family)
        types = {op.name: op.op_type for op, _ in placed_ops(fn)}
        record["functions"][name] = {op: {"op_type": types[op], **p.to_dict()}
                                     for op, p in placements.items()}
        flat.update(placements)
    mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(record, separators=(",", ":"))
    return flat


def annotations(model: Any, function: str | None = None) -> dict[str, Placement]:
    """{op name: Placement} from a program annotated by the pass, an MLModel or a saved package.

    A Program gives what ``milguard::annotate_placement`` recorded on it, under the ops'
    current names; an MLModel or a path gives what ``attach`` wrote into the metadata (falling
    back, for an in-memory MLModel, to the pass's record on its program). ``function`` restricts to one function of the metadata.
    Returns {} when there are no annotations.
    """
    if isinstance(model, Program):
        return _from_pass(model)
    if isinstance(model, ct.models.MLModel):
        raw = model.user_defined_metadata.get(METADATA_KEY)
        if raw is None:
            program = converted_program(model)
            return _from_pass(program) if program is not None else {}
    elif isinstance(model, (str, os.PathLike)):
        raw = load(model).metadata.get(METADATA_KEY)
    else:
        raise MilguardError(f"cannot read placement annotations from a {type(model).__name__}")
    return from_metadata(raw, function) if raw is not None else {}


def _from_pass(program: Program) -> dict[str, Placement]:
    """The pass's record under the ops' current names (ops removed since are left out)."""
    record = program_state(program).get("placement")
    if record is None:
        return {}
    return {op.name: p for op, p in record["by_op"] if op.enclosing_block is not None}


def from_metadata(raw: str, function: str | None) -> dict[str, Placement]:
    try:
        record = json.loads(raw)
        functions = record["functions"]
        if function is not None and function not in functions:
            raise MilguardError(f"the placement metadata has no function '{function}'")
        chosen = [functions[function]] if function is not None else list(functions.values())
        return {op: Placement(e["device"], e["rule"], e["certainty"])
                for entries in chosen for op, e in entries.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"corrupt '{METADATA_KEY}' metadata "
                         f"({type(exc).__name__}: {exc})") from None
