"""Dropout on Dask arrays: bit for bit the in-memory result, for any chunking and any schedule.

The mask of every element depends only on (seed, stream, global index, p) (docs/stream-format.md),
so a chunk needs nothing but its own position in the whole array: each chunk is one task that calls
the NumPy function on its block with ``index=(global_shape, block_origin)`` (docs/dask.md). The
computed result equals ``cdropout.dropout(a.compute(), p, seed=..., stream=...)`` for every
chunking, number of workers, order of tasks and retry.

Needs ``cdropout[dask]`` (dask[array] and distributed); ``import cdropout`` never imports dask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Sequence, Tuple, Union, cast, overload

import numpy as np

try:
    import dask.array as da
    from dask.base import tokenize
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("cdropout.dask needs dask: pip install 'cdropout[dask]'") from exc

import cdropout as _cd
from cdropout import MaskKey
from cdropout import _dask_tasks as _t
from cdropout._dask_tasks import Chunks, Shape
from cdropout._dask_tasks import mask_chunks as _mask_chunks, packed_chunks as _packed_chunks
from cdropout._checks import check_axes
from cdropout._structured import _channel_noise_shape

__all__ = ["BlockBits", "dropout", "dropout_backward", "dropout1d", "dropout2d", "dropout3d",
           "variational_dropout"]

Mask = Union[MaskKey, "BlockBits", da.Array]
SeedLike = Any  # what cdropout.dropout accepts: int, SeedSequence, cdropout.Generator or None
_FORMS = (None, "bool", "bits", "key")


# -- client side: checks, keys and graph names --------------------------------------------------


def _as_dask(a: Any, name: str) -> da.Array:
    """`a` as a dask array with known chunk sizes and a dtype cdropout supports."""
    if not isinstance(a, da.Array):
        a = da.asarray(a)
    if any(c != c for cs in a.chunks for c in cs):  # NaN: unknown chunk sizes
        raise ValueError(f"{name} has unknown chunk sizes: call {name}.compute_chunk_sizes() first")
    try:
        _cd.dropout(np.zeros(0, a.dtype), 0.0, seed=0)
    except TypeError:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, not {a.dtype}") from None
    return a


def _empty_block(a: da.Array) -> np.ndarray:
    """A block of `a` with no elements (one for a 0-d array): probes the NumPy API's checks."""
    return np.zeros((0,) * a.ndim if a.ndim else (), a.dtype)


def _whole_key(key: MaskKey) -> MaskKey:
    """The key of the whole array from a key the NumPy API made for one of its blocks."""
    return MaskKey(key.seed, key.stream, key.offset, key.p, key.shape, key.scale, version=key.version)


def _key_token(key: MaskKey) -> tuple:
    return (key.seed, key.stream, key.offset, key.p, key.shape, key.scale, key.version)


