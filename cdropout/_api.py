"""dropout, dropout_backward and philox4x32: argument checks (once, here) and calls into _core."""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _config, _core
from ._masks import BitMask, MaskKey, generate_bits, packed_size, threshold, unpack
from ._seeding import U64, SeedLike, check_u64, resolve, validate

_MASK_FORMS = (None, "bool", "bits", "key")
_MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))

Mask = Union[np.ndarray, BitMask, MaskKey]


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """x as an aligned, native float16/32/64 ndarray; a TypeError naming `name` otherwise."""
    return _core.operand(x, name)[0]


def _check_p(p: Any) -> float:
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, fast
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, not {type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"p must be in [0, 1], got {p}")
    return p


def _check_threads(num_threads: Any) -> int:
    if num_threads is None:
        return 0
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be a positive int or None, not {type(num_threads).__name__}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    # Results do not depend on the thread count, so a count far above the cores is clamped
    # rather than handed to OpenMP (libgomp exits the process when it cannot create a thread).
    return min(int(num_threads), _MAX_THREADS)


_check_out = _core.check_out


def _mask_shape(noise_shape: Any, shape: Tuple[int, ...], name: str = "noise_shape") -> Tuple[int, ...]:
    """The shape the mask is drawn over: `shape` itself, or a TF-style noise shape."""
    if noise_shape is None:
        return shape
    try:
        ns = tuple(int(d) for d in noise_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints") from None
    if len(ns) != len(shape) or any(n != 1 and n != s for n, s in zip(ns, shape)):
        raise ValueError(f"{name} {ns} does not broadcast to {shape}: each entry must be 1 or the size")
    return ns


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


_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


_CONSTANTS: dict = {}


def _constants(p: float, code: int, scale: bool) -> Tuple[float, int]:
    """(s, T) of a call: the scale in the dtype of `code` and the keep threshold (memoised)."""
    key = (p, code, scale)
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) >= 1024:  # bounded: a schedule of many p values must not grow it
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = (_scale(p, _DTYPES[code], scale), threshold(p))
    return c


