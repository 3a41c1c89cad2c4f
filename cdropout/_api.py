"""dropout and dropout_backward: user input checked once, then the one apply path."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional, Sequence, Tuple, Union, overload


import numpy as np

from . import _config, _core
from ._alpha_constants import alpha_coefficients
from ._apply import apply, block_mask_shape, constants, forward_bits, in_dtype, target
from ._checks import (MASK_FORMS, Shape, as_array, check_form, check_index, check_out, check_p, check_span,
                      check_threads, noise_shape)
from ._formats import FORMAT_VERSION, philox4x32
from ._record import KINDS, BitMask, Index, MaskKey, packed_size, unpack
from ._seeding import SeedLike, _front, resolve, resolve_format, validate

__all__ = ["FORMAT_VERSION", "Mask", "dropout", "dropout_backward", "philox4x32"]

Mask = Union[np.ndarray, BitMask, MaskKey]
Record = Union[MaskKey, BitMask]
IndexLike = Optional[Tuple[Sequence[int], Sequence[int]]]


# -- shared by every front end (dropout, the variants, the layer) -----------------------------

def check_call(x: Any, p: Any, offset: Any, out: Any, return_mask: Any, num_threads: Any, ns: Any,
               index: Any, forms: Tuple[Optional[str], ...] = MASK_FORMS
               ) -> Tuple[np.ndarray, int, float, Optional[str], int, Optional[np.ndarray], Shape,
                          Optional[Index], int]:
    """Every argument of a call checked, before anything is drawn or written.

    Returns (x, dtype code, p, form, nthreads, out, mask shape, index, offset). With `index`, the
    noise shape (and so the mask shape) is that of the whole array.
    """
    if type(x) is np.ndarray:
        x, code = _core.operand(x, "x")
    else:
        x, code = as_array(x, "x")
    p = check_p(p)
    form = check_form(return_mask, forms)
    nthreads = check_threads(num_threads)
    if out is not None:
        out = check_out(out, x)
    if index is not None:
        index = check_index(index, x.shape)
        mshape = noise_shape(ns, index[0])
    elif ns is not None:
        mshape = noise_shape(ns, x.shape)
    else:
        mshape = x.shape
    offset = check_span(offset, math.prod(mshape))
    return x, code, p, form, nthreads, out, mshape, index, offset


def eval_result(x: np.ndarray, out: Optional[np.ndarray], form: Optional[str], offset: int, mshape: Shape,
                index: Optional[Index], kind: str, factor: Optional[float] = None,
                version: Optional[int] = None) -> Any:
    """training=False: x itself (or written into out), or ``x * factor``; no stream is drawn.

    A returned mask is the keep-all mask (p = 0) of the call's shape, kind and format `version`
    (None: FORMAT_VERSION, 1 for 'gaussian').
    """
    if version is None:
        version = 1 if kind == "gaussian" else FORMAT_VERSION
    if form is not None and factor is not None:
        raise ValueError("return_mask needs training=True when scale=False (the inference map "
                         "x * (1-p) is not a mask)")
    if factor is not None:
        with np.errstate(all="ignore"):
            y = np.multiply(x, x.dtype.type(factor), out=out)
    elif out is None or out is x:
        y = x
    else:
        np.copyto(out, x)
        y = out
    if form is None:
        return y
    if form == "key":
        return y, MaskKey._make(0, 0, offset, 0.0, mshape, True, kind, index, version)
    shape = mshape if index is None else block_mask_shape(x.shape, mshape)
    if form == "bool":
        return y, np.ones(shape, np.bool_)
    n = math.prod(shape)
    bits = np.full(packed_size(n), 0xFF, np.uint8)
    if n % 8:
        bits[-1] = (1 << (n % 8)) - 1  # padding bits 0, as np.packbits gives
    return y, BitMask._make(bits, shape, 0.0, True, kind, offset, version)


def mask_result(form: str, seed: int, stream: int, offset: int, p: float, mshape: Shape, scale: bool,
                kind: str, index: Optional[Index], bits: Optional[np.ndarray], shape: Shape, version: int) -> Mask:
    """The mask a forward of format `version` returns in `form` (bits: the packed mask of the array
    or block)."""
    if form == "key":
        return MaskKey._make(seed, stream, offset, p, mshape, scale, kind, index, version)
    assert bits is not None
    bshape = mshape if index is None else block_mask_shape(shape, mshape)
    if form == "bits":
        return BitMask._make(bits, bshape, p, scale, kind, offset, version)
    return unpack(bits, bshape)


def as_record(mask: Any, p: Any, scale: Any, kind: str) -> Record:
    """The record of a backward's `mask` argument: a MaskKey or BitMask of `kind`, or a bool array
    (then `p` is required and `scale` defaults to True)."""
    if isinstance(mask, (MaskKey, BitMask)):
        mask.check_kind(kind)
        if p is not None and check_p(p) != mask.p:
            raise ValueError(f"p={p} disagrees with the mask's p={mask.p}")
        if scale is not None and bool(scale) != mask.scale:
            raise ValueError(f"scale={scale} disagrees with the mask's scale={mask.scale}")
        return mask
    arr = mask
    if not isinstance(mask, np.ndarray) and mask is not None and not isinstance(mask, (str, bytes)):
        try:
            arr = np.asarray(mask)  # a list of bools is accepted like the array it makes
        except (TypeError, ValueError):
            pass
    if not isinstance(arr, np.ndarray) or arr.dtype != np.bool_:
        what = f"a {arr.dtype} array" if isinstance(arr, np.ndarray) else type(mask).__name__
        raise TypeError(f"mask must be a MaskKey, a BitMask or a bool numpy.ndarray (a forward's "
                        f"return_mask), not {what}")
    mask = arr
    if p is None:
        raise ValueError("p is required with a bool mask")
    p = check_p(p)
    if scale is not None and not isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"scale must be a bool, not {type(scale).__name__}")
    bits = np.packbits(mask, axis=None, bitorder="little")  # (a bool mask's format is unknown)
    return BitMask._make(bits, mask.shape, p, True if scale is None else bool(scale), kind, 0, FORMAT_VERSION)


def record_shape(rec: Record, shape: Shape, index: Any) -> Tuple[Shape, Optional[Index]]:
    """(mask shape, index) of applying `rec` to an array of `shape`: checked to fit."""
    own = rec.index if type(rec) is MaskKey else None
    if index is None:
        index = own
    else:
        index = check_index(index, shape)
        if own is not None and index != own:
            raise ValueError(f"index={index} disagrees with the mask's index={own}")
    if index is not None:
        index = check_index(index, shape)
    full = shape if index is None else index[0]
    if rec.shape == full:  # the plain mask (the common case, fast)
        return full, index
    if len(rec.shape) != len(full):  # a forward's mask has one entry per dimension
        raise ValueError(f"mask shape {rec.shape} does not fit grad of shape {full}: it needs one entry "
                         f"per dimension, each 1 or the size")
    return noise_shape(rec.shape, full, "mask shape"), index


def record_scale(rec: Record, code: int) -> float:
    """The factor kept elements are multiplied by, in the dtype of `code`, for rec's kind:
    1/(1-p) (or 1 without rescaling) for 'bernoulli', alpha dropout's `a` for 'alpha'."""
    if rec.kind == "bernoulli":
        return constants(rec.p, code, rec.scale)[0]
    if rec.kind == "alpha":
        return 0.0 if rec.p >= 1.0 else in_dtype(alpha_coefficients(rec.p)[0], code)
    raise ValueError(f"a {rec.kind!r} mask is not a keep mask: use {KINDS[rec.kind]}")