# -- the bits form ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BlockBits:
    """A dropout mask of a dask array, packed 1 bit per element, chunk by chunk.

    `data` is a uint8 dask array with the mask's chunk grid: its chunk ``(i, j, ...)`` is
    ``np.packbits(keep, axis=-1, bitorder='little')`` of the same chunk of the bool mask, so
    each row of a chunk takes ``ceil(n / 8)`` bytes for ``n`` elements along the last axis
    (a 0-d mask is one byte, 0 or 1). When a chunk's last extent is a multiple of 8, the chunk's
    bytes, read in C order, are exactly the ``data`` of a :class:`cdropout.BitMask` of that chunk.

    Attributes
    ----------
    data : dask.array.Array
        The packed bits, uint8, chunks as described above.
    shape : tuple of int
        The mask's shape (the array's, or its noise shape).
    chunks : tuple of tuple of int
        The mask's chunks (the array's, with one chunk of 1 along broadcast axes).
    p : float
        The drop probability the mask was drawn with.
    scale : bool
        Whether kept elements are scaled by 1/(1-p).
    version : int
        The stream format the mask was drawn with (1 or 2), as :attr:`cdropout.BitMask.version`.

    Examples
    --------
    >>> import dask.array as da, cdropout.dask
    >>> a = da.ones((4, 10), chunks=(2, 8), dtype="float32")
    >>> y, bits = cdropout.dask.dropout(a, 0.5, seed=0, return_mask="bits")
    >>> bits.data.chunks                 # 8 elements -> 1 byte, 2 elements -> 1 byte
    ((2, 2), (1, 1))
    >>> bool((bits.to_bool() == (y != 0)).all().compute())
    True
    """

    data: da.Array
    shape: Shape
    chunks: Chunks
    p: float
    scale: bool = True
    version: int = _cd.FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.data, da.Array) or self.data.dtype != np.uint8:
            raise TypeError("data must be a uint8 dask array")
        shape = tuple(int(d) for d in self.shape)
        chunks = tuple(tuple(int(c) for c in cs) for cs in self.chunks)
        if tuple(sum(c) for c in chunks) != shape:
            raise ValueError(f"chunks {chunks} do not cover the shape {shape}")
        if self.data.chunks != _packed_chunks(chunks):
            raise ValueError(f"data's chunks {self.data.chunks} are not the packed chunks "
                             f"{_packed_chunks(chunks)} of the mask's chunks {chunks}")
        _cd.BitMask(np.zeros(1, np.uint8), (1,), self.p, self.scale, version=self.version)  # checks p, scale, version
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "version", int(self.version))
        object.__setattr__(self, "chunks", chunks)
        object.__setattr__(self, "p", float(self.p))
        object.__setattr__(self, "scale", bool(self.scale))

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update({"version": 1, **state})  # 0.1.x pickles have no version: format 1

    def __dask_tokenize__(self) -> tuple:
        return ("cdropout.dask.BlockBits", self.data.name, self.chunks, self.p, self.scale, self.version)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed bits."""
        return int(self.data.nbytes)

    def to_bool(self) -> da.Array:
        """The mask as a bool dask array (True = kept), with the mask's chunks."""
        name = "cdropout-unpack-" + tokenize(self)
        last = self.chunks[-1] if self.chunks else ()
        return da.map_blocks(_t.unpack_block, self.data, last_chunks=last, dtype=np.bool_, chunks=self.chunks,
                             name=name, meta=np.empty((0,) * len(self.shape), np.bool_))

    def persist(self, **kwargs: Any) -> "BlockBits":
        """The same mask with its bits computed and kept in (cluster) memory."""
        return BlockBits(self.data.persist(**kwargs), self.shape, self.chunks, self.p, self.scale, self.version)


def _mask_array(key: MaskKey, mchunks: Chunks, form: str, nthreads: Optional[int]) -> da.Array:
    """The bool (or row-packed uint8) mask of `key` as a dask array: one task per chunk."""
    dtype = np.dtype(np.bool_) if form == "bool" else np.dtype(np.uint8)
    chunks = mchunks if form == "bool" else _packed_chunks(mchunks)
    name = f"cdropout-mask-{form}-" + tokenize(_key_token(key), mchunks)
    return da.map_blocks(_t.mask_block, key=key, mchunks=mchunks, form=form, nthreads=nthreads, dtype=dtype,
                         chunks=chunks, name=name, meta=np.empty((0,) * len(mchunks), dtype))


def _mask_of(key: MaskKey, form: Optional[str], mchunks: Chunks, nthreads: Optional[int]) -> Any:
    if form == "key":
        return key
    if form == "bool":
        return _mask_array(key, mchunks, "bool", nthreads)
    return BlockBits(_mask_array(key, mchunks, "bits", nthreads), key.shape, mchunks, key.p, key.scale,
                     key.version)


# -- public functions ---------------------------------------------------------------------------


@overload
def dropout(a: Any, p: float = ..., *, seed: SeedLike, stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., return_mask: None = ..., noise_shape: Optional[Sequence[Any]] = ...,
            scale: bool = ..., num_threads: Optional[int] = ..., format: Optional[int] = ...) -> da.Array: ...


@overload
def dropout(a: Any, p: float = ..., *, seed: SeedLike, stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., return_mask: Literal["key", "bits", "bool"],
            noise_shape: Optional[Sequence[Any]] = ..., scale: bool = ...,
            num_threads: Optional[int] = ..., format: Optional[int] = ...) -> Tuple[da.Array, Any]: ...


