"""The one path from a mask record to the C core: ``y = keep ? x * s : +0``.

Every forward that selects (dropout and its structured forms) and every backward (dropout,
alpha dropout, the layer, the PyTorch front end) ends in :func:`apply`. A mask element is
addressed by its index ``m = mbase + sum_k idx[k] * mstrides[k]`` (see :func:`mask_map`): the
C-order index of the array (the plain mask), zero strides over broadcast axes (a noise shape), or
the C-order strides of a larger array for a block of it (``index=``). A key's keep bits are those
of its stream format (`fmt`, a record's `version`: 1 or 2). Arguments are checked by the callers;
nothing here validates user input again.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import numpy as np

from . import _config, _core
from ._bf16 import round_to_bfloat16
from ._checks import Shape
from ._record import BitMask, Index, MaskKey, gen_bits, packed_size, threshold

Record = Union[MaskKey, BitMask]
_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_CONSTANTS: dict = {}


def _scale(p: float, dtype: np.dtype, scale: bool) -> float:
    """s = 1/(1-p) rounded to the dtype (an exact double), or 1 without rescaling."""
    if not scale or p >= 1.0:
        return 1.0
    s = 1.0 / (1.0 - p)
    if dtype == np.float64:
        return s
    if dtype == np.float16 and s >= 65520.0:  # rounds to inf in float16
        return math.inf
    return float(dtype.type(s))


def constants(p: float, code: int, scale: bool) -> Tuple[float, int]:
    """(s, T) of a dropout call: the scale in the dtype of `code` and the keep threshold (memoised)."""
    key = (p, code, scale)
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) >= 1024:  # bounded: a schedule of many p values must not grow it
            _CONSTANTS.clear()
        if code == 3:  # bfloat16
            s = in_dtype(1.0 / (1.0 - p), 3) if scale and p < 1.0 else 1.0
        else:
            s = _scale(p, _DTYPES[code], scale)
        c = _CONSTANTS[key] = (s, threshold(p))
    return c


def in_dtype(value: float, code: int) -> float:
    """`value` rounded to the dtype of `code` (float16 overflow gives inf), as an exact double."""
    if code == 3:  # bfloat16 (ml_dtypes arrays, torch.bfloat16 tensors)
        return round_to_bfloat16(value)
    with np.errstate(all="ignore"):
        return float(_DTYPES[code].type(value))


def target(x: np.ndarray, out: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(source, destination) of an elementwise pass that is safe whatever `out` overlaps."""
    if out is None:
        return x, np.empty(x.shape, x.dtype)
    if out is not x and np.may_share_memory(x, out):
        xi, oi = x.__array_interface__, out.__array_interface__
        if xi["data"][0] != oi["data"][0] or x.strides != out.strides:
            x = x.copy()  # partial overlap: read from a copy
    return x, out


def mask_map(shape: Shape, mshape: Shape, index: Optional[Index]) -> Tuple[int, Optional[Tuple[int, ...]]]:
    """(mbase, mstrides) of an array of `shape` whose mask has shape `mshape` (excluding the offset).

    Without `index`, `mshape` broadcasts to `shape`; with index=(G, origin), `mshape` broadcasts to
    G and the array is the block of G at origin. Mask strides are the C-order strides of
    `mshape` (0 over axes where it is 1). mstrides None: the plain C-order mask of `shape`.
    """
    if index is None and mshape == shape:
        return 0, None
    origin = index[1] if index is not None else (0,) * len(shape)
    strides = [0] * len(mshape)
    step = 1
    mbase = 0
    for k in range(len(mshape) - 1, -1, -1):
        if mshape[k] != 1:
            strides[k] = step
            mbase += origin[k] * step
        step *= mshape[k]
    return mbase, tuple(strides)


def block_mask_shape(shape: Shape, mshape: Shape) -> Shape:
    """The part of a (global) mask shape that a block of `shape` uses: 1 where the mask broadcasts."""
    return tuple(b if m != 1 else 1 for b, m in zip(shape, mshape))


def apply(x: np.ndarray, y: np.ndarray, rec: Record, s: float, mshape: Shape, index: Optional[Index],
          nthreads: int) -> None:
    """y = keep ? x * s : +0 with the mask of `rec` (of checked shape `mshape`) on x's elements."""
    mpt, isa = _config.min_per_thread, _config.isa
    if isinstance(rec, MaskKey):
        T, fmt = threshold(rec.p), rec.version
        if index is None and mshape == x.shape:
            _core.apply_key(x, y, s, rec.seed, rec.stream, T, rec.offset, None, None, nthreads, mpt, isa, fmt=fmt)
        elif index is None:  # noise shape: the small mask's bits, broadcast with zero strides
            bits = gen_bits(rec.seed, rec.stream, T, rec.offset, math.prod(mshape), nthreads, fmt)
            _core.apply_bits(x, y, s, bits, *mask_map(x.shape, mshape, None), nthreads, mpt, isa)
        else:
            mbase, mstrides = mask_map(x.shape, mshape, index)
            _core.apply_key(x, y, s, rec.seed, rec.stream, T, rec.offset + mbase, mstrides, None,
                            nthreads, mpt, isa, fmt=fmt)
    else:
        mbase, mstrides = mask_map(x.shape, mshape, index)
        _core.apply_bits(x, y, s, rec.data, mbase, mstrides, nthreads, mpt, isa)


def forward_bits(x: np.ndarray, y: np.ndarray, s: float, seed: int, stream: int, T: int, offset: int,
                 mshape: Shape, index: Optional[Index], want_bits: bool, nthreads: int,
                 fmt: int) -> Optional[np.ndarray]:
    """A forward from a key of format `fmt`; returns the packed mask of the array (or block) when
    `want_bits`.

    The returned bits cover `mshape` without index, else the block's part of the mask
    (:func:`block_mask_shape`).
    """
    mpt, isa = _config.min_per_thread, _config.isa
    if index is None and mshape == x.shape:
        bits = np.empty(packed_size(x.size), np.uint8) if want_bits else None
        _core.apply_key(x, y, s, seed, stream, T, offset, None, bits, nthreads, mpt, isa, fmt=fmt)
        return bits
    if index is None:
        bits = gen_bits(seed, stream, T, offset, math.prod(mshape), nthreads, fmt)
        _core.apply_bits(x, y, s, bits, *mask_map(x.shape, mshape, None), nthreads, mpt, isa)
        return bits if want_bits else None
    mbase, mstrides = mask_map(x.shape, mshape, index)
    _core.apply_key(x, y, s, seed, stream, T, offset + mbase, mstrides, None, nthreads, mpt, isa, fmt=fmt)
    if not want_bits:
        return None
    return block_bits(seed, stream, T, offset + mbase, mstrides, block_mask_shape(x.shape, mshape), nthreads,
                      fmt)


def block_bits(seed: int, stream: int, T: int, mbase: int, mstrides: Optional[Tuple[int, ...]],
               bshape: Shape, nthreads: int, fmt: int) -> np.ndarray:
    """Packed keep bits of format `fmt` (C order of `bshape`) of the mask indices mbase + idx . mstrides."""
    probe = np.ones(bshape, np.float32)
    _core.apply_key(probe, probe, 1.0, seed, stream, T, mbase, mstrides, None, nthreads,
                    _config.min_per_thread, _config.isa, fmt=fmt)
    return np.packbits(probe.ravel() != 0, bitorder="little")
