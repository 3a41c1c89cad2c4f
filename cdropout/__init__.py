"""cdropout: fast, exact, reproducible dropout for NumPy on the CPU.

The mask of element ``e`` depends only on (seed, stream, e, p) through Philox4x32-10
(docs/stream-format.md), so results are identical for any thread count, SIMD path or machine,
and the backward can regenerate the mask from a key instead of storing it.
"""
from ._api import dropout, dropout_backward, philox4x32
from ._config import simd_info
from ._masks import BitMask, MaskKey
from ._seeding import Generator, default_generator, seed

__version__ = "0.1.0"

__all__ = [
    "BitMask",
    "Generator",
    "MaskKey",
    "default_generator",
    "dropout",
    "dropout_backward",
    "philox4x32",
    "seed",
    "simd_info",
]
