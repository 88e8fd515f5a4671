"""The façade over coremltools internals.

Only this package imports ``coremltools.converters.mil...`` or touches a private coremltools
attribute; every other module of milguard talks to the names exported here, so a coremltools
upgrade touches one folder. :mod:`.private_names` lists each private name it depends on, with the
public alternative where coremltools 9.0 has one. milguard's per-program records live in the side
store :func:`program_state`, never as attributes on coremltools objects.
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
from .clone import copy_program
from .io import Loaded, converted_program, load, save, write_package
from .program_state import has_program_state, program_state
from . import rewrite

__all__ = [
    "FP16_CAST_SUFFIX",
    "rewrite",
    "AbstractGraphPass", "Block", "Function", "Loaded", "Operation", "PASS_REGISTRY",
    "PassPipeline", "PassPipelineManager", "Program", "Var",
    "const_value", "converted_program", "copy_program", "drop_pass", "dtype_name", "has_program_state", "iter_blocks",
    "iter_ops", "load", "mb", "module_path", "module_type", "np_dtype", "op_inputs", "op_params",
    "program_state", "register_pass", "save", "types", "write_package",
]