def dropout(
    a: Any,
    p: float = 0.5,
    *,
    seed: SeedLike,
    stream: Optional[int] = None,
    offset: int = 0,
    training: bool = True,
    return_mask: Optional[str] = None,
    noise_shape: Optional[Sequence[Any]] = None,
    scale: bool = True,
    num_threads: Optional[int] = 1,
    format: Optional[int] = None,
) -> Union[da.Array, Tuple[da.Array, Any]]:
    """Inverted dropout of a dask array, equal bit for bit to :func:`cdropout.dropout` in memory.

    Parameters
    ----------
    a : dask.array.Array or array_like
        float16, float32 or float64, any shape and chunking (regular or not, along any axes);
        chunk sizes must be known. Other array_likes become a one-chunk dask array.
    p : float
        Drop probability in [0, 1].
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        As in :func:`cdropout.dropout`. A Generator (None: the module's default one) gives this
        call its next stream here, on the client, while the graph is built: the tasks carry the
        resolved (seed, stream), so no worker ever draws one.
    stream : int, optional
        Stream number in [0, 2**64); only with an int or SeedSequence seed.
    offset : int
        Global index of the array's first element (as in :func:`cdropout.dropout`).
    training : bool
        False returns `a` itself (``a * (1 - p)`` blockwise when ``scale=False``).
    return_mask : {None, 'key', 'bits', 'bool'}
        Also return the mask: a :class:`cdropout.MaskKey` of the whole array (no bytes; any
        chunk's mask is regenerated from it), a :class:`BlockBits` (1 bit per element, chunk by
        chunk) or a bool dask array. Bits and bool masks are computed from the key in tasks of
        their own (one per chunk) that do not depend on `a`.
    noise_shape : sequence of int, optional
        Draw the mask over this shape (broadcast to `a`'s, as in :func:`cdropout.dropout`).
    scale : bool
        False: classic dropout, kept elements are not rescaled.
    num_threads : int or None
        OpenMP threads per task. The default, 1, lets Dask's workers and threads provide the
        parallelism without oversubscribing the cores; None uses cdropout's default count.
    format : {1, 2} or None
        The stream format, as in :func:`cdropout.dropout` (None: a Generator's format, else
        ``cdropout.FORMAT_VERSION``); resolved on the client and carried by the key.

    Returns
    -------
    y : dask.array.Array
        The result, with `a`'s shape, chunks and dtype; one task per chunk.
    mask : MaskKey, BlockBits or dask.array.Array
        Only when `return_mask` is given.

    Notes
    -----
    Task names are tokenized from the input's name and the resolved (seed, stream, offset, p,
    noise shape, scale, format): the same call gives the same keys, so Dask can share and cache them.
    The thread count is not part of the name since the result does not depend on it.

    For a new mask every epoch (or per array), give each call a stream of a Generator built on
    the client, e.g. ``for gen in cdropout.Generator(0).spawn(n_epochs): dropout(a, p, seed=gen)``;
    the stream is fixed when the graph is built, so recomputing ``y`` reproduces it.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout, cdropout.dask
    >>> a = da.arange(24, dtype="float32", chunks=5).reshape(4, 6).rechunk((3, 4))
    >>> y = cdropout.dask.dropout(a, 0.5, seed=7)
    >>> y.chunks
    ((3, 1), (4, 2))
    >>> np.array_equal(y.compute(), cdropout.dropout(a.compute(), 0.5, seed=7))
    True
    """
    a = _as_dask(a, "a")
    if return_mask not in _FORMS:
        raise ValueError(f"return_mask must be one of {_FORMS}, got {return_mask!r}")
    origin0 = (0,) * a.ndim
    # One call of the NumPy API on an empty block of `a` checks every argument exactly as the
    # in-memory call does and resolves the seed (taking a Generator's stream) on the client.
    probe = _cd.dropout(_empty_block(a), p, seed=seed, stream=stream, offset=offset, training=training,
                        return_mask="key" if training or return_mask else None, noise_shape=noise_shape,
                        scale=scale, num_threads=num_threads, index=(a.shape, origin0), format=format)
    key = _whole_key(probe[1]) if isinstance(probe, tuple) and isinstance(probe[1], MaskKey) else None
    meta = np.empty((0,) * a.ndim, a.dtype)
    if training:
        assert key is not None
        name = "cdropout-dropout-" + tokenize(a.name, _key_token(key))
        y = da.map_blocks(_t.forward_block, a, key=key, nthreads=num_threads, dtype=a.dtype, name=name, meta=meta)
    elif scale:
        y = a
    else:
        pp = float(p)
        y = da.map_blocks(_t.eval_block, a, p=pp, dtype=a.dtype, meta=meta,
                          name="cdropout-eval-" + tokenize(a.name, pp))
    if return_mask is None:
        return y
    assert key is not None
    return y, _mask_of(key, return_mask, _mask_chunks(a.chunks, a.shape, key.shape), num_threads)


