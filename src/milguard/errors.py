"""Errors milguard raises on purpose. Each message is one line that names the problem."""
from __future__ import annotations


class MilguardError(Exception):
    """Base class: a problem with the user's input or request, not a bug in milguard."""


class ModelError(MilguardError):
    """The model cannot be read: missing path, wrong format, neural network, corrupt package."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one line of at most ``limit`` characters, for an error message: whitespace runs
    collapse to one space, an empty message gives the exception's type name, and an OSError that
    names a file reads ``file: reason``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


class UnsupportedOpError(MilguardError):
    """An op milguard has no semantics for (the executor or an analysis) was reached."""

    def __init__(self, op_type: str, op_name: str, where: str = "executor"):
        self.op_type, self.op_name = op_type, op_name
        super().__init__(f"{where}: unsupported op type '{op_type}' (op '{op_name}')")
