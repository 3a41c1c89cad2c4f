"""cdropout: fast, exact, reproducible dropout for NumPy on the CPU.

The mask of element ``e`` depends only on (seed, stream, e, p) through a counter-based generator,
Philox4x32-10 in stream format 1 and ARS-7 (AES rounds) in format 2 (docs/stream-format.md), so
results are identical for any thread count, SIMD path or machine, and the backward can regenerate
the mask from a key instead of storing it. ``format=None`` means ``FORMAT_VERSION``.
"""
from ._version import __version__

try:
    from . import _core  # the compiled extension; everything below needs it
except ImportError as _exc:  # pragma: no cover - exercised by tests/test_import_message.py
    from ._source_tree import not_built_message

    raise ImportError(not_built_message(__path__[0], _exc)) from _exc
from ._api import dropout, dropout_backward
from ._config import simd_info
from ._formats import FORMAT_VERSION, ars4x32, philox4x32
from ._record import BitMask, MaskKey
from ._seeding import Generator, default_generator, seed
from .layers import Dropout
from .variants import (
    alpha_dropout,
    alpha_dropout_backward,
    drop_path,
    dropout1d,
    dropout2d,
    dropout3d,
    feature_alpha_dropout,
    gaussian_dropout,
    gaussian_dropout_backward,
    gaussian_noise,
    variational_dropout,
)

__all__ = [
    "FORMAT_VERSION",
    "BitMask",
    "Generator",
    "MaskKey",
    "ars4x32",
    "default_generator",
    "dropout",
    "dropout_backward",
    "philox4x32",
    "seed",
    "simd_info",
    "Dropout",
    "alpha_dropout",
    "alpha_dropout_backward",
    "drop_path",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "variational_dropout",
]
