"""dropout, dropout_backward and philox4x32: user input checked once, then the one apply path."""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Tuple, Union, overload

try:
    from typing import Literal
except ImportError:  # Python < 3.8 has no Literal; the package needs 3.9, so this is for mypy only
    from typing_extensions import Literal  # type: ignore[assignment]

import numpy as np

from . import _core
from ._apply import apply, block_mask_shape, constants, forward_bits, target
from ._checks import (MASK_FORMS, Shape, as_array, check_form, check_index, check_out, check_p, check_span,
                      check_threads, check_u64, noise_shape)
from ._record import FORMAT_VERSION, BitMask, Index, MaskKey, packed_size, unpack
from ._seeding import SeedLike, _front, resolve, validate

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
                index: Optional[Index], kind: str, factor: Optional[float] = None) -> Any:
    """training=False: x itself (or written into out), or ``x * factor``; no stream is drawn.

    A returned mask is the keep-all mask (p = 0) of the call's shape and kind.
    """
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
        return y, MaskKey._make(0, 0, offset, 0.0, mshape, True, kind, index)
    shape = mshape if index is None else block_mask_shape(x.shape, mshape)
    if form == "bool":
        return y, np.ones(shape, np.bool_)
    n = math.prod(shape)
    bits = np.full(packed_size(n), 0xFF, np.uint8)
    if n % 8:
        bits[-1] = (1 << (n % 8)) - 1  # padding bits 0, as np.packbits gives
    return y, BitMask._make(bits, shape, 0.0, True, kind, offset)


def mask_result(form: str, seed: int, stream: int, offset: int, p: float, mshape: Shape, scale: bool,
                kind: str, index: Optional[Index], bits: Optional[np.ndarray], shape: Shape) -> Mask:
    """The mask a forward returns in `form` (bits: the packed mask of the array or block)."""
    if form == "key":
        return MaskKey._make(seed, stream, offset, p, mshape, scale, kind, index)
    assert bits is not None
    bshape = mshape if index is None else block_mask_shape(shape, mshape)
    if form == "bits":
        return BitMask._make(bits, bshape, p, scale, kind, offset)
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
    bits = np.packbits(mask, axis=None, bitorder="little")
    return BitMask._make(bits, mask.shape, p, True if scale is None else bool(scale), kind, 0)


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
    if len(rec.shape) != len(full):  # a forward's mask has one entry per dimension
        raise ValueError(f"mask shape {rec.shape} does not fit grad of shape {full}: it needs one entry "
                         f"per dimension, each 1 or the size")
    return noise_shape(rec.shape, full, "mask shape"), index


def apply_record(x: np.ndarray, out: Optional[np.ndarray], rec: Record, s: float, nthreads: int,
                 index: Any = None) -> np.ndarray:
    """``y = keep ? x * s : +0`` with rec's mask: the apply path of every backward (checked here)."""
    mshape, index = record_shape(rec, x.shape, index)
    x, y = (x, x) if out is x else target(x, out)
    apply(x, y, rec, s, mshape, index, nthreads)
    return y


# -- dropout ---------------------------------------------------------------------------------

