"""``keep_fp32``: fp32 islands for an ML program that is already fp16 (a saved package, an MLModel)."""
from __future__ import annotations

import copy
import json
import os
from typing import Any

import coremltools as ct

from ..mil import PassPipeline, PassPipelineManager, Program, load, save
from .options import Options
from .plan import apply, plan

METADATA_KEY = "milguard.fp32_islands"
_CLEANUP = ["common::dead_code_elimination", "common::cast_optimization", "common::dead_code_elimination"]


def keep_fp32(model: Any, output: str | os.PathLike | None = None, **opts: Any) -> "ct.models.MLModel":
    """Load an fp16 ML program, keep its LayerNorm / RMSNorm / softmax regions fp32, return the model.

    ``model``: MLModel, path to a ``.mlpackage`` or pymil Program; it is never modified (a Program
    is copied). ``output``: optional path of a new ``.mlpackage`` (written atomically, never over an
    existing path). Options as for ``milguard.pipeline`` (scope, families, exclude, keep_native).
    The regions kept fp32 are listed as JSON in the model's metadata under "milguard.fp32_islands".
    Constants inside the islands are the fp16 values widened to fp32: an fp16 package no longer
    holds the fp32 originals (convert with ``milguard.pipeline()`` for exact constants).
    """
    options = Options.make(**opts)
    loaded = load(model)
    program: Program = copy.deepcopy(loaded.program)
    regions = plan(program, options)
    apply(program, regions)
    PassPipelineManager.apply_pipeline(program, PassPipeline(_CLEANUP, pipeline_name="milguard_cleanup"))
    islands = json.dumps([r.to_dict() for r in regions])
    return save(loaded, program, path=output, metadata={METADATA_KEY: islands})
