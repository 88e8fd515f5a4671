"""Patterns as data, written in MIL's own op and parameter names.

``P.reduce_mean(x=X, axes=AXES, keep_dims=True)`` is an op pattern: it matches an op of type
``reduce_mean`` whose ``x`` input matches ``X``, whose ``axes`` matches ``AXES`` and whose
``keep_dims`` is the constant ``True``. Plain Python values become literal-constant patterns.

Leaves:
  ``Bind("x")``           any var; the same name must bind the same var everywhere in a match
                          (constants bind by value, so two ``axes`` consts with equal values agree)
  ``Bind("g", const=True)`` the same, restricted to compile-time constants
  ``Const("eps", test, why)`` a constant whose value passes ``test``; ``why`` names the constraint;
                          with ``bind=False`` the name only labels the reason of a near miss
  ``Lit(2.0)``            a constant equal to the value (float tolerance 1e-6 relative)
  ``Any()``               anything

Combinators:
  ``either(("pow", p1), ("square", p2), axis="square")`` alternatives tried in order; the label of the
                          chosen one is recorded under ``axis`` and makes up the match's variant
  ``maybe_cast(p)``       ``cast(x=p)`` or ``p``: the casts that ``.to(float32)`` leaves behind

Reusing one op-pattern object in two places means *the same op* (DAG patterns): the centred
``x - mean`` of a LayerNorm is one ``sub`` feeding both the square and the normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..mil import op_params


class Pat:
    """Base class of all patterns."""


@dataclass(eq=False)
class OpPat(Pat):
    op_types: tuple[str, ...]
    params: dict[str, Pat] = field(default_factory=dict)
    name: str | None = None          # binds the matched Operation under this name

    def __repr__(self) -> str:
        return f"{'|'.join(self.op_types)}({', '.join(self.params)})"


@dataclass(eq=False)
class Bind(Pat):
    name: str
    const: bool = False


@dataclass(eq=False)
class Const(Pat):
    name: str | None
    test: Callable[[np.ndarray], bool]
    why: str
    bind: bool = True                # bind the value under ``name`` (consistent across the match)


@dataclass(eq=False)
class Lit(Pat):
    value: Any

    def matches(self, val: np.ndarray) -> bool:
        want = np.asarray(self.value)
        if val.shape != want.shape and val.size != 1:
            return False
        if want.dtype.kind in "fc" or val.dtype.kind in "fc":
            return bool(np.allclose(val.astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=0))
        return bool(np.array_equal(val.reshape(want.shape) if val.size == want.size else val, want))


@dataclass(eq=False)
class AnyPat(Pat):
    pass


@dataclass(eq=False)
class Either(Pat):
    alternatives: tuple[tuple[str, Pat], ...]
    axis: str | None = None


def Any() -> AnyPat:  # noqa: N802 - reads like the other leaves
    return AnyPat()


def _as_pat(value: Any) -> Pat:
    return value if isinstance(value, Pat) else Lit(value)


class _OpBuilder:
    """``P.<op_type>(**params)``; ``P.op(("pow", "square"), ...)`` for several op types."""

    def op(self, op_types: str | tuple[str, ...], *, name: str | None = None, **params: Any) -> OpPat:
        types_ = (op_types,) if isinstance(op_types, str) else tuple(op_types)
        for op_type in types_:
            known = op_params(op_type)
            if known is None:
                raise ValueError(f"pattern uses unknown MIL op type '{op_type}'")
            unknown = set(params) - known
            if unknown:
                raise ValueError(f"pattern gives '{op_type}' unknown parameters {sorted(unknown)}")
        return OpPat(types_, {k: _as_pat(v) for k, v in params.items()}, name)

    def __getattr__(self, op_type: str) -> Callable[..., OpPat]:
        if op_type.startswith("_"):
            raise AttributeError(op_type)
        return lambda name=None, **params: self.op(op_type, name=name, **params)


P = _OpBuilder()


def either(*alternatives: tuple[str, Any], axis: str | None = None) -> Either:
    """Alternatives tried in order, each ``(label, pattern)``."""
    return Either(tuple((label, _as_pat(p)) for label, p in alternatives), axis)


def maybe_cast(p: Any) -> Either:
    """``p`` or ``cast(x=p)``: an optional dtype cast in front of a value."""
    return either(("", P.cast(x=p)), ("", p))
