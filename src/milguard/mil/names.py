"""The names the ML-program backend gives ops and vars (``mil_backend::sanitize_name_strings``)."""
from __future__ import annotations

from coremltools.converters.mil.mil.passes.defs.preprocess import NameSanitizer


def sanitized_op_name(name: str) -> str:
    """The name an op called ``name`` is saved under when it is not renamed for uniqueness."""
    return NameSanitizer(prefix="op_").sanitize_name(name)


def sanitized_var_name(name: str) -> str:
    """The name a var called ``name`` is saved under when it is not renamed for uniqueness."""
    return NameSanitizer(prefix="var_").sanitize_name(name)
