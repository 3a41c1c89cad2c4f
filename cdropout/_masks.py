"""The two compact mask forms: BitMask (1 bit per element) and MaskKey (no bytes at all)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from . import _config, _core


def threshold(p: float) -> int:
    """T = round((1 - p) * 2**32) in float64: P(keep) = T / 2**32 exactly (format v1)."""
    return math.floor((1.0 - p) * 4294967296.0 + 0.5)


def packed_size(n: int) -> int:
    return (n + 7) // 8


def generate_bits(seed: int, stream: int, offset: int, p: float, shape: Tuple[int, ...], nthreads: int = 0) -> np.ndarray:
    """The packed keep bits of a mask (element i = bit i, LSB first), straight from the key."""
    n = math.prod(shape)
    bits = np.zeros(packed_size(n), np.uint8)  # padding bits of the last byte stay 0
    _core.gen_bits(seed, stream, threshold(p), offset, bits, n, nthreads, _config.min_per_thread, _config.isa)
    return bits


def unpack(bits: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    return np.unpackbits(bits, count=n, bitorder="little").view(np.bool_).reshape(shape)


@dataclass(frozen=True, eq=False)
class BitMask:
    """A dropout mask packed 1 bit per element.

    Attributes
    ----------
    data : numpy.ndarray
        uint8, ``np.packbits(keep.ravel(), bitorder='little')`` of the boolean keep mask.
    shape : tuple of int
        The mask's shape (the array's shape, or the noise shape).
    p : float
        The drop probability the mask was drawn with.
    scale : bool
        Whether kept elements are scaled by 1/(1-p).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> y, m = cdropout.dropout(np.ones((3, 5), np.float32), 0.5, seed=1, return_mask="bits")
    >>> m.data.nbytes
    2
    >>> np.array_equal(m.to_bool(), y != 0)
    True
    """

    data: np.ndarray
    shape: Tuple[int, ...]
    p: float
    scale: bool = True

    def to_bool(self) -> np.ndarray:
        """The mask as a bool array of `shape` (True = kept)."""
        return unpack(self.data, self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


@dataclass(frozen=True)
class MaskKey:
    """A dropout mask stored as the key that regenerates it: zero bytes per element.

    The mask of element ``i`` is that of global index ``offset + i`` of stream ``stream`` of
    ``seed`` (docs/stream-format.md); :func:`cdropout.dropout_backward` regenerates it.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float64)
    >>> y, key = cdropout.dropout(x, 0.5, seed=7, return_mask="key")
    >>> g = cdropout.dropout_backward(np.ones_like(x), key)
    >>> np.array_equal(g != 0, y != 0)
    True
    """

    seed: int
    stream: int
    offset: int
    p: float
    shape: Tuple[int, ...]
    scale: bool = True

    def __post_init__(self) -> None:
        # A key is also built by users (e.g. unpickled or stored): check it once, here, so the
        # core never sees a negative number, a p outside [0, 1] or indices past 2**64.
        from ._seeding import U64, check_u64

        for name in ("seed", "stream", "offset"):
            object.__setattr__(self, name, check_u64(getattr(self, name), name))
        if isinstance(self.p, (bool, np.bool_)) or not isinstance(self.p, numbers.Real):
            raise TypeError(f"p must be a real number, not {type(self.p).__name__}")
        if not 0.0 <= float(self.p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        object.__setattr__(self, "p", float(self.p))
        shape = tuple(check_u64(d, "shape") for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.offset + math.prod(shape) > U64:
            raise ValueError(f"offset + mask size must be at most 2**64, got {self.offset} + {math.prod(shape)}")

    def to_bits(self) -> BitMask:
        """The same mask, packed 1 bit per element."""
        return BitMask(generate_bits(self.seed, self.stream, self.offset, self.p, self.shape), self.shape, self.p, self.scale)

    def to_bool(self) -> np.ndarray:
        """The mask as a bool array of `shape` (True = kept)."""
        return unpack(generate_bits(self.seed, self.stream, self.offset, self.p, self.shape), self.shape)