def dropout_backward(grad: Any, mask: Mask, *, p: Optional[float] = None, scale: Optional[bool] = None,
                     num_threads: Optional[int] = 1) -> da.Array:
    """Gradient of :func:`dropout`: ``grad * keep * s`` with the forward's mask, chunk by chunk.

    Parameters
    ----------
    grad : dask.array.Array or array_like
        float16, float32 or float64, with the forward's shape; any chunking for a key or a bool
        mask, the mask's chunks (along the axes the mask does not broadcast) for a BlockBits.
    mask : MaskKey, BlockBits or dask.array.Array of bool
        The forward's mask in any of its forms. A key regenerates each chunk's mask from the
        global index of its elements; a bool dask array is rechunked to `grad`'s chunks if it
        is not chunked like it.
    p : float, optional
        The drop probability; required with a bool mask, checked against the others.
    scale : bool, optional
        With a bool mask, whether the forward rescaled (default True); checked against the others.
    num_threads : int or None
        OpenMP threads per task (see :func:`dropout`).

    Returns
    -------
    dask.array.Array
        The input gradient, with `grad`'s shape, chunks and dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout, cdropout.dask
    >>> x = da.ones((6, 6), chunks=4, dtype="float32")
    >>> y, key = cdropout.dask.dropout(x, 0.25, seed=1, return_mask="key")
    >>> g = cdropout.dask.dropout_backward(da.ones_like(x), key)
    >>> bool((g == y).all().compute())
    True
    """
    grad = _as_dask(grad, "grad")
    meta = np.empty((0,) * grad.ndim, grad.dtype)
    origin0 = (0,) * grad.ndim
    if isinstance(mask, MaskKey):
        # Check p, the key's kind and shape against grad as the in-memory backward does.
        _cd.dropout_backward(_empty_block(grad), mask, p=p, scale=scale, num_threads=num_threads,
                             index=(grad.shape, origin0))
        name = "cdropout-backward-" + tokenize(grad.name, _key_token(mask))
        return da.map_blocks(_t.backward_key_block, grad, key=mask, nthreads=num_threads, dtype=grad.dtype,
                             name=name, meta=meta)
    if isinstance(mask, BlockBits):
        # Check p and scale against the mask's as the in-memory backward does.
        empty = _empty_block(grad)
        block_mask = _cd.BitMask(np.zeros((empty.size + 7) // 8, np.uint8), empty.shape, mask.p, mask.scale,
                                 version=mask.version)
        _cd.dropout_backward(empty, block_mask, p=p, scale=scale)
        _check_broadcast(mask.shape, grad.shape)
        want = _mask_chunks(grad.chunks, grad.shape, mask.shape)
        if mask.chunks != want:
            raise ValueError(f"grad's chunks {grad.chunks} do not match the mask's chunks {mask.chunks}: "
                             "rechunk grad like the forward's input")
        last = mask.chunks[-1] if mask.chunks else ()
        name = "cdropout-backward-bits-" + tokenize(grad.name, mask)
        return da.map_blocks(_t.backward_bits_block, grad, mask.data, last_chunks=last, p=mask.p, scale=mask.scale,
                             nthreads=num_threads, version=mask.version, dtype=grad.dtype, name=name, meta=meta)
    if isinstance(mask, (_cd.BitMask, tuple)) or mask is None:
        raise TypeError("mask must be a cdropout.MaskKey, a cdropout.dask.BlockBits or a bool dask array, "
                        f"not {type(mask).__name__}")
    keep = mask if isinstance(mask, da.Array) else da.asarray(mask)
    if keep.dtype != np.bool_:
        raise TypeError("mask must be a cdropout.MaskKey, a cdropout.dask.BlockBits or a bool dask array, "
                        f"not an array of {keep.dtype}")
    if p is None:
        raise ValueError("p is required with a bool mask")
    _cd.dropout_backward(_empty_block(grad), np.zeros((0,) * grad.ndim, np.bool_), p=p, scale=scale)  # checks
    _check_broadcast(keep.shape, grad.shape)
    want = _mask_chunks(grad.chunks, grad.shape, keep.shape)
    if keep.chunks != want:
        keep = keep.rechunk(want)
    name = "cdropout-backward-bool-" + tokenize(grad.name, keep.name, p, scale)
    return da.map_blocks(_t.backward_bool_block, grad, keep, p=p, scale=scale, nthreads=num_threads, dtype=grad.dtype,
                         name=name, meta=meta)


def _check_broadcast(mshape: Shape, shape: Shape) -> None:
    if len(mshape) != len(shape) or any(m != 1 and m != s for m, s in zip(mshape, shape)):
        raise ValueError(f"the mask's shape {mshape} does not broadcast to grad's shape {shape}")


def _channel(a: Any, p: float, spatial: int, name: str, seed: SeedLike, kwargs: Dict[str, Any]) -> Any:
    a = _as_dask(a, "a")
    return dropout(a, p, seed=seed, noise_shape=_channel_noise_shape(a.shape, spatial, name), **kwargs)


def dropout1d(a: Any, p: float = 0.5, *, seed: SeedLike, **kwargs: Any) -> Any:
    """Channel dropout of (N, C, L) or (C, L) dask arrays, equal to :func:`cdropout.dropout1d`.

    Parameters
    ----------
    a : dask.array.Array or array_like
        The input; any chunking.
    p : float
        Probability that a channel is zeroed.
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        As in :func:`dropout`.
    **kwargs
        stream, offset, training, return_mask, scale, num_threads, format as in :func:`dropout`.

    Returns
    -------
    dask.array.Array or tuple
        As :func:`dropout`; a mask has the noise shape (N, C, 1) (or (C, 1)).

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout, cdropout.dask
    >>> a = da.ones((2, 4, 6), chunks=(1, 3, 4))
    >>> np.array_equal(cdropout.dask.dropout1d(a, 0.5, seed=2).compute(),
    ...                cdropout.dropout1d(np.ones((2, 4, 6)), 0.5, seed=2))
    True
    """
    return _channel(a, p, 1, "dropout1d", seed, kwargs)


def dropout2d(a: Any, p: float = 0.5, *, seed: SeedLike, **kwargs: Any) -> Any:
    """Channel dropout of (N, C, H, W) or (C, H, W) dask arrays, equal to :func:`cdropout.dropout2d`.

    Parameters
    ----------
    a : dask.array.Array or array_like
        The input; any chunking.
    p : float
        Probability that a channel is zeroed.
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        As in :func:`dropout`.
    **kwargs
        stream, offset, training, return_mask, scale, num_threads, format as in :func:`dropout`.

    Returns
    -------
    dask.array.Array or tuple
        As :func:`dropout`; a mask has the noise shape (N, C, 1, 1) (or (C, 1, 1)).

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout, cdropout.dask
    >>> y, key = cdropout.dask.dropout2d(da.ones((2, 3, 4, 4), chunks=2), 0.5, seed=5, return_mask="key")
    >>> key.shape
    (2, 3, 1, 1)
    """
    return _channel(a, p, 2, "dropout2d", seed, kwargs)


def dropout3d(a: Any, p: float = 0.5, *, seed: SeedLike, **kwargs: Any) -> Any:
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) dask arrays, equal to :func:`cdropout.dropout3d`.

    Parameters
    ----------
    a : dask.array.Array or array_like
        The input; any chunking.
    p : float
        Probability that a channel is zeroed.
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        As in :func:`dropout`.
    **kwargs
        stream, offset, training, return_mask, scale, num_threads, format as in :func:`dropout`.

    Returns
    -------
    dask.array.Array or tuple
        As :func:`dropout`; a mask has the noise shape (N, C, 1, 1, 1) (or (C, 1, 1, 1)).

    Examples
    --------
    >>> import dask.array as da, cdropout.dask
    >>> cdropout.dask.dropout3d(da.ones((3, 2, 2, 2), chunks=1), 0.5, seed=0).numblocks
    (3, 2, 2, 2)
    """
    return _channel(a, p, 3, "dropout3d", seed, kwargs)


def variational_dropout(a: Any, p: float = 0.5, *, time_axis: Union[int, Sequence[int]] = 1, seed: SeedLike,
                        **kwargs: Any) -> Any:
    """One mask shared by every step of `time_axis`, equal to :func:`cdropout.variational_dropout`.

    Parameters
    ----------
    a : dask.array.Array or array_like
        The input, e.g. (N, T, F) sequences; any chunking, including along the time axis.
    p : float
        Drop probability.
    time_axis : int or tuple of int
        The axis (or axes) the mask is shared over.
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        As in :func:`dropout`.
    **kwargs
        stream, offset, training, return_mask, scale, num_threads, format as in :func:`dropout`.

    Returns
    -------
    dask.array.Array or tuple
        As :func:`dropout`; a mask has `a`'s shape with `time_axis` set to 1.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout.dask
    >>> y = cdropout.dask.variational_dropout(da.ones((2, 6, 3), chunks=(1, 2, 3)), 0.5, seed=0).compute()
    >>> bool(np.all(y == y[:, :1, :]))
    True
    """
    a = _as_dask(a, "a")
    axes = check_axes(time_axis, a.ndim, "time_axis")
    ns = tuple(1 if d in axes else s for d, s in enumerate(a.shape))
    return dropout(a, p, seed=seed, noise_shape=ns, **kwargs)
