"""parse_input_ranges: the one reader of input ranges (CLI strings, pass options, Python dicts)."""
from __future__ import annotations

import math

import pytest

from milguard.errors import MilguardError
from milguard.input_ranges import parse_input_ranges

WANT = {"x": (-30.0, 30.0), "mask": (0.0, 1.0)}


@pytest.mark.parametrize("value", [
    "x=-30:30,mask=0:1",
    " x = -30 : 30 , mask=0:1 ,",
    '{"x": [-30, 30], "mask": [0, 1]}',
    {"x": (-30, 30), "mask": [0, 1]},
])
def test_every_form_gives_the_same_ranges(value):
    assert parse_input_ranges(value) == WANT


def test_empty_forms_and_infinite_bounds():
    assert parse_input_ranges(None) == parse_input_ranges("") == parse_input_ranges({}) == {}
    assert parse_input_ranges("x=-inf:inf") == {"x": (-math.inf, math.inf)}


@pytest.mark.parametrize("value,says", [
    ("x", "bad input range 'x': expected NAME=LO:HI, e.g. x=-30:30"),
    ("x=1", "bad input range 'x=1': expected NAME=LO:HI"),
    ("=0:1", "bad input range '=0:1': expected NAME=LO:HI"),
    ("x=a:b", "bad input range 'x=a:b': expected NAME=LO:HI"),
    ("x=3:1", "bad input range for 'x': 3.0 > 1.0"),
    ("x=nan:1", "bad input range for 'x': a bound is NaN"),
    ("{x: 1", "bad input ranges: not JSON"),
    ('["x", 1, 2]', "bad input range '[\"x\"': expected NAME=LO:HI"),
    ('{"x": 1}', "bad input range for 'x': expected [lo, hi], got 1"),
    ('{"x": [1, 2, 3]}', "bad input range for 'x': expected [lo, hi], got [1, 2, 3]"),
    ('{"x": "01"}', "bad input range for 'x': expected [lo, hi], got '01'"),
    ('{"x": ["a", 1]}', "bad input range for 'x': expected two numbers"),
    ([("x", 0, 1)], "bad input ranges: expected NAME=LO:HI pairs or a mapping"),
])
def test_bad_ranges_are_one_line_errors(value, says):
    with pytest.raises(MilguardError) as info:
        parse_input_ranges(value)
    assert str(info.value).startswith(says) and "\n" not in str(info.value)
