"""milguard's precision passes, registered with coremltools, and how they are put in a pipeline.

    ... -> common::dedup_op_and_var_names
        -> milguard::keep_fp32_<family>, one per registered family   (decide per region on the fp32
           program; apply rescale rewrites; record fp32 islands)
        -> common::add_fp16_cast                                       (everything else becomes fp16)
        -> milguard::apply_fp32_islands                                (recorded regions rebuilt in fp32)
        -> common::add_int16_cast -> ... const_elimination, cast_optimization ...

The family passes are made from the family declarations (``milguard.families``); their names keep
the ``keep_fp32_`` prefix of milguard's first passes although they now choose between leaving a
region fp16, rewriting it fp16-safely and keeping it fp32 (``milguard.actions.decide``).

``apply_fp32_islands`` runs before ``const_elimination`` folds ``cast(fp32 const)`` into fp16
constants, so the islands keep exact fp32 constants. With ``compute_precision=FLOAT32`` coremltools
removes ``add_fp16_cast`` from the pipeline it is given; the family passes hold a reference to that
pipeline, see the cast pass gone and change nothing.
"""
from __future__ import annotations

from typing import Any

import coremltools as ct

from .actions.apply import build_islands, carry_out, recorded_islands
from .actions.decide import Context, decide, remember
from .actions.options import Options
from .families import Family, families
from .mil import PASS_REGISTRY, AbstractGraphPass, PassPipeline, Program, drop_pass, program_state, register_pass

ADD_FP16_CAST = "common::add_fp16_cast"
APPLY_PASS = "milguard::apply_fp32_islands"
CONTEXT_KEY = "milguard.context"
_OPTIONS = tuple(Options().as_pass_options())


class FamilyPass(AbstractGraphPass):
    """Decide and carry out the remedy of every region of one family (set by each subclass)."""

    family = ""

    def __init__(self) -> None:
        for key, value in Options().as_pass_options().items():
            setattr(self, key, value)

    def apply(self, prog: Program) -> None:
        options = Options.make(**{k: getattr(self, k) for k in _OPTIONS})
        typed = any(Context(prog, options).computes_fp16(fn) for fn in prog.functions)
        will_cast = ADD_FP16_CAST in options.pipeline.passes if options.pipeline is not None else not typed
        if not (typed or will_cast):
            return                                        # an fp32 conversion: nothing is at fp16 risk
        # an all-fp32 program about to be cast is decided as fp16; in a program already computing
        # fp16 (typed so, or converted before) an fp32 region is an island and stays one
        ctx = _context(prog, options, casting=will_cast and not typed)
        pairs = decide(ctx, self.family)
        # islands are built after add_fp16_cast when it runs later, or it would cast them back
        carry_out(prog, pairs, ctx, islands_now=not will_cast)
        remember(prog, [d for _, d in pairs])


def _context(prog: Program, options: Options, casting: bool) -> Context:
    """One decision context per program and options, shared by the family passes of one run."""
    key = (tuple((k, id(v) if k in ("calibration", "pipeline") else v)
                 for k, v in options.as_pass_options().items()), casting)
    cached = program_state(prog).get(CONTEXT_KEY)
    if cached is None or cached[0] != key:
        cached = (key, Context(prog, options, casting=casting))
        program_state(prog)[CONTEXT_KEY] = cached
    return cached[1]


@register_pass(namespace="milguard", name="apply_fp32_islands")
class ApplyFp32Islands(AbstractGraphPass):
    """Rebuild in fp32 every recorded region that ``add_fp16_cast`` (or a user op_selector) made fp16."""

    def apply(self, prog: Program) -> None:
        build_islands(prog, recorded_islands(prog))
        program_state(prog).pop(CONTEXT_KEY, None)


def register_family_passes() -> list[str]:
    """Register ``milguard::keep_fp32_<family>`` for every registered family that has none yet."""
    names = []
    for fam in families().values():
        if fam.pass_name not in PASS_REGISTRY:
            cls = type(f"KeepFp32{''.join(w.title() for w in fam.name.split('_'))}", (FamilyPass,),
                       {"family": fam.name, "__doc__": _doc(fam)})
            register_pass(namespace="milguard", name=fam.pass_name.split("::", 1)[1])(cls)
        names.append(fam.pass_name)
    return names


def _doc(fam: Family) -> str:
    return f"{fam.title} regions: leave fp16, rescale, or keep fp32, per region. {fam.summary}."


def install(pipeline: PassPipeline, **opts: Any) -> PassPipeline:
    """Put milguard's precision passes into ``pipeline`` around ``common::add_fp16_cast``.

    Idempotent: milguard passes already there are replaced, so installing twice with the same
    options gives the same pipeline. Options: see ``milguard.actions.options.Options``.
    Returns the pipeline.
    """
    options = Options.make(**opts).with_(pipeline=pipeline)
    for name in (*register_family_passes(), APPLY_PASS):
        drop_pass(pipeline, name)
    passes = list(pipeline.passes)
    at = passes.index(ADD_FP16_CAST) if ADD_FP16_CAST in passes else len(passes)
    ours = [f.pass_name for f in families().values() if options.acts_on(f.name)]
    for offset, name in enumerate(ours):
        pipeline.insert_pass(at + offset, name)
        pipeline.set_options(name, options.as_pass_options())
    after = at + len(ours) + (1 if ADD_FP16_CAST in passes else 0)
    pipeline.insert_pass(after, APPLY_PASS)
    return pipeline


def pipeline(base: PassPipeline | None = None, **opts: Any) -> PassPipeline:
    """A copy of ``base`` (``ct.PassPipeline.DEFAULT`` when None) with milguard installed."""
    source = base if base is not None else ct.PassPipeline.DEFAULT
    copy = ct.PassPipeline(pass_names=list(source.passes), pipeline_name=source.pipeline_name)
    copy.set_options_by_another_pipeline(source)
    return install(copy, **opts)
