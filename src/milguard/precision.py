"""milguard's precision passes, registered with coremltools, and how they are put in a pipeline.

    ... -> common::dedup_op_and_var_names
        -> milguard::keep_fp32_layer_norm / _rms_norm / _softmax   (find and record regions, fp32 program)
        -> common::add_fp16_cast                                     (everything else becomes fp16)
        -> milguard::apply_fp32_islands                              (recorded regions rebuilt in fp32)
        -> common::add_int16_cast -> ... const_elimination, cast_optimization ...

``apply_fp32_islands`` runs before ``const_elimination`` folds ``cast(fp32 const)`` into fp16
constants, so the islands keep exact fp32 constants. With ``compute_precision=FLOAT32`` coremltools
drops ``add_fp16_cast`` and every region is already fp32: the passes change nothing.
"""
from __future__ import annotations

from typing import Any

import coremltools as ct

from .actions.options import Options
from .actions.plan import apply, plan, record, recorded
from .mil import AbstractGraphPass, PassPipeline, Program, drop_pass, register_pass

ADD_FP16_CAST = "common::add_fp16_cast"
FAMILY_PASSES = {
    "layer_norm": "milguard::keep_fp32_layer_norm",
    "rms_norm": "milguard::keep_fp32_rms_norm",
    "softmax": "milguard::keep_fp32_softmax",
}
APPLY_PASS = "milguard::apply_fp32_islands"


class _KeepFp32Family(AbstractGraphPass):
    """Find the family's patterns and record them as fp32 regions; regions already fp16 (a program
    past ``add_fp16_cast``, or a loaded fp16 package) are rebuilt in fp32 at once."""

    kind = ""

    def __init__(self) -> None:
        defaults = Options().as_strings()
        self.scope = defaults["scope"]
        self.exclude = defaults["exclude"]
        self.keep_native = defaults["keep_native"]
        self.input_ranges = defaults["input_ranges"]

    def apply(self, prog: Program) -> None:
        options = Options.make(scope=self.scope, exclude=self.exclude, keep_native=self.keep_native,
                               input_ranges=self.input_ranges)
        regions = plan(prog, options, kinds=(self.kind,))
        record(prog, regions)
        apply(prog, regions)


@register_pass(namespace="milguard", name="keep_fp32_layer_norm")
class KeepFp32LayerNorm(_KeepFp32Family):
    """Decomposed LayerNorm (and LayerNorm2d) regions stay fp32."""

    kind = "layer_norm"


@register_pass(namespace="milguard", name="keep_fp32_rms_norm")
class KeepFp32RmsNorm(_KeepFp32Family):
    """Decomposed RMSNorm regions (LLaMA, T5, Gemma, torch.nn.RMSNorm's translation) stay fp32."""

    kind = "rms_norm"


@register_pass(namespace="milguard", name="keep_fp32_softmax")
class KeepFp32Softmax(_KeepFp32Family):
    """Decomposed softmax and log-softmax regions stay fp32."""

    kind = "softmax"


@register_pass(namespace="milguard", name="apply_fp32_islands")
class ApplyFp32Islands(AbstractGraphPass):
    """Rebuild in fp32 every recorded region that ``add_fp16_cast`` (or a user op_selector) made fp16."""

    def apply(self, prog: Program) -> None:
        apply(prog, recorded(prog))


def install(pipeline: PassPipeline, **opts: Any) -> PassPipeline:
    """Put milguard's precision passes into ``pipeline`` around ``common::add_fp16_cast``.

    Idempotent: milguard passes already there are replaced, so installing twice with the same
    options gives the same pipeline. Options: see ``milguard.actions.options.Options``.
    Returns the pipeline.
    """
    options = Options.make(**opts)
    for name in (*FAMILY_PASSES.values(), APPLY_PASS):
        drop_pass(pipeline, name)
    passes = list(pipeline.passes)
    at = passes.index(ADD_FP16_CAST) if ADD_FP16_CAST in passes else len(passes)
    ours = [FAMILY_PASSES[k] for k in options.families]
    for offset, name in enumerate(ours):
        pipeline.insert_pass(at + offset, name)
        pipeline.set_options(name, options.as_strings())
    after = at + len(ours) + (1 if ADD_FP16_CAST in passes else 0)
    pipeline.insert_pass(after, APPLY_PASS)
    return pipeline


def pipeline(base: PassPipeline | None = None, **opts: Any) -> PassPipeline:
    """A copy of ``base`` (``ct.PassPipeline.DEFAULT`` when None) with milguard installed."""
    source = base if base is not None else ct.PassPipeline.DEFAULT
    copy = ct.PassPipeline(pass_names=list(source.passes), pipeline_name=source.pipeline_name)
    copy.set_options_by_another_pipeline(source)
    return install(copy, **opts)
