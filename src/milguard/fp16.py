"""Facts about IEEE 754 binary16 (fp16), the precision Core ML runs ML programs in by default.

Every limit milguard reasons with is defined here once, from the format itself:
1 sign bit, 5 exponent bits (bias 15), 10 stored significand bits (11 with the hidden bit).

* ``MAX = (2 - 2^-10) * 2^15 = 65504``: the largest finite value; anything that rounds past it
  is stored as ±inf.
* ``MIN_NORMAL = 2^-14 ≈ 6.10e-5``: below it values are subnormal and lose significant bits.
* ``MIN_SUBNORMAL = 2^-24 ≈ 5.96e-8``: the smallest positive value; below half of it a value
  rounds to 0 (an eps of 1e-12 is 0 in fp16).
* ``UNIT_ROUNDOFF = 2^-11``: the relative error of one rounding to nearest.
* ``SQUARE_LIMIT = sqrt(65504) ≈ 255.94``: x² overflows once |x| passes it (the square inside
  LayerNorm and RMSNorm).
* ``EXP_LIMIT = ln(65504) ≈ 11.09``: exp(x) overflows once x passes it (an unshifted softmax).
* ``ABSORPTION = 2^11 = 2048``: a running fp16 sum that is 2048 times larger than a term no longer
  changes when the term is added (the significand has 11 bits).
"""
from __future__ import annotations

import math

MAX = 65504.0
MIN_NORMAL = 2.0 ** -14
MIN_SUBNORMAL = 2.0 ** -24
UNIT_ROUNDOFF = 2.0 ** -11
SQUARE_LIMIT = math.sqrt(MAX)
EXP_LIMIT = math.log(MAX)
ABSORPTION = 2 ** 11

__all__ = ["ABSORPTION", "EXP_LIMIT", "MAX", "MIN_NORMAL", "MIN_SUBNORMAL", "SQUARE_LIMIT", "UNIT_ROUNDOFF"]
