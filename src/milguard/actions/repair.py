"""``keep_fp32``: the remedies for an ML program that is already fp16 (a saved package, an MLModel)."""
from __future__ import annotations

import json
import os
from typing import Any

import coremltools as ct

from ..mil import PassPipeline, PassPipelineManager, Program, copy_program, load, save
from .apply import carry_out
from .decide import Context, decide
from .options import Options

METADATA_KEY = "milguard.remedies"
_CLEANUP = ["common::dead_code_elimination", "common::cast_optimization", "common::dead_code_elimination"]


def keep_fp32(model: Any, output: str | os.PathLike | None = None, *, evidence: Any = None,
              **opts: Any) -> "ct.models.MLModel":
    """Load an fp16 ML program, decide per region and apply the remedies; return the model.

    ``model``: MLModel, path to a ``.mlpackage`` or pymil Program; it is never modified (a Program
    is copied). ``output``: optional path of a new ``.mlpackage`` (written atomically, never over an
    existing path). Options as for ``milguard.pipeline`` (remedy, calibration, compute_units,
    input_ranges, scope, families, exclude, keep_native). The decisions are listed as JSON in the
    model's metadata under "milguard.remedies". ``evidence``: decide its function from this
    :class:`~milguard.analysis.evidence.Evidence` (e.g. an audit's, ``AuditReport.evidence``, made
    with the same options and data) instead of computing it again. Constants inside fp32 islands are the fp16 values
    widened to fp32: an fp16 package no longer holds the fp32 originals (convert with
    ``milguard.pipeline()`` for exact constants).
    """
    options = Options.make(**opts)
    loaded = load(model)
    program: Program = copy_program(loaded.program)
    ctx = Context(program, options)
    if evidence is not None:
        ctx.use(evidence)
    pairs = decide(ctx)
    carry_out(program, pairs, ctx)
    PassPipelineManager.apply_pipeline(program, PassPipeline(_CLEANUP, pipeline_name="milguard_cleanup"))
    record = json.dumps([d.to_dict() for _, d in pairs if d.remedy != "none"])
    return save(loaded, program, path=output, metadata={METADATA_KEY: record})