def _writable_target(x: np.ndarray, out: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(source, destination) for an elementwise pass that is safe whatever out overlaps."""
    if out is None:
        return x, np.empty(x.shape, x.dtype)
    if out is not x and np.may_share_memory(x, out):
        xi, oi = x.__array_interface__, out.__array_interface__
        if xi["data"][0] != oi["data"][0] or x.strides != out.strides:
            x = x.copy()  # partial overlap: read from a copy
    return x, out


def _select(x: np.ndarray, keep: np.ndarray, s: float, y: np.ndarray) -> None:
    """y = keep ? x * s : +0 with keep broadcast to x (the path for noise-shaped and bool masks)."""
    with np.errstate(all="ignore"):  # like the core path: overflow to inf is the result, not an error
        prod = np.multiply(x, x.dtype.type(s))
    y[...] = 0
    np.copyto(y, prod, where=keep)


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
    noise_shape: Optional[Sequence[int]] = None,
    scale: bool = True,
) -> Union[np.ndarray, Tuple[np.ndarray, Mask]]:
    """Inverted dropout: zero each element with probability `p`, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape and strides. Other dtypes raise TypeError.
    p : float
        Drop probability in [0, 1] (PyTorch's convention).
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        An int in [0, 2**64) or a SeedSequence fixes the mask (with `stream`, default 0); a
        Generator, or None for the module's default one, gives the call its next stream.
    stream : int, optional
        Stream number in [0, 2**64); only with an int or SeedSequence seed.
    offset : int
        Global index of the first element: ``dropout(x[a:], offset=a)`` equals
        ``dropout(x)[a:]``, so a big array can be processed in pieces.
    training : bool
        False returns x unchanged (scaled by 1-p when ``scale=False``), drawing no stream.
    out : numpy.ndarray, optional
        Where to write the result; ``out=x`` is in-place dropout with no temporary.
    return_mask : {None, 'bool', 'bits', 'key'}
        Also return the mask: a bool array, a :class:`BitMask` (1 bit per element) or a
        :class:`MaskKey` (no bytes; the backward regenerates the mask).
    num_threads : int, optional
        OpenMP threads for this call (default: OMP_NUM_THREADS / threadpoolctl limits).
    noise_shape : sequence of int, optional
        Draw the mask over this shape (each entry 1 or x's size) and broadcast it.
    scale : bool
        False: classic dropout, kept elements are not rescaled at training and the output is
        multiplied by 1-p at inference.

    Returns
    -------
    y : numpy.ndarray
        The result, of x's shape and dtype (`out` when given).
    mask : numpy.ndarray, BitMask or MaskKey
        Only when `return_mask` is given.

    Notes
    -----
    The mask of element ``i`` depends only on (seed, stream, offset + i, p): the result is the
    same for every thread count, kernel path and machine (docs/stream-format.md). Dropped
    elements are +0.0 even where x is NaN or Inf.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones(8, dtype=np.float32)
    >>> y = cdropout.dropout(x, 0.5, seed=42)
    >>> sorted(set(y.tolist())) == [0.0, 2.0] or set(y.tolist()) <= {0.0, 2.0}
    True
    >>> np.array_equal(y, cdropout.dropout(x, 0.5, seed=42))
    True
    >>> y, key = cdropout.dropout(x, 0.5, seed=42, out=x, return_mask="key")  # in place
    >>> y is x
    True
    """
    x, code = _core.operand(x, "x")
    p = _check_p(p)
    if return_mask not in _MASK_FORMS:
        raise ValueError(f"return_mask must be one of {_MASK_FORMS}, got {return_mask!r}")
    nthreads = _check_threads(num_threads)
    out = _check_out(out, x)
    if noise_shape is None:
        mshape, n = x.shape, x.size
    else:
        mshape = _mask_shape(noise_shape, x.shape)
        n = math.prod(mshape)
    offset = check_u64(offset, "offset")
    if offset + n > U64:
        raise ValueError(f"offset + mask size must be at most 2**64, got {offset} + {n}")
    if not training:
        validate(seed, stream)  # the same errors as in training, but no stream is drawn
        return _eval(x, p, out, return_mask, offset, mshape, scale)
    seed_, stream_ = resolve(seed, stream)
    x, y = (x, x) if out is x else _writable_target(x, out)
    s, T = _constants(p, code, scale)
    bits = None
    if mshape == x.shape:
        if return_mask in ("bool", "bits"):
            bits = np.zeros(packed_size(n), np.uint8)
        _core.apply_key(x, y, s, seed_, stream_, T, offset, None, bits, nthreads,
                        _config.min_per_thread, _config.isa)
    else:
        bits = generate_bits(seed_, stream_, offset, p, mshape, nthreads)
        _select(x, unpack(bits, mshape), s, y)
    if return_mask is None:
        return y
    if return_mask == "key":
        return y, MaskKey(seed_, stream_, offset, p, mshape, bool(scale))
    if return_mask == "bits":
        return y, BitMask(bits, mshape, p, bool(scale))
    return y, unpack(bits, mshape)


def _eval(x: np.ndarray, p: float, out: Optional[np.ndarray], return_mask: Optional[str], offset: int,
          mshape: Tuple[int, ...], scale: bool) -> Any:
    """training=False: the identity (or x * (1-p) for classic dropout); no stream is drawn."""
    if scale:
        y = np.copy(x) if out is None else out
        if out is not None and out is not x:
            np.copyto(out, x)
    else:
        with np.errstate(all="ignore"):
            y = np.multiply(x, x.dtype.type(1.0 - p), out=out)
    if return_mask is None:
        return y
    if not scale:
        raise ValueError("return_mask needs training=True when scale=False")
    if return_mask == "key":
        return y, MaskKey(0, 0, offset, 0.0, mshape, True)
    bits = generate_bits(0, 0, offset, 0.0, mshape)
    if return_mask == "bits":
        return y, BitMask(bits, mshape, 0.0, True)
    return y, unpack(bits, mshape)


def dropout_backward(
    grad: Any,
    mask: Mask,
    *,
    p: Optional[float] = None,
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """Gradient of :func:`dropout`: ``grad * keep * s`` with the forward's mask and scale.

    Parameters
    ----------
    grad : array_like
        float16, float32 or float64 gradient of the forward's output.
    mask : numpy.ndarray of bool, BitMask or MaskKey
        The forward's mask in any form. A MaskKey regenerates the mask (the result equals the
        forward applied to grad with the same key). A noise-shaped mask is broadcast.
    p : float, optional
        The drop probability; required for (and only used with) a bool mask.
    out : numpy.ndarray, optional
        Where to write the result; ``out=grad`` works in place.
    num_threads : int, optional
        OpenMP threads for this call.

    Returns
    -------
    numpy.ndarray
        The input gradient, of grad's shape and dtype.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    >>> y, key = cdropout.dropout(x, 0.3, seed=5, return_mask="key")
    >>> g = cdropout.dropout_backward(np.ones_like(x), key)
    >>> np.array_equal(g, cdropout.dropout(np.ones_like(x), 0.3, seed=5))
    True
    """
    grad, code = _core.operand(grad, "grad")
    nthreads = _check_threads(num_threads)
    out = _check_out(out, grad)
    if isinstance(mask, (MaskKey, BitMask)):
        if p is not None and float(p) != mask.p:
            raise ValueError(f"p={p} disagrees with the mask's p={mask.p}")
        p_, scale, mshape = mask.p, mask.scale, _mask_shape(mask.shape, grad.shape, "mask shape")
    else:
        if p is None:
            raise ValueError("p is required with a bool mask")
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array, a BitMask or a MaskKey, not {mask.dtype}")
        p_, scale, mshape = _check_p(p), True, _mask_shape(mask.shape, grad.shape, "mask shape")
    grad, y = _writable_target(grad, out)
    s, T = _constants(p_, code, scale)
    if mshape != grad.shape:
        keep = mask.to_bool() if isinstance(mask, (MaskKey, BitMask)) else mask
        _select(grad, keep, s, y)
    elif isinstance(mask, MaskKey):
        _core.apply_key(grad, y, s, mask.seed, mask.stream, T, mask.offset, None, None,
                        nthreads, _config.min_per_thread, _config.isa)
    else:
        bits = mask.data if isinstance(mask, BitMask) else np.packbits(mask, axis=None, bitorder="little")
        if bits.dtype != np.uint8 or bits.ndim != 1 or bits.size != packed_size(grad.size):
            raise ValueError(f"mask data must be {packed_size(grad.size)} uint8 bytes for shape {grad.shape}")
        _core.apply_bits(grad, y, s, np.ascontiguousarray(bits), 0, None, nthreads,
                         _config.min_per_thread, _config.isa)
    return y


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
    out = np.empty_like(c)
    _core.philox(c, out, k0, k1, int(rounds))
    return out