@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: None = ...,
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...) -> np.ndarray: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["bool"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...) -> Tuple[np.ndarray, np.ndarray]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["bits"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...) -> Tuple[np.ndarray, BitMask]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Literal["key"],
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...) -> Tuple[np.ndarray, MaskKey]: ...
@overload
def dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
            training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: Optional[str] = ...,
            num_threads: Optional[int] = ..., noise_shape: Optional[Sequence[Optional[int]]] = ...,
            scale: bool = ..., index: IndexLike = ...) -> Union[np.ndarray, Tuple[np.ndarray, Mask]]: ...
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
    only on (seed, stream, that index, p) through Philox4x32-10 (docs/stream-format.md). Dropped
    elements are +0.0 even where x is NaN or Inf; overflow of ``x * s`` gives inf, never an
    error, whatever ``np.errstate`` says.

    **Compatibility guarantee.** The masks of stream format version ``cdropout.FORMAT_VERSION``
    (1) are frozen: for a given (seed, stream, offset, p, shape), :func:`dropout` and every
    function built on it return bitwise the same mask and result on every machine, operating
    system, SIMD path and thread count, in this and every later release, as numpy.random does
    for its bit generators' streams. A change of the stream would be a new format version, never
    a silent change of version 1; a record (:class:`MaskKey`, :class:`BitMask`) carries the
    version it was made with. Only fixes of outright bugs, announced in the release notes, are
    exempt. Dtype results follow from the mask: kept elements are ``x * s`` in the dtype's
    arithmetic with ``s = 1/(1-p)`` rounded to the dtype (float16 computes in float32 and rounds
    once).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float32)
    >>> cdropout.dropout(x, 0.5, seed=42)
    array([ 2.,  0.,  6.,  8., 10.,  0.,  0.,  0.], dtype=float32)
    >>> y, key = cdropout.dropout(x, 0.5, seed=42, out=x, return_mask="key")  # in place
    >>> y is x
    True
    >>> cdropout.dropout(x, 0.5, training=False) is x                          # inference: x itself
    True
    """
    x, code, p, form, nthreads, out, mshape, index_, offset = check_call(
        x, p, offset, out, return_mask, num_threads, noise_shape, index)
    if not training:
        validate(seed, stream)  # the same errors as in training, but no stream is drawn
        return eval_result(x, out, form, offset, mshape, index_, "bernoulli", None if scale else 1.0 - p)
    seed_, stream_ = resolve(seed, stream)
    x, y = (x, x) if out is x else target(x, out)
    s, T = constants(p, code, scale)
    bits = forward_bits(x, y, s, seed_, stream_, T, offset, mshape, index_, form is not None and form != "key",
                        nthreads)
    if form is None:
        return y
    return y, mask_result(form, seed_, stream_, offset, p, mshape, bool(scale), "bernoulli", index_, bits, x.shape)


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
    offset=k.offset, noise_shape=k.shape, scale=k.scale, index=k.index)``: the same mask
    and the same scale (1 when ``k.scale`` is False).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(1, 9, dtype=np.float32)
    >>> y, key = cdropout.dropout(x, 0.5, seed=42, return_mask="key")
    >>> cdropout.dropout_backward(np.ones_like(x), key)
    array([2., 0., 2., 2., 2., 0., 0., 0.], dtype=float32)
    """
    if type(grad) is np.ndarray:
        grad, code = _core.operand(grad, "grad")
    else:
        grad, code = as_array(grad, "grad")
    rec = as_record(mask, p, scale, "bernoulli")
    nthreads = check_threads(num_threads)
    out = check_out(out, grad)
    return apply_record(grad, out, rec, constants(rec.p, code, rec.scale)[0], nthreads, index)


_front["dropout"] = dropout
_front["dropout_backward"] = dropout_backward


def philox4x32(counter: Any, key: Sequence[int], rounds: int = 10) -> np.ndarray:
    """The raw Philox4x32-`rounds` bijection, as in Random123.

    Parameters
    ----------
    counter : array_like of int, shape (..., 4)
        Counter words (each in [0, 2**32)), word 0 first.
    key : sequence of two ints
        Key words (each in [0, 2**32)), word 0 first.
    rounds : int
        Number of rounds, 0 to 16 (10 is Philox4x32-10, the one dropout uses).

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
    c = np.asarray(counter)
    if c.dtype.kind not in "ui":
        raise TypeError(f"counter must hold integers, not {c.dtype}")
    if c.ndim == 0 or c.shape[-1] != 4:
        raise ValueError(f"counter must have shape (..., 4), got {c.shape}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= 1 << 32):
        raise ValueError("counter words must be in [0, 2**32)")
    k = list(key)
    if len(k) != 2:
        raise ValueError(f"key must have two words, got {len(k)}")
    k0, k1 = (check_u64(w, "key") for w in k)
    if k0 >= 1 << 32 or k1 >= 1 << 32:
        raise ValueError("key words must be in [0, 2**32)")
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or not 0 <= rounds <= 16:
        raise ValueError(f"rounds must be an int in [0, 16], got {rounds!r}")
    c = np.ascontiguousarray(c, dtype=np.uint32)
    result = np.empty_like(c)
    _core.philox(c, result, k0, k1, int(rounds))
    return result


# Names older modules import (cdropout.torch): kept so they keep working.
_check_p = check_p
_check_threads = check_threads


def _mask_shape(ns: Any, shape: Shape, name: str = "noise_shape") -> Shape:
    return noise_shape(ns, shape, name)
