"""The tasks of cdropout.dask: one call of the NumPy API per block (run on the workers).

Every function here takes a block and the block's place (dask's ``block_info``) and calls
:func:`cdropout.dropout` or :func:`cdropout.dropout_backward` on it with
``index=(global_shape, block_origin)``, so a block's result depends only on its inputs and its
place. This module imports no dask: a worker unpickles the tasks with NumPy and cdropout alone.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, cast

import numpy as np

import cdropout as _cd
from cdropout import MaskKey

Shape = Tuple[int, ...]
Chunks = Tuple[Tuple[int, ...], ...]


def mask_chunks(chunks: Chunks, shape: Shape, mshape: Shape) -> Chunks:
    """The chunks of a mask of shape `mshape` for an array of `shape` and `chunks`."""
    return tuple(c if m == s else (1,) for c, s, m in zip(chunks, shape, mshape))


def packed_chunks(chunks: Chunks) -> Chunks:
    """Chunks of the row-packed bits of a mask with `chunks` (last axis in bytes)."""
    if not chunks:
        return ()
    return chunks[:-1] + (tuple((c + 7) // 8 for c in chunks[-1]),)


def block_origin(location: Sequence[Tuple[int, int]]) -> Shape:
    """The origin of a block from its ``block_info`` "array-location" [(start, stop), ...]."""
    return tuple(int(start) for start, _ in location)


def forward_block(x: np.ndarray, key: MaskKey, nthreads: Optional[int],
                  block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    """cdropout.dropout of one block with the whole array's key."""
    assert block_info is not None
    gshape = tuple(block_info[0]["shape"])
    out = None
    if any(s == 0 and d > 1 for s, d in zip(x.strides, x.shape)):
        # A broadcast block (da.ones, da.full, broadcast_to): its result must be a new array
        # anyway, so copy first and drop out in place, reading contiguous memory.
        x = out = np.array(x, order="C")
    y = _cd.dropout(x, key.p, seed=key.seed, stream=key.stream, offset=key.offset,
                    noise_shape=None if key.shape == gshape else key.shape, scale=key.scale,
                    out=out, num_threads=nthreads, index=(gshape, block_origin(block_info[0]["array-location"])),
                    format=key.version)
    return cast(np.ndarray, y)


def eval_block(x: np.ndarray, p: float) -> np.ndarray:
    """Classic dropout (scale=False) at inference: x * (1 - p), as the NumPy API computes it."""
    return cast(np.ndarray, _cd.dropout(x, p, seed=0, training=False, scale=False))


def keep_block(key: MaskKey, origin: Shape, shape: Shape, nthreads: Optional[int]) -> np.ndarray:
    """The keep flags of the block of the mask of `key` at `origin` with `shape`."""
    ones = np.ones(shape, np.float16)
    y = _cd.dropout(ones, key.p, seed=key.seed, stream=key.stream, offset=key.offset, scale=False,
                    out=ones, num_threads=nthreads, index=(key.shape, origin), format=key.version)
    return np.not_equal(cast(np.ndarray, y), 0)  # kept elements are exactly 1, dropped ones +0


def block_place(chunks: Chunks, location: Sequence[int]) -> Tuple[Shape, Shape]:
    """(origin, shape) of the block at `location` of an array with `chunks`."""
    origin = tuple(sum(c[:i]) for c, i in zip(chunks, location))
    shape = tuple(c[i] for c, i in zip(chunks, location))
    return origin, shape


def mask_block(key: MaskKey, mchunks: Chunks, form: str, nthreads: Optional[int],
               block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    """One chunk of a bool or row-packed bits mask, generated from the key alone."""
    assert block_info is not None
    origin, shape = block_place(mchunks, block_info[None]["chunk-location"])
    keep = keep_block(key, origin, shape, nthreads)
    return keep if form == "bool" else pack_rows(keep)


def pack_rows(keep: np.ndarray) -> np.ndarray:
    """np.packbits along the last axis (LSB first); a 0-d mask is one byte, 0 or 1."""
    if keep.ndim == 0:
        return np.asarray(keep, np.uint8)
    return np.packbits(keep, axis=-1, bitorder="little")


def unpack_rows(data: np.ndarray, last: int) -> np.ndarray:
    """Inverse of :func:`pack_rows` for a mask block whose last extent is `last`."""
    if data.ndim == 0:
        return np.asarray(data & 1, np.bool_)
    return np.unpackbits(data, axis=-1, count=last, bitorder="little").view(np.bool_)


def bitmask_of(data: np.ndarray, last: int, p: float, scale: bool, version: int) -> _cd.BitMask:
    """The cdropout.BitMask of one mask block stored row-packed in `data`."""
    keep = unpack_rows(data, last)
    if keep.ndim and last % 8 == 0:
        flat = np.ascontiguousarray(data).reshape(-1)  # whole bytes per row: already C-order packed
    else:
        flat = np.packbits(keep.reshape(-1), bitorder="little")
    return _cd.BitMask(flat, keep.shape, p, scale, version=version)


def backward_key_block(g: np.ndarray, key: MaskKey, nthreads: Optional[int],
                       block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    """cdropout.dropout_backward of one block of the gradient with the whole array's key."""
    assert block_info is not None
    index = (tuple(block_info[0]["shape"]), block_origin(block_info[0]["array-location"]))
    return _cd.dropout_backward(g, key, index=index, num_threads=nthreads)


def backward_bits_block(g: np.ndarray, data: np.ndarray, last_chunks: Tuple[int, ...], p: float,
                        scale: bool, nthreads: Optional[int], version: int,
                        block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    """cdropout.dropout_backward of one block with the BitMask of the same chunk of the mask."""
    assert block_info is not None
    last = last_chunks[block_info[1]["chunk-location"][-1]] if data.ndim else 1
    return _cd.dropout_backward(g, bitmask_of(data, last, p, scale, version), num_threads=nthreads)


def backward_bool_block(g: np.ndarray, keep: np.ndarray, p: float, scale: Optional[bool],
                        nthreads: Optional[int]) -> np.ndarray:
    """cdropout.dropout_backward of one block with its chunk of a bool mask."""
    return _cd.dropout_backward(g, keep, p=p, scale=scale, num_threads=nthreads)


def unpack_block(data: np.ndarray, last_chunks: Tuple[int, ...],
                 block_info: Optional[Dict[Any, Any]] = None) -> np.ndarray:
    """One chunk of BlockBits.to_bool()."""
    assert block_info is not None
    last = last_chunks[block_info[0]["chunk-location"][-1]] if data.ndim else 1
    return unpack_rows(data, last)
