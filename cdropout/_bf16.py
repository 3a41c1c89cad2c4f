"""bfloat16 helpers shared by the NumPy path (ml_dtypes arrays) and cdropout.torch."""
from __future__ import annotations

import math

#: The largest finite bfloat16.
BF16_MAX = 3.3895313892515355e38


def round_to_bfloat16(s: float) -> float:
    """A finite double rounded to the nearest bfloat16 (ties to even), returned as a double.

    One rounding straight from the double (no detour through float32). Values beyond the
    largest bfloat16's rounding boundary give +-inf.

    Examples
    --------
    >>> from cdropout._bf16 import round_to_bfloat16
    >>> round_to_bfloat16(1 / 0.7)
    1.4296875
    >>> round_to_bfloat16(1.00390625)  # halfway between 1 and 1.0078125: ties to even
    1.0
    """
    if s == 0.0 or not math.isfinite(s):
        return s
    m, e = math.frexp(s)              # s = m * 2**e, 0.5 <= |m| < 1
    q = round(m * 256.0)              # 8 significant bits; round() ties to even, m * 256 is exact
    r = math.ldexp(q, e - 8)
    return math.copysign(math.inf, r) if abs(r) > BF16_MAX else r
