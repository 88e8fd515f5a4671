"""Every coremltools name milguard depends on that coremltools 9.0 does not offer as public API.

Only :mod:`milguard.mil` touches them; the rest of milguard imports the façade's names. Where
coremltools 9.0 has a public spelling of the same thing, the façade uses it and the entry says so
(``public``); ``public is None`` means there is none, and ``why`` says what milguard needs it for.
A coremltools upgrade is checked against this table.

``marker`` is the text that gives a use away (an import path or an attribute name);
``tests/structure/test_facade.py`` fails when a marker appears in a module outside ``mil/``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivateName:
    name: str                # the coremltools name, as imported or accessed
    where: str               # the façade module that uses it
    why: str                 # what milguard needs it for
    public: str | None       # the public alternative in coremltools 9.0 (used instead), or None
    marker: str              # text that betrays a direct use outside the façade


CONVERTERS = "coremltools.converters"     # every internal module lives under this package

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    # ---- the MIL object model ------------------------------------------------------------------
    PrivateName("coremltools.converters.mil.mil.{Block, Builder, Function, Operation, Program, Var}",
                "core.py", "the program, its functions, blocks, ops and vars; the MIL builder",
                "coremltools.converters.mil.{Block, Builder, Function, Operation, Program, Var} "
                "(the documented namespace; used)", CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.types", "core.py, shapes.py",
                "dtype names, tensor/scalar tests, MIL dtype -> numpy dtype (types.nptype_from_builtin)",
                None, CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.types.symbolic.is_symbolic", "shapes.py",
                "whether a dimension is symbolic (flexible or data dependent)", None, CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.ops.registry.SSAOpRegistry", "core.py",
                "the parameter names of an op type, to check patterns against real ops", None,
                "SSAOpRegistry"),
    PrivateName("coremltools.converters.mil.mil.scope.{ScopeSource, ScopeInfo}", "core.py, rewrite.py",
                "the torch module an op came from; keeping it on ops milguard builds", None,
                "ScopeSource"),
    PrivateName("Operation.materialized_val_inference()", "values.py",
                "the decompressed values of constexpr_* ops (their outputs have no .val)", None,
                "materialized_val_inference"),
    # ---- passes and pipelines ------------------------------------------------------------------
    PrivateName("coremltools.converters.mil.mil.passes.graph_pass.AbstractGraphPass", "core.py",
                "the base class of milguard's passes (documented only in the repository's "
                "graph_pass.md)", None, CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.passes.pass_registry.{register_pass, PASS_REGISTRY}",
                "core.py", "registering milguard::* passes; looking passes up by name", None, CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.passes.pass_pipeline.PassPipeline", "core.py, io.py",
                "building and editing pipelines", "coremltools.PassPipeline (used)", CONVERTERS),
    PrivateName("coremltools.converters.mil.mil.passes.pass_pipeline.PassPipelineManager", "core.py",
                "running a pipeline on a program read from disk (ct.convert runs one only while "
                "converting)", None, CONVERTERS),
    PrivateName("PassPipeline._pass_options", "core.py",
                "dropping a pass together with its options (remove_passes keeps the options, which "
                "validate() then rejects)",
                "PassPipeline.get_all_options(), which returns the live dict (used)", "._pass_options"),
    # ---- reading and writing models ------------------------------------------------------------
    PrivateName("MLModel._mil_program", "io.py (converted_program)",
                "the very program ct.convert ran its passes on, with the ops' torch scopes; "
                "milguard's side store is keyed by it",
                None, "_mil_program"),
    PrivateName("MLModel._get_mil_internal()", "(not used)",
                "a deep copy of _mil_program: loses the object identity the side store needs", None,
                "_get_mil_internal"),
    PrivateName("coremltools.converters.mil.frontend.milproto.load.load", "io.py",
                "the program of a saved ML program (.mlpackage / .mlmodel)", None, CONVERTERS),
    PrivateName("coremltools.converters.mil.converter.mil_convert", "io.py",
                "a Program back to an MLModel keeping the original model description (ct.convert "
                "converts a Program too, but takes no model description)", None, "mil_convert("),
    PrivateName("coremltools.converters.mil.mil.utils.{CacheDoublyLinkedList, OpNode}", "clone.py",
                "a block's op list and its nodes (and the sentinel a removed node points to), rebuilt with "
                "the rest of the graph by copy_program", None, CONVERTERS),
    PrivateName("Function.input_types", "inputs.py",
                "the ct.TensorType list ct.convert leaves on a converted program's function: the RangeDim "
                "bounds and EnumeratedShapes of its inputs (a saved model has them in its public spec)",
                None, ".input_types"),
    PrivateName("coremltools.converters.mil.mil.passes.defs.preprocess.NameSanitizer", "names.py",
                "the names mil_backend::sanitize_name_strings gives ops and vars when saving", None,
                "NameSanitizer"),
)

__all__ = ["CONVERTERS", "PRIVATE_NAMES", "PrivateName"]
