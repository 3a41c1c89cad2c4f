"""Alpha dropout's float64 constants, each the correctly rounded value of its exact expression.

With ``alpha' = ALPHA_PRIME`` and ``p`` taken as the exact rationals their float64 values stand
for, the exact real numbers

    a = ((1 - p) * (1 + p * alpha'**2)) ** -0.5
    b = -a * alpha' * p
    c = a * alpha' * (1 - p)          (= a * alpha' + b)

are each rounded once to the nearest float64 (ties to even). The computation uses Python's exact
integer arithmetic only (``fractions.Fraction`` and ``math.isqrt``), never a math-library
function such as ``pow``: those are not correctly rounded and can differ between platforms in the
last bit. So the constants are the same on every machine, and any arbitrary-precision library
reproduces them from docs/variants.md.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Tuple

__all__ = ["ALPHA_PRIME", "alpha_coefficients"]

#: alpha' = -lambda * alpha of SELU: the value a dropped SELU activation is set to
#: (exactly ``-0x1.c212cc640f030p+0``).
ALPHA_PRIME = -1.7580993408473766

_PREC = 53          # float64 significand bits
_MIN_EXP = -1074    # exponent of the smallest subnormal


def _nearest_sqrt(num: int, den: int) -> float:
    """The float64 nearest to sqrt(num / den) (ties to even), for integers num >= 0, den > 0.

    Finds M, k with sqrt(num/den) * 2**k in [2**52, 2**53) (fewer bits for a subnormal result,
    k <= 1074), M = floor of it, then rounds by comparing the exact square of M + 1/2.
    """
    if num == 0:
        return 0.0
    # z = num/den; choose k so that z * 4**k lies in [2**104, 2**106)
    k = (2 * _PREC - (num.bit_length() - den.bit_length())) // 2
    while True:
        k = min(k, -_MIN_EXP)
        if k >= 0:
            top, bottom = num << (2 * k), den
        else:
            top, bottom = num, den << (-2 * k)
        m = math.isqrt(top // bottom)  # floor(sqrt(top/bottom)) = floor(sqrt(floor(top/bottom)))
        if m >= 1 << _PREC:
            k -= 1
        elif m < 1 << (_PREC - 1) and k < -_MIN_EXP:
            k += 1
        else:
            break
    # round: sqrt(z') vs m + 1/2  <=>  4 * top vs (2m + 1)**2 * bottom, exact integers
    lhs, rhs = 4 * top, (2 * m + 1) ** 2 * bottom
    if lhs > rhs or (lhs == rhs and m & 1):
        m += 1
    return math.ldexp(float(m), -k)  # m <= 2**53: exact, and the product is representable


def _nearest_times_rsqrt(r: Fraction, q: Fraction) -> float:
    """The float64 nearest to the exact r / sqrt(q), q > 0."""
    v = r * r / q
    mag = _nearest_sqrt(v.numerator, v.denominator)
    return -mag if r < 0 else mag


@functools.lru_cache(maxsize=1024)
def alpha_coefficients(p: float) -> Tuple[float, float, float]:
    """(a, b, c) for drop probability ``0 <= p < 1``: kept -> a*x + b, dropped -> c.

    Each is the float64 nearest to the exact value of its expression in the module docstring.

    Examples
    --------
    >>> from cdropout._alpha_constants import ALPHA_PRIME, alpha_coefficients
    >>> alpha_coefficients(0.0) == (1.0, 0.0, ALPHA_PRIME)
    True
    >>> [x.hex() for x in alpha_coefficients(0.5)]
    ['0x1.c5d6dcc335816p-1', '0x1.8ef281c1a21efp-1', '-0x1.8ef281c1a21efp-1']
    """
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"alpha dropout's constants need p in [0, 1), got {p!r}")
    fp = Fraction(p)
    alpha = Fraction(ALPHA_PRIME)
    q = (1 - fp) * (1 + fp * alpha * alpha)
    return (_nearest_times_rsqrt(Fraction(1), q),
            _nearest_times_rsqrt(-alpha * fp, q),
            _nearest_times_rsqrt(alpha * (1 - fp), q))