def apply_record(x: np.ndarray, out: Optional[np.ndarray], rec: Record, nthreads: int = 0,
                 index: Any = None, code: Optional[int] = None) -> np.ndarray:
    """``y = keep ? x * s : +0`` with rec's mask and rec's factor: the one apply path of every
    backward (and of a forward from a record, e.g. cdropout.torch's).

    `x` is an aligned native float ndarray (from :func:`cdropout._checks.as_array`), `out` None or
    checked by :func:`cdropout._checks.check_out`; the mask's shape (and `index`) are checked here,
    before anything is written. Returns y (`out` when given).
    """
    if code is None:
        x, code = _core.operand(x, "x")
    mshape, index = record_shape(rec, x.shape, index)
    s = record_scale(rec, code)
    x, y = target(x, out)
    apply(x, y, rec, s, mshape, index, nthreads)
    return y


# -- dropout ---------------------------------------------------------------------------------

@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: None = ...,
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ..., format: Optional[int] = ...) -> np.ndarray: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["bool"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ..., format: Optional[int] = ...) -> Tuple[np.ndarray, np.ndarray]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["bits"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ..., format: Optional[int] = ...) -> Tuple[np.ndarray, BitMask]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["key"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ..., format: Optional[int] = ...) -> Tuple[np.ndarray, MaskKey]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: str,
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ..., format: Optional[int] = ...) -> Tuple[np.ndarray, Mask]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Optional[str] = ...,
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...,
            format: Optional[int] = ...) -> Union[np.ndarray, Tuple[np.ndarray, Mask]]: ...
