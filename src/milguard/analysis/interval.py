"""Closed intervals of extended reals with an explicit NaN flag: the value type of range analysis.

An ``Interval(lo, hi, may_nan)`` stands for the set ``{x : lo <= x <= hi}`` (x real or ±inf),
plus NaN when ``may_nan`` is set. ``lo > hi`` is the empty set (``Interval.empty()``); an empty
interval with ``may_nan`` holds NaN only. Every operation is *sound*: the result contains every
value the operation can produce from members of its operands, including the IEEE special cases
(``inf - inf``, ``0 * inf``, ``x / 0``, ``sqrt(-1)`` produce NaN and set the flag). It is not
tight: bounds may be loose, never too small.

The fp16 hazard this type exists for: a bound that crosses 65504 rounds to ``inf`` in an
fp16-typed var (:meth:`Interval.round_to`), and ``inf`` then turns into NaN downstream
(``inf - inf`` in a mean subtraction, ``0 * inf``, ``inf / inf`` in a normalisation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

INF = math.inf


def _add(a: float, b: float, nan_as: float) -> float:
    s = a + b
    return nan_as if math.isnan(s) else s


def _mul(a: float, b: float) -> float:
    """Product of two bounds; ``0 * ±inf`` is taken as 0 (its NaN is flagged by the caller)."""
    if a == 0.0 or b == 0.0:
        return 0.0
    return a * b


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float
    may_nan: bool = False

    def __post_init__(self) -> None:
        lo, hi = float(self.lo), float(self.hi)
        nan = bool(self.may_nan)
        if math.isnan(lo):            # a NaN bound means "unknown on that side"
            lo, nan = -INF, True
        if math.isnan(hi):
            hi, nan = INF, True
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "may_nan", nan)

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def point(cls, value: float) -> Interval:
        value = float(value)
        return cls.nan_only() if math.isnan(value) else cls(value, value)

    @classmethod
    def top(cls) -> Interval:
        """Anything, NaN included: the result of an op the analysis has no semantics for."""
        return cls(-INF, INF, True)

    @classmethod
    def empty(cls) -> Interval:
        return cls(INF, -INF)

    @classmethod
    def nan_only(cls) -> Interval:
        return cls(INF, -INF, True)

    @classmethod
    def of(cls, values) -> Interval:
        """The exact hull of an array (or scalar) of numbers; NaN entries set ``may_nan``."""
        arr = np.asarray(values)
        if arr.dtype == bool:
            arr = arr.astype(np.int8)
        if arr.size == 0:
            return cls.empty()
        if arr.dtype.kind not in "fiu":
            return cls.top()
        if arr.dtype == np.float16:            # numpy reduces fp16 slowly; fp32 holds it exactly
            arr = arr.astype(np.float32)
        lo, hi = arr.min(), arr.max()          # NaN wins in min/max: then look again
        if arr.dtype.kind == "f" and (np.isnan(lo) or np.isnan(hi)):
            if np.isnan(arr).all():
                return cls.nan_only()
            return cls(float(np.nanmin(arr)), float(np.nanmax(arr)), True)
        return cls(float(lo), float(hi))

    # ---- predicates -----------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return self.lo > self.hi

    @property
    def is_finite(self) -> bool:
        return self.is_empty or (math.isfinite(self.lo) and math.isfinite(self.hi))

    @property
    def maxabs(self) -> float:
        """The largest |x| of the set (0 for an empty set)."""
        return 0.0 if self.is_empty else max(abs(self.lo), abs(self.hi))

    @property
    def has_inf(self) -> bool:
        return not self.is_empty and (self.lo == -INF or self.hi == INF)

    def contains(self, x: float) -> bool:
        if math.isnan(x):
            return self.may_nan
        return self.lo <= x <= self.hi

    def contains_zero(self) -> bool:
        return self.contains(0.0)

    def subset_of(self, other: Interval) -> bool:
        if self.may_nan and not other.may_nan:
            return False
        return self.is_empty or (other.lo <= self.lo and self.hi <= other.hi)

    # ---- lattice --------------------------------------------------------------------------
    def hull(self, *others: Interval) -> Interval:
        """The smallest interval containing all operands (set union, then convex hull)."""
        lo, hi, nan = self.lo, self.hi, self.may_nan
        for o in others:
            lo, hi, nan = min(lo, o.lo), max(hi, o.hi), nan or o.may_nan
        return Interval(lo, hi, nan)

    __or__ = hull

    def meet(self, other: Interval) -> Interval:
        return Interval(max(self.lo, other.lo), min(self.hi, other.hi), self.may_nan and other.may_nan)

    def with_nan(self, flag: bool = True) -> Interval:
        return Interval(self.lo, self.hi, self.may_nan or flag)

    def widen(self, rel: float, absolute: float = 0.0) -> Interval:
        """Grow each bound outward by ``rel * |bound| + absolute`` (covers rounding inside an op:
        an elementwise result v is computed as v·(1+δ), so the error scales with the bound)."""
        if self.is_empty or (rel == 0 and absolute == 0):
            return self
        return Interval(self.lo - rel * abs(self.lo) - absolute,
                        self.hi + rel * abs(self.hi) + absolute, self.may_nan)

    # ---- arithmetic -----------------------------------------------------------------------
    def __neg__(self) -> Interval:
        return Interval(-self.hi, -self.lo, self.may_nan)

    def __add__(self, other: Interval) -> Interval:
        if self.is_empty or other.is_empty:
            return Interval.empty().with_nan(self.may_nan or other.may_nan)
        nan = self.may_nan or other.may_nan
        nan |= (self.hi == INF and other.lo == -INF) or (self.lo == -INF and other.hi == INF)
        return Interval(_add(self.lo, other.lo, -INF), _add(self.hi, other.hi, INF), nan)

    def __sub__(self, other: Interval) -> Interval:
        return self + (-other)

    def __mul__(self, other: Interval) -> Interval:
        if self.is_empty or other.is_empty:
            return Interval.empty().with_nan(self.may_nan or other.may_nan)
        nan = self.may_nan or other.may_nan
        nan |= (self.contains_zero() and other.has_inf) or (other.contains_zero() and self.has_inf)
        c = [_mul(a, b) for a in (self.lo, self.hi) for b in (other.lo, other.hi)]
        return Interval(min(c), max(c), nan)

    def reciprocal(self) -> Interval:
        """1/x. A set containing 0 gives ±inf on both sides (0 may be -0.0); ±inf gives 0."""
        if self.is_empty:
            return self
        if self.contains_zero():
            return Interval(-INF, INF, self.may_nan)
        return Interval(1.0 / self.hi, 1.0 / self.lo, self.may_nan)

    def __truediv__(self, other: Interval) -> Interval:
        if self.is_empty or other.is_empty:
            return Interval.empty().with_nan(self.may_nan or other.may_nan)
        nan = (self.contains_zero() and other.contains_zero()) or (self.has_inf and other.has_inf)
        if other.contains_zero():
            return Interval(-INF, INF, nan or self.may_nan or other.may_nan)
        return (self * other.reciprocal()).with_nan(nan)

    def scale(self, k: float) -> Interval:
        """k * x for a finite constant k >= 0 (a reduction over k elements, a mean, a count)."""
        return self * Interval.point(k)

    def abs(self) -> Interval:
        if self.is_empty:
            return self
        if self.lo >= 0:
            return self
        if self.hi <= 0:
            return -self
        return Interval(0.0, max(-self.lo, self.hi), self.may_nan)

    def square(self) -> Interval:
        a = self.abs()
        if a.is_empty:
            return a
        return Interval(_mul(a.lo, a.lo), _mul(a.hi, a.hi), a.may_nan)

    def clip(self, lo: float, hi: float) -> Interval:
        """min(max(x, lo), hi); NaN passes through (as numpy.clip does)."""
        if self.is_empty:
            return self
        return Interval(min(max(self.lo, lo), hi), max(min(self.hi, hi), lo), self.may_nan)

    def maximum(self, other: Interval) -> Interval:
        if self.is_empty or other.is_empty:
            return Interval.empty().with_nan(self.may_nan or other.may_nan)
        return Interval(max(self.lo, other.lo), max(self.hi, other.hi), self.may_nan or other.may_nan)

    def minimum(self, other: Interval) -> Interval:
        if self.is_empty or other.is_empty:
            return Interval.empty().with_nan(self.may_nan or other.may_nan)
        return Interval(min(self.lo, other.lo), min(self.hi, other.hi), self.may_nan or other.may_nan)

    def monotone(self, f: Callable[[float], float], increasing: bool = True,
                 domain: tuple[float, float] = (-INF, INF)) -> Interval:
        """f(x) for f monotone on ``domain``; members outside the domain give NaN.

        ``f`` is called on the (clamped) bounds only; it must accept ±inf and may return NaN
        at a domain edge it cannot evaluate (then that side becomes unbounded).
        """
        if self.is_empty:
            return self
        nan = self.may_nan or self.lo < domain[0] or self.hi > domain[1]
        lo, hi = max(self.lo, domain[0]), min(self.hi, domain[1])
        if lo > hi:
            return Interval.nan_only()
        a, b = _safe(f, lo), _safe(f, hi)
        if not increasing:
            a, b = b, a
        return Interval(-INF if math.isnan(a) else a, INF if math.isnan(b) else b, nan)

    def power(self, p: float) -> Interval:
        """x ** p for a constant exponent p (numpy semantics: negative base, fractional p -> NaN)."""
        if self.is_empty:
            return self
        if p == 0:
            return Interval(1.0, 1.0, self.may_nan)
        if float(p).is_integer():
            k = int(p)
            if k > 0 and k % 2 == 0:
                a = self.abs()
                return Interval(_pow(a.lo, k), _pow(a.hi, k), a.may_nan)
            if k > 0:
                return Interval(_pow(self.lo, k), _pow(self.hi, k), self.may_nan)
            return self.power(-k).reciprocal()
        # fractional exponent: defined for x >= 0 only, NaN below 0 except at -inf, where IEEE
        # pow gives +inf (p > 0) or 0 (p < 0)
        if p > 0:
            out = self.monotone(lambda v: _pow(v, p), True, (0.0, INF))
        else:
            out = self.monotone(lambda v: _pow(v, p) if v > 0 else INF, False, (0.0, INF))
        if self.lo == -INF:
            out = out.hull(Interval.point(INF if p > 0 else 0.0))
        return out

    def round_to(self, dtype: str | None) -> Interval:
        """The set after rounding to a MIL dtype: fp16 bounds beyond ±65504 become ±inf.

        Round-to-nearest is monotone, so rounding both bounds to nearest is sound.
        """
        if self.is_empty or dtype is None:
            return self
        if dtype in ("fp16", "fp32", "fp64"):
            np_t = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64}[dtype]
            with np.errstate(over="ignore"):
                return Interval(float(np_t(self.lo)), float(np_t(self.hi)), self.may_nan)
        if dtype == "bool":
            return self.clip(0.0, 1.0) if not self.may_nan else Interval(0.0, 1.0)
        return self

    # ---- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        if self.is_empty:
            return "Interval(empty, nan)" if self.may_nan else "Interval(empty)"
        tail = ", nan" if self.may_nan else ""
        return f"Interval({self.lo:.6g}, {self.hi:.6g}{tail})"


def _safe(f: Callable[[float], float], x: float) -> float:
    try:
        return float(f(x))
    except OverflowError:
        return INF if x > 0 else math.nan
    except (ValueError, ZeroDivisionError):
        return math.nan


def _pow(x: float, k: float) -> float:
    try:
        return math.pow(x, k)
    except OverflowError:
        return INF if x > 0 or float(k).is_integer() and int(k) % 2 == 0 else -INF
    except (ValueError, ZeroDivisionError):
        return INF if x == 0 else math.nan


def hull_all(items: Iterable[Interval]) -> Interval:
    out = Interval.empty()
    for it in items:
        out = out.hull(it)
    return out


def safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return INF
