"""The stream formats (docs/stream-format.md): their version numbers, the default, the one check of
a ``format=`` argument, and the raw counter functions of each format (a leaf module: it imports
no other cdropout module but the compiled core and the argument checks).

- format 1: Philox4x32-10 (:func:`philox4x32`), key ``(seed lo, seed hi)``;
- format 2: ARS-7, Random123's AES-round generator (:func:`ars4x32`), key ``(seed lo, seed hi, 0, 0)``.

Both share every other rule (blocks of 8 elements, 16-bit halves, the exact keep rule), and both
are frozen: a format's masks never change.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence, Tuple

import numpy as np

from . import _core
from ._checks import check_u64

__all__ = ["FORMAT_VERSION", "FORMATS", "check_format", "philox4x32", "ars4x32"]

#: The stream format of every call that does not choose one (``format=None``).
FORMAT_VERSION = 2

#: The formats this release knows: version -> the counter function that defines it.
FORMATS = {1: "Philox4x32-10", 2: "ARS-7"}
_KNOWN = frozenset(FORMATS)


def check_format(value: Any, name: str = "format") -> int:
    """A stream-format version as an int: TypeError unless an integer (bools, floats and strings
    are refused), ValueError unless a format this release knows; both name `name`."""
    if type(value) is int and value in _KNOWN:  # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int (one of {sorted(FORMATS)}), not {type(value).__name__}")
    value = int(value)
    if value not in _KNOWN:
        known = ", ".join(f"{v} ({FORMATS[v]})" for v in sorted(FORMATS))
        raise ValueError(f"{name}={value} is not a stream format this release knows; it knows {known}")
    return value


# -- the raw counter functions ----------------------------------------------------------------

def _counter_array(counter: Any) -> np.ndarray:
    """`counter` as a C-contiguous uint32 array of shape (..., 4), checked."""
    c = np.asarray(counter)
    if c.dtype.kind not in "ui":
        raise TypeError(f"counter must hold integers, not {c.dtype}")
    if c.ndim == 0 or c.shape[-1] != 4:
        raise ValueError(f"counter must have shape (..., 4), got {c.shape}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= 1 << 32):
        raise ValueError("counter words must be in [0, 2**32)")
    return np.ascontiguousarray(c, dtype=np.uint32)


def _key_words(key: Any, n: int) -> Tuple[int, ...]:
    """`key` as `n` ints in [0, 2**32), checked."""
    if key is None or isinstance(key, (str, bytes)) or not hasattr(key, "__iter__"):
        raise TypeError(f"key must be a sequence of {n} ints, not {type(key).__name__}")
    k = list(key)
    if len(k) != n:
        raise ValueError(f"key must have {n} words, got {len(k)}")
    words = tuple(check_u64(w, "key") for w in k)
    if any(w >= 1 << 32 for w in words):
        raise ValueError("key words must be in [0, 2**32)")
    return words


def _check_rounds(rounds: Any, lo: int, hi: int) -> int:
    if isinstance(rounds, (bool, np.bool_)) or not isinstance(rounds, numbers.Integral):
        raise TypeError(f"rounds must be an int in [{lo}, {hi}], not {type(rounds).__name__}")
    r = int(rounds)
    if not lo <= r <= hi:
        raise ValueError(f"rounds must be an int in [{lo}, {hi}], got {r}")
    return r


def philox4x32(counter: Any, key: Sequence[int], rounds: int = 10) -> np.ndarray:
    """The raw Philox4x32-`rounds` bijection, as in Random123 (format 1's counter function).

    Parameters
    ----------
    counter : array_like of int, shape (..., 4)
        Counter words (each in [0, 2**32)), word 0 first.
    key : sequence of two ints
        Key words (each in [0, 2**32)), word 0 first.
    rounds : int
        Number of rounds, 0 to 16 (10 is Philox4x32-10, the one format 1 uses).

    Returns
    -------
    numpy.ndarray
        uint32 array of counter's shape.

    Examples
    --------
    >>> import cdropout
    >>> [hex(w) for w in cdropout.philox4x32([0, 0, 0, 0], [0, 0])]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c = _counter_array(counter)
    k0, k1 = _key_words(key, 2)
    r = _check_rounds(rounds, 0, 16)
    result = np.empty_like(c)
    _core.philox(c, result, k0, k1, r)
    return result


def ars4x32(counter: Any, key: Sequence[int], rounds: int = 7) -> np.ndarray:
    """The raw ARS-`rounds` bijection (AES rounds), as Random123's ``ars4x32_R`` (format 2's
    counter function).

    The counter and the key are each one 128-bit value, word 0 in the low 32 bits; the result is
    ``AESENCLAST(AESENC(...AESENC(C ^ K, K + W)..., K + (R-1) W), K + R W)`` with R-1 AESENC
    rounds, the Weyl increment ``W = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)`` added to the
    key's low and high 64 bits separately (docs/stream-format.md, format v2).

    Parameters
    ----------
    counter : array_like of int, shape (..., 4)
        Counter words (each in [0, 2**32)), word 0 first.
    key : sequence of four ints
        Key words (each in [0, 2**32)), word 0 first. Format 2 uses
        ``(seed & 0xffffffff, seed >> 32, 0, 0)``.
    rounds : int
        Number of AES rounds, 1 to 10 (7 is ARS-7, the one format 2 uses).

    Returns
    -------
    numpy.ndarray
        uint32 array of counter's shape.

    Examples
    --------
    >>> import cdropout
    >>> [hex(w) for w in cdropout.ars4x32([0, 0, 0, 0], [0, 0, 0, 0])]
    ['0xdacf61ff', '0xc45798f3', '0x113c7eeb', '0x101e27f3']
    >>> [hex(w) for w in cdropout.ars4x32([0, 0, 0, 0], [0, 0, 0, 0], rounds=10)]  # Random123's KAT
    ['0x8d73ee19', '0x506401ef', '0x13c2dbe4', '0xcbe9c0d']
    """
    c = _counter_array(counter)
    k0, k1, k2, k3 = _key_words(key, 4)
    r = _check_rounds(rounds, 1, 10)
    result = np.empty_like(c)
    _core.ars(c.reshape(-1, 4), result.reshape(-1, 4), k0, k1, k2, k3, r)
    return result