def dropout(
    x: Any,
    p: float = 0.5,
    *,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    training: bool = True,
    out: Optional[np.ndarray] = None,
    return_mask: Optional[str] = None,
    num_threads: Optional[int] = None,
    noise_shape: Optional[Sequence[Optional[int]]] = None,
    scale: bool = True,
    index: IndexLike = None,
    format: Optional[int] = None,
) -> Union[np.ndarray, Tuple[np.ndarray, Mask]]:
    """Inverted dropout: zero each element with probability `p`, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape and strides. Other dtypes, byte-swapped and
        masked arrays raise TypeError.
    p : float
        Drop probability in [0, 1] (PyTorch's convention); any real scalar.
    seed : int, numpy.random.SeedSequence, numpy.random.Generator, cdropout.Generator or None
        An int in [0, 2**64), a SeedSequence (64 bits of ``generate_state``) or a NumPy
        Generator (one draw of ``integers(2**64, dtype=np.uint64)``) is the seed, with `stream`
        (default 0). A cdropout Generator, or None for the module's default one, gives the call
        its next stream.
    stream : int, optional
        Stream number in [0, 2**64); only with an explicit seed.
    offset : int
        Global index of the first mask element: ``dropout(x[a:], offset=a)`` equals
        ``dropout(x)[a:]``, so a big array can be processed in pieces.
    training : bool
        False returns `x` itself (or writes it into `out`) and draws no stream; with
        ``scale=False`` it returns ``x * (1-p)``.
    out : numpy.ndarray, optional
        Where to write the result; ``out=x`` is in-place dropout with no temporary.
    return_mask : {None, 'bool', 'bits', 'key'}
        Also return the mask: a bool array, a :class:`BitMask` (1 bit per element) or a
        :class:`MaskKey` (no bytes; the backward regenerates the mask).
    num_threads : int, optional
        OpenMP threads for this call (default: OMP_NUM_THREADS / threadpoolctl limits).
    noise_shape : sequence of int or None, optional
        Draw the mask over this shape and broadcast it (TensorFlow's rule: it broadcasts to x's
        shape, each entry 1 or the size; a None entry takes the size).
    scale : bool
        False: classic dropout, kept elements are not rescaled at training and the output is
        multiplied by 1-p at inference.
    index : (global_shape, block_origin), optional
        x is the block of a larger array of `global_shape` starting at `block_origin`: each
        element gets the mask of its index in the whole array, so
        ``dropout(whole, ...)[block] == dropout(whole[block], ..., index=(whole.shape, origin))``
        for any tiling. `noise_shape` is then the whole array's, and a returned key covers the
        whole array (its backward is given the same block); bits and bool masks are the block's.
    format : {1, 2} or None
        The stream format (docs/stream-format.md): 1 draws the keep bits with Philox4x32-10, 2
        with ARS-7 (AES rounds); both are exact (P(keep) = T / 2**32) and frozen. None: the
        format of a cdropout Generator `seed` (None: the default generator's), else
        ``cdropout.FORMAT_VERSION``. A returned record carries it as its `version`.

    Returns
    -------
    y : numpy.ndarray
        The result, of x's shape and dtype (`out` when given).
    mask : numpy.ndarray, BitMask or MaskKey
        Only when `return_mask` is given.

    Notes
    -----
    Element ``idx`` of x gets the mask element at C-order index ``offset + i`` of the mask shape
    (x's shape, the noise shape, or the whole array's with `index`); its keep decision depends
    only on (format, seed, stream, that index, p), through Philox4x32-10 in format 1 and ARS-7 in
    format 2 (docs/stream-format.md). Dropped
    elements are +0.0 even where x is NaN or Inf; overflow of ``x * s`` gives inf, never an
    error, whatever ``np.errstate`` says.

    **Compatibility guarantee.** The masks of every stream format (1 and 2) are frozen: for a
    given (format, seed, stream, offset, p, shape), :func:`dropout` and every function built on
    it return bitwise the same mask and result on every machine, operating system, SIMD path and
    thread count, in this and every later release, as numpy.random does for its bit generators'
    streams. A change of a stream would be a new format version, never a silent change of an
    existing one; a record (:class:`MaskKey`, :class:`BitMask`) carries the version it was made
    with. Only fixes of outright bugs, announced in the release notes, are exempt. Pass `format`
    to pin the format: the default, ``cdropout.FORMAT_VERSION``, may change in a later release.
    Dtype results follow from the mask: kept elements are ``x * s`` in the dtype's arithmetic
    with ``s = 1/(1-p)`` rounded to the dtype (float16 computes in float32 and rounds once).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float32)
    >>> cdropout.dropout(x, 0.5, seed=42, format=1)  # kept elements doubled, dropped ones +0.0
    array([ 0.,  0.,  6.,  8., 10., 12.,  0., 16.], dtype=float32)
    >>> y, key = cdropout.dropout(x, 0.5, seed=42, out=x, return_mask="key")  # in place
    >>> y is x
    True
    >>> cdropout.dropout(x, 0.5, training=False) is x                          # inference: x itself
    True
    """
    if type(x) is np.ndarray and noise_shape is None and index is None:  # the common case, fast
        x, code = _core.operand(x, "x")
        p = check_p(p)
        form = None if return_mask is None else check_form(return_mask)
        nthreads = check_threads(num_threads)
        if out is not None:
            out = check_out(out, x)
        mshape, index_ = x.shape, None
        offset = check_span(offset, x.size)
    else:
        x, code, p, form, nthreads, out, mshape, index_, offset = check_call(
            x, p, offset, out, return_mask, num_threads, noise_shape, index)
    fmt = FORMAT_VERSION if format is None and type(seed) is int else resolve_format(seed, format)
    if not training:
        validate(seed, stream)  # the same errors as in training, but no stream is drawn
        return eval_result(x, out, form, offset, mshape, index_, "bernoulli", None if scale else 1.0 - p, fmt)
    seed_, stream_ = resolve(seed, stream)
    x, y = target(x, out)
    s, T = constants(p, code, scale)
    if form is None and index_ is None and mshape == x.shape:
        _core.apply_key(x, y, s, seed_, stream_, T, offset, None, None, nthreads, _config.min_per_thread, _config.isa,
                        fmt=fmt)
        return y
    bits = forward_bits(x, y, s, seed_, stream_, T, offset, mshape, index_, form is not None and form != "key",
                        nthreads, fmt)
    if form is None:
        return y
    return y, mask_result(form, seed_, stream_, offset, p, mshape, bool(scale), "bernoulli", index_, bits, x.shape,
                          fmt)


