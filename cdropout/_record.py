"""The mask record: what a forward returns and every backward takes.

A record says which operation made the mask (its kind), under which stream-format version (1 or
2, docs/stream-format.md: the backward regenerates a key's mask with its own version), with
which p, whether kept elements were rescaled, over which shape (the mask or noise shape) and at
which global offset, and holds either the key that regenerates the mask (:class:`MaskKey`) or
the packed keep bits (:class:`BitMask`). A record built by a user (or unpickled) is validated
once, by its constructor; the library builds its records with ``_make``, which does not check
again. Records are immutable.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from . import _config, _core
from ._checks import Shape, check_p, check_shape, check_span, check_u64
from ._formats import FORMAT_VERSION, check_format

#: Mask kinds, and the backward that takes each.
KINDS = {
    "bernoulli": "dropout_backward",        # dropout, dropout1d/2d/3d, variational_dropout, drop_path
    "alpha": "alpha_dropout_backward",      # alpha_dropout, feature_alpha_dropout
    "gaussian": "gaussian_dropout_backward",  # gaussian_dropout
}

Index = Tuple[Shape, Shape]
_setattr = object.__setattr__  # records are immutable: their own fields are set through this


def threshold(p: float) -> int:
    """T = round((1 - p) * 2**32) in float64: P(keep) = T / 2**32 exactly (every format)."""
    return math.floor((1.0 - p) * 4294967296.0 + 0.5)


def packed_size(n: int) -> int:
    return (n + 7) // 8


def gen_bits(seed: int, stream: int, T: int, offset: int, n: int, nthreads: int = 0, fmt: int = 1) -> np.ndarray:
    """The packed keep bits of format `fmt` of mask indices offset .. offset+n-1 (bit i = index offset + i)."""
    bits = np.empty(packed_size(n), np.uint8)
    _core.gen_bits(seed, stream, T, offset, bits, n, nthreads, _config.min_per_thread, _config.isa, fmt=fmt)
    return bits


def unpack(bits: np.ndarray, shape: Shape) -> np.ndarray:
    return np.unpackbits(bits, count=math.prod(shape), bitorder="little").view(np.bool_).reshape(shape)


def _check_kind(kind: Any) -> str:
    if type(kind) is not str or kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    return kind


def _check_version(version: Any, kind: str) -> int:
    """A record's stream-format version: a format this release knows (1 or 2); 1 for 'gaussian'.
    None: the default, FORMAT_VERSION (1 for 'gaussian')."""
    if version is None:
        return 1 if kind == "gaussian" else FORMAT_VERSION
    version = check_format(version, "version")
    if kind == "gaussian" and version != 1:
        raise ValueError(f"version must be 1 for a 'gaussian' mask (Gaussian noise has one rule, "
                         f"the same in every format), got {version}")
    return version


def _check_scale(scale: Any) -> bool:
    if not isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"scale must be a bool, not {type(scale).__name__}")
    return bool(scale)


class _Record:
    """Fields and behaviour both storage forms share."""

    __slots__ = ()
    kind: str
    version: int
    p: float
    scale: bool
    shape: Shape
    offset: int

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def check_kind(self, kind: str) -> None:
        """Raise ValueError unless this record is of `kind` (naming both kinds)."""
        if self.kind != kind:
            raise ValueError(f"{KINDS[kind]} needs a {kind!r} mask, got a {self.kind!r} mask: "
                             f"pass it to {KINDS[self.kind]}")


class MaskKey(_Record):
    """A mask stored as the key that regenerates it: no bytes per element.

    Element ``i`` (C order) of the mask of shape `shape` is the keep decision of stream format
    `version` for global index ``offset + i`` of stream `stream` of `seed` with drop probability
    `p` (docs/stream-format.md); the backward regenerates it with that format.

    Parameters
    ----------
    seed, stream, offset : int
        In [0, 2**64); ``offset + prod(shape) <= 2**64``.
    p : float
        Drop probability in [0, 1] (in [0, 1) for kind 'gaussian').
    shape : sequence of int
        The mask's shape: the array's, or its noise shape (entries 1 broadcast).
    scale : bool
        Whether kept elements were scaled by 1/(1-p).
    kind : {'bernoulli', 'alpha', 'gaussian'}
        The operation that made the mask: 'bernoulli' for :func:`cdropout.dropout` and the
        structured forms, 'alpha' for alpha dropout, 'gaussian' for Gaussian dropout. Each
        backward accepts only its own kind.
    version : int
        The stream-format version, 1 or 2 (None: ``cdropout.FORMAT_VERSION``); a 'gaussian'
        key is always version 1.
    index : (global_shape, block_origin), optional
        Set when the record was made for a block of a larger array (``dropout(..., index=)``):
        `shape` is then the whole array's mask shape and the backward applies the block's part.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float64)
    >>> y, key = cdropout.dropout(x, 0.5, seed=7, return_mask="key", format=2)
    >>> key
    cdropout.MaskKey(seed=7, stream=0, offset=0, p=0.5, shape=(8,), scale=True, kind='bernoulli', version=2)
    >>> g = cdropout.dropout_backward(np.ones_like(x), key)    # format 2's mask again
    >>> np.array_equal(g != 0, y != 0)
    True
    """

    __slots__ = ("seed", "stream", "offset", "p", "shape", "scale", "kind", "version", "index")
    seed: int
    stream: int
    index: Optional[Index]

    def __init__(self, seed: Any, stream: Any, offset: Any, p: Any, shape: Any, scale: Any = True, *,
                 kind: str = "bernoulli", version: Optional[int] = None, index: Any = None) -> None:
        kind = _check_kind(kind)
        p = check_p(p)
        if kind == "gaussian" and p >= 1.0:
            raise ValueError("a 'gaussian' mask needs p < 1")
        shape = check_shape(shape)
        if index is not None:
            index = _check_record_index(index, shape)
        self._set(seed=check_u64(seed, "seed"), stream=check_u64(stream, "stream"),
                  offset=check_span(offset, math.prod(shape)), p=p, shape=shape, scale=_check_scale(scale),
                  kind=kind, version=_check_version(version, kind), index=index)

    @classmethod
    def _make(cls, seed: int, stream: int, offset: int, p: float, shape: Shape, scale: bool, kind: str,
              index: Optional[Index], version: int) -> "MaskKey":
        """A key from values the library has already checked (no validation)."""
        k = object.__new__(cls)
        _setattr(k, "seed", seed)
        _setattr(k, "stream", stream)
        _setattr(k, "offset", offset)
        _setattr(k, "p", p)
        _setattr(k, "shape", shape)
        _setattr(k, "scale", scale)
        _setattr(k, "kind", kind)
        _setattr(k, "version", version)
        _setattr(k, "index", index)
        return k

    def _fields(self) -> tuple:
        return (self.seed, self.stream, self.offset, self.p, self.shape, self.scale, self.kind,
                self.version, self.index)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> Any:
        # Unpickling goes through the constructor: a stored record is checked like a new one.
        return (_key_from_fields, self._fields())

    def __repr__(self) -> str:
        extra = "" if self.index is None else f", index={self.index}"
        return (f"cdropout.MaskKey(seed={self.seed}, stream={self.stream}, offset={self.offset}, p={self.p}, "
                f"shape={self.shape}, scale={self.scale}, kind={self.kind!r}, version={self.version}{extra})")

    @property
    def nbytes(self) -> int:
        """0: a key stores no mask bytes."""
        return 0

    def to_bits(self) -> "BitMask":
        """The same mask (of `shape`, the whole array's if `index` is set), packed 1 bit per element."""
        if self.kind == "gaussian":
            raise ValueError("a 'gaussian' mask is noise, not keep bits")
        bits = gen_bits(self.seed, self.stream, threshold(self.p), self.offset, math.prod(self.shape),
                        fmt=self.version)
        return BitMask._make(bits, self.shape, self.p, self.scale, self.kind, self.offset, self.version)

    def to_bool(self) -> np.ndarray:
        """The mask as a bool array of `shape` (True = kept)."""
        return self.to_bits().to_bool()


def _key_from_fields(seed: int, stream: int, offset: int, p: float, shape: Shape, scale: bool, kind: str,
                     version: int, index: Optional[Index]) -> MaskKey:
    return MaskKey(seed, stream, offset, p, shape, scale, kind=kind, version=version, index=index)


def _check_record_index(index: Any, shape: Shape) -> Index:
    try:
        g, o = index
    except (TypeError, ValueError):
        raise TypeError("index must be a pair (global_shape, block_origin)") from None
    g, o = check_shape(g, "index global_shape"), check_shape(o, "index block_origin")
    if len(g) != len(shape) or len(o) != len(shape):
        raise ValueError(f"index {(g, o)} needs one entry per dimension of the mask shape {shape}")
    if any(m != 1 and m != d for m, d in zip(shape, g)) or any(a > d for a, d in zip(o, g)):
        raise ValueError(f"index {(g, o)} does not fit the mask shape {shape}")
    return g, o


class BitMask(_Record):
    """A mask packed 1 bit per element.

    Parameters
    ----------
    data : numpy.ndarray of uint8
        ``np.packbits(keep.ravel(), bitorder='little')`` of the bool keep mask: exactly
        ``(prod(shape) + 7) // 8`` bytes. The record keeps a read-only copy.
    shape : sequence of int
        The mask's shape (the array's, or its noise shape).
    p : float
        The drop probability the mask was drawn with, in [0, 1].
    scale : bool
        Whether kept elements are scaled by 1/(1-p).
    kind : {'bernoulli', 'alpha'}
        The operation that made the mask (see :class:`MaskKey`).
    version : int
        The stream-format version the mask was drawn with, 1 or 2 (None:
        ``cdropout.FORMAT_VERSION``); informational, like `offset`: the bits are the mask.
    offset : int
        Global index of the mask's element 0 (informational: the bits are the mask).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> y, m = cdropout.dropout(np.ones((3, 5), np.float32), 0.5, seed=1, return_mask="bits")
    >>> m.data.nbytes
    2
    >>> np.array_equal(m.to_bool(), y != 0)
    True
    """

    __slots__ = ("data", "shape", "p", "scale", "kind", "version", "offset")
    data: np.ndarray

    def __init__(self, data: Any, shape: Any, p: Any, scale: Any = True, *, kind: str = "bernoulli",
                 version: Optional[int] = None, offset: Any = 0) -> None:
        kind = _check_kind(kind)
        if kind == "gaussian":
            raise ValueError("a 'gaussian' mask is noise, not keep bits: it has no BitMask form")
        shape = check_shape(shape)
        arr = np.asarray(data) if not isinstance(data, np.ndarray) else data
        if arr.dtype != np.uint8:
            raise TypeError(f"data must be a uint8 array (np.packbits of the mask), not {arr.dtype}")
        n = math.prod(shape)
        if arr.ndim != 1 or arr.size != packed_size(n):
            raise ValueError(f"data must be {packed_size(n)} bytes (1-d) for mask shape {shape}, "
                             f"got shape {arr.shape}")
        arr = arr.copy()
        arr.flags.writeable = False
        self._set(data=arr, shape=shape, p=check_p(p), scale=_check_scale(scale), kind=kind,
                  version=_check_version(version, kind), offset=check_span(offset, n))

    @classmethod
    def _make(cls, data: np.ndarray, shape: Shape, p: float, scale: bool, kind: str, offset: int,
              version: int) -> "BitMask":
        """A bit mask from values the library has already checked (`data` is taken, made read-only)."""
        m = object.__new__(cls)
        data.flags.writeable = False
        _setattr(m, "data", data)
        _setattr(m, "shape", shape)
        _setattr(m, "p", p)
        _setattr(m, "scale", scale)
        _setattr(m, "kind", kind)
        _setattr(m, "version", version)
        _setattr(m, "offset", offset)
        return m

    def __reduce__(self) -> Any:
        return (_bits_from_fields, (np.array(self.data), self.shape, self.p, self.scale, self.kind,
                                    self.version, self.offset))

    def __repr__(self) -> str:
        return (f"cdropout.BitMask(<{self.data.size} bytes>, shape={self.shape}, p={self.p}, scale={self.scale}, "
                f"kind={self.kind!r}, version={self.version}, offset={self.offset})")

    @property
    def nbytes(self) -> int:
        """Bytes of the packed mask."""
        return int(self.data.nbytes)

    def to_bool(self) -> np.ndarray:
        """The mask as a bool array of `shape` (True = kept)."""
        return unpack(self.data, self.shape)


def _bits_from_fields(data: np.ndarray, shape: Shape, p: float, scale: bool, kind: str, version: int,
                      offset: int) -> BitMask:
    return BitMask(data, shape, p, scale, kind=kind, version=version, offset=offset)

