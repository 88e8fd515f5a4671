"""The façade over coremltools internals.

Only this package imports ``coremltools.converters.mil...``; every other module of milguard
talks to the names exported here, so a coremltools upgrade touches one folder.
"""
from .core import (
    FP16_CAST_SUFFIX,
    AbstractGraphPass,
    Block,
    Function,
    Operation,
    PASS_REGISTRY,
    PassPipeline,
    PassPipelineManager,
    Program,
    Var,
    block_context_manager,
    const_value,
    drop_pass,
    dtype_name,
    iter_blocks,
    iter_ops,
    mb,
    module_path,
    module_type,
    np_dtype,
    op_inputs,
    op_params,
    register_pass,
    types,
)
from .io import Loaded, load, save, write_package
from .program_state import has_program_state, program_state
from . import rewrite

__all__ = [
    "FP16_CAST_SUFFIX",
    "rewrite",
    "AbstractGraphPass", "Block", "Function", "Loaded", "Operation", "PASS_REGISTRY",
    "PassPipeline", "PassPipelineManager", "Program", "Var", "block_context_manager", "has_program_state",
    "const_value", "drop_pass", "dtype_name", "iter_blocks", "iter_ops", "load", "mb", "module_path", "module_type",
    "np_dtype", "op_inputs", "op_params", "program_state", "register_pass", "save", "types", "write_package",
]