def dropout_backward(
    grad: Any,
    mask: Mask,
    *,
    p: Optional[float] = None,
    scale: Optional[bool] = None,
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
    index: IndexLike = None,
) -> np.ndarray:
    """Gradient of :func:`dropout`: ``grad * keep * s`` with the forward's mask and scale.

    Parameters
    ----------
    grad : array_like
        float16, float32 or float64 gradient of the forward's output.
    mask : MaskKey, BitMask or numpy.ndarray of bool
        The forward's mask in any form (of kind 'bernoulli': masks of alpha or Gaussian dropout
        raise ValueError). A noise-shaped mask is broadcast.
    p : float, optional
        The drop probability: required with a bool mask, must agree with a record's p.
    scale : bool, optional
        Whether the forward rescaled (default True); for a bool mask, must agree with a record's.
    out : numpy.ndarray, optional
        Where to write the result; ``out=grad`` works in place.
    num_threads : int, optional
        OpenMP threads for this call.
    index : (global_shape, block_origin), optional
        grad is a block of the whole array the mask covers (see :func:`dropout`); a key made
        with `index` carries it.

    Returns
    -------
    numpy.ndarray
        The input gradient, of grad's shape and dtype.

    Notes
    -----
    With a MaskKey ``k`` the result is bitwise ``dropout(grad, k.p, seed=k.seed, stream=k.stream,
    offset=k.offset, noise_shape=k.shape, scale=k.scale, index=k.index, format=k.version)``: the
    same mask (of the key's own format) and the same scale (1 when ``k.scale`` is False).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float32)
    >>> y, key = cdropout.dropout(x, 0.5, seed=42, return_mask="key", format=1)
    >>> cdropout.dropout_backward(np.ones_like(x), key)   # the forward's mask (format 1) and scale
    array([0., 0., 2., 2., 2., 2., 0., 2.], dtype=float32)
    """
    if type(grad) is np.ndarray:
        grad, code = _core.operand(grad, "grad")
    else:
        grad, code = as_array(grad, "grad")
    nthreads = check_threads(num_threads)
    if out is not None:
        out = check_out(out, grad)
    if (type(mask) is MaskKey and mask.kind == "bernoulli" and p is None and scale is None and index is None
            and mask.index is None and mask.shape == grad.shape):  # the plain key (the common case, fast)
        grad, y = target(grad, out)
        s, T = constants(mask.p, code, mask.scale)
        _core.apply_key(grad, y, s, mask.seed, mask.stream, T, mask.offset, None, None, nthreads,
                        _config.min_per_thread, _config.isa, fmt=mask.version)
        return y
    rec = as_record(mask, p, scale, "bernoulli")
    return apply_record(grad, out, rec, nthreads, index, code)


_front["dropout"] = dropout
_front["dropout_backward"] = dropout_backward


# Names older modules import (cdropout.torch): kept so they keep working.
_check_p = check_p
_check_threads = check_threads


def _mask_shape(ns: Any, shape: Shape, name: str = "noise_shape") -> Shape:
    return noise_shape(ns, shape, name)
