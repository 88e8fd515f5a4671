"""Interval arithmetic at the edges: ±inf, NaN and the empty set."""
from __future__ import annotations

import math

import numpy as np
import pytest

from milguard.analysis.interval import INF, Interval

E = Interval.empty()


def test_nan_bounds_become_unbounded_with_the_flag():
    iv = Interval(math.nan, 1.0)
    assert (iv.lo, iv.hi, iv.may_nan) == (-INF, 1.0, True)


def test_of_array_ignores_nan_but_flags_it():
    iv = Interval.of(np.array([1.0, np.nan, -2.0, np.inf]))
    assert (iv.lo, iv.hi, iv.may_nan) == (-2.0, INF, True)
    assert Interval.of(np.array([np.nan])) == Interval.nan_only()
    assert Interval.of(np.array([])).is_empty


@pytest.mark.parametrize("a,b,expect", [
    (Interval(1, 2), Interval(3, 4), Interval(4, 6)),
    (Interval(1, INF), Interval(-INF, 0), Interval(-INF, INF, True)),     # inf - inf
    (Interval(INF, INF), Interval(1, 2), Interval(INF, INF)),
    (Interval(-INF, -INF), Interval(INF, INF), Interval(-INF, INF, True)),
])
def test_add(a, b, expect):
    assert a + b == expect


def test_sub_of_equal_infinities_is_nan():
    inf = Interval.point(INF)
    assert (inf - inf).may_nan


@pytest.mark.parametrize("a,b,expect", [
    (Interval(-2, 3), Interval(4, 5), Interval(-10, 15)),
    (Interval(0, 1), Interval(0, INF), Interval(0, INF, True)),        # 0 * inf
    (Interval(1, 2), Interval(1, INF), Interval(1, INF)),
    (Interval(-1, -1), Interval(INF, INF), Interval(-INF, -INF)),
])
def test_mul(a, b, expect):
    assert a * b == expect


def test_division_by_an_interval_containing_zero_is_unbounded():
    q = Interval(1, 2) / Interval(-1, 1)
    assert (q.lo, q.hi) == (-INF, INF) and not q.may_nan
    assert (Interval(0, 1) / Interval(0, 1)).may_nan               # 0/0
    assert Interval(1, 2) / Interval(2, 4) == Interval(0.25, 1.0)
    assert (Interval(INF, INF) / Interval(1, INF)).may_nan          # inf/inf


def test_reciprocal_of_infinity_is_zero():
    assert Interval(2, INF).reciprocal() == Interval(0.0, 0.5)


def test_empty_is_absorbing_and_keeps_nan():
    for res in (E + Interval(1, 2), Interval(1, 2) * E, E / Interval(1, 2), E.square(), E.abs()):
        assert res.is_empty
    assert (Interval.nan_only() + Interval(1, 2)).may_nan
    assert E.hull(Interval(1, 2)) == Interval(1, 2)
    assert E.maxabs == 0.0 and E.subset_of(Interval(0, 0))


def test_square_and_even_powers_are_nonnegative():
    assert Interval(-3, 2).square() == Interval(0, 9)
    assert Interval(-3, -2).power(2) == Interval(4, 9)
    assert Interval(-2, 3).power(3) == Interval(-8, 27)
    assert Interval(-INF, 1).square() == Interval(0, INF)


def test_fractional_power_of_negative_is_nan():
    r = Interval(-1, 4).power(0.5)
    assert r.may_nan and (r.lo, r.hi) == (0.0, 2.0)
    assert Interval(0, 4).power(-0.5) == Interval(0.5, INF)


def test_monotone_domain_and_overflow():
    assert Interval(-1, 1000).monotone(math.exp).hi == INF
    lg = Interval(-1, 1).monotone(lambda v: math.log(v) if v > 0 else -INF, True, (0.0, INF))
    assert lg.lo == -INF and lg.hi == 0.0 and lg.may_nan
    assert Interval(-2, -1).monotone(math.sqrt, True, (0.0, INF)) == Interval.nan_only()


def test_round_to_fp16_overflows_to_inf_fp32_does_not():
    iv = Interval(-70000.0, 65519.0)
    assert iv.round_to("fp16") == Interval(-INF, 65504.0)
    assert iv.round_to("fp32") == iv
    assert Interval(1e-9, 1e-9).round_to("fp16") == Interval(0.0, 0.0)


def test_widen_is_relative_to_each_bound():
    assert Interval(0, 100).widen(0.01) == Interval(0, 101)
    assert Interval(-INF, 1).widen(0.5).lo == -INF


def test_immutable():
    with pytest.raises(Exception):
        Interval(0, 1).lo = 3          # type: ignore[misc]
