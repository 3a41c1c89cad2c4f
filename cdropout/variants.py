"""Structured dropout (channels, time steps, whole samples) and dropout variants (alpha, Gaussian).

Every function here is index-addressed like format v1 (docs/stream-format.md): the random numbers
of element ``i`` of the mask (or noise) shape depend only on (seed, stream, offset + i, p), so the
results are the same for every thread count, chunking and kernel path. The structured forms and
alpha dropout use the format v1 keep bits themselves, drawn over a noise shape; Gaussian dropout
uses its own counter range of the same Philox stream (docs/variants.md gives the exact rule).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ._alpha_constants import ALPHA_PRIME, alpha_coefficients
from ._api import (Mask, _as_float_array, _check_out, _check_p, _check_threads, _mask_shape, _writable_target,
                   dropout, philox4x32)
from ._masks import BitMask, MaskKey, generate_bits, unpack
from ._seeding import U64, SeedLike, check_u64, resolve

__all__ = [
    "ALPHA_PRIME",
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

Result = Union[np.ndarray, Tuple[np.ndarray, Any]]

# --------------------------------------------------------------------------------------------
# Structured masks: the core's noise_shape path with the right noise shape.
# --------------------------------------------------------------------------------------------


def _channel_noise_shape(shape: Tuple[int, ...], spatial: int, name: str) -> Tuple[int, ...]:
    """(N, C, 1, ...) for a batched input, (C, 1, ...) for an unbatched one (PyTorch's rule)."""
    if len(shape) == spatial + 2:
        return (shape[0], shape[1]) + (1,) * spatial
    if len(shape) == spatial + 1:
        return (shape[0],) + (1,) * spatial
    dims = ("L",) if spatial == 1 else ("H", "W") if spatial == 2 else ("D", "H", "W")
    batched = ", ".join(("N", "C") + dims)
    unbatched = ", ".join(("C",) + dims)
    raise ValueError(
        f"{name} expects a {spatial + 2}-D ({batched}) or {spatial + 1}-D ({unbatched}) input, "
        f"got a {len(shape)}-D array of shape {shape}"
    )


def _channel_dropout(x: Any, p: float, spatial: int, name: str, kwargs: dict) -> Result:
    x = _as_float_array(x, "x")
    return dropout(x, p, noise_shape=_channel_noise_shape(x.shape, spatial, name), **kwargs)


def dropout1d(
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
    scale: bool = True,
) -> Result:
    """Channel dropout of 1-d feature maps: zero whole channels, like ``torch.nn.Dropout1d``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of shape (N, C, L), or unbatched (C, L).
    p : float
        Probability that a channel is zeroed, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, scale
        As in :func:`cdropout.dropout`. The mask is drawn over the noise shape (N, C, 1) (or
        (C, 1)), so a returned mask has that shape and `offset` counts channels.

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x is not 2-D or 3-D, or p is outside [0, 1].

    Notes
    -----
    Equals ``cdropout.dropout(x, p, noise_shape=(N, C, 1), ...)`` bit for bit;
    :func:`cdropout.dropout_backward` accepts the returned mask.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones((2, 4, 3), np.float32)
    >>> y, keep = cdropout.dropout1d(x, 0.5, seed=0, return_mask="bool")
    >>> keep.shape
    (2, 4, 1)
    >>> bool(np.all(y == np.where(keep, 2.0, 0.0)))
    True
    """
    kw = dict(seed=seed, stream=stream, offset=offset, training=training, out=out,
              return_mask=return_mask, num_threads=num_threads, scale=scale)
    return _channel_dropout(x, p, 1, "dropout1d", kw)


def dropout2d(
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
    scale: bool = True,
) -> Result:
    """Channel dropout of 2-d feature maps: zero whole channels, like ``torch.nn.Dropout2d``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of shape (N, C, H, W), or unbatched (C, H, W).
    p : float
        Probability that a channel is zeroed, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, scale
        As in :func:`cdropout.dropout`; the mask has the noise shape (N, C, 1, 1) (or (C, 1, 1)).

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x is not 3-D or 4-D, or p is outside [0, 1].

    Notes
    -----
    A 3-D input is the unbatched (C, H, W), as PyTorch's documentation announces (PyTorch itself
    still treats a 3-D input to ``dropout2d`` as (N, C, L) with a warning; use
    :func:`dropout1d` for that).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones((2, 3, 4, 4))
    >>> y = cdropout.dropout2d(x, 0.5, seed=1)
    >>> sorted({float(v) for v in y.reshape(6, 16).std(axis=1)})   # each channel is constant
    [0.0]
    """
    kw = dict(seed=seed, stream=stream, offset=offset, training=training, out=out,
              return_mask=return_mask, num_threads=num_threads, scale=scale)
    return _channel_dropout(x, p, 2, "dropout2d", kw)


def dropout3d(
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
    scale: bool = True,
) -> Result:
    """Channel dropout of 3-d feature maps: zero whole channels, like ``torch.nn.Dropout3d``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of shape (N, C, D, H, W), or unbatched (C, D, H, W).
    p : float
        Probability that a channel is zeroed, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, scale
        As in :func:`cdropout.dropout`; the mask has the noise shape (N, C, 1, 1, 1)
        (or (C, 1, 1, 1)).

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x is not 4-D or 5-D, or p is outside [0, 1].

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> y, key = cdropout.dropout3d(np.ones((1, 2, 2, 2, 2)), 0.5, seed=3, return_mask="key")
    >>> key.shape
    (1, 2, 1, 1, 1)
    """
    kw = dict(seed=seed, stream=stream, offset=offset, training=training, out=out,
              return_mask=return_mask, num_threads=num_threads, scale=scale)
    return _channel_dropout(x, p, 3, "dropout3d", kw)


def _normalize_axes(axes: Any, ndim: int, name: str) -> Tuple[int, ...]:
    if isinstance(axes, (numbers.Integral,)) and not isinstance(axes, (bool, np.bool_)):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints") from None
    result = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {a!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={a} is out of range for an array of {ndim} dimensions")
        result.append(a % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"{name} has repeated axes: {axes}")
    return tuple(result)


def variational_dropout(
    x: Any,
    p: float = 0.5,
    *,
    time_axis: Union[int, Sequence[int]] = 1,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    training: bool = True,
    out: Optional[np.ndarray] = None,
    return_mask: Optional[str] = None,
    num_threads: Optional[int] = None,
    scale: bool = True,
) -> Result:
    """Variational (recurrent) dropout: one mask shared by every step of the time axis.

    Gal & Ghahramani's dropout for sequences: the same units are dropped at every time step.

    Parameters
    ----------
    x : array_like
        float16/32/64, e.g. (N, T, F) batch-first sequences (the default ``time_axis=1``) or
        (T, N, F) with ``time_axis=0``.
    p : float
        Drop probability in [0, 1].
    time_axis : int or tuple of int
        The axis (or axes) the mask is shared over; negative values count from the end.
    seed, stream, offset, training, out, return_mask, num_threads, scale
        As in :func:`cdropout.dropout`. The mask is drawn over x's shape with `time_axis` set
        to 1.

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If `time_axis` is out of range (or repeated), or p is outside [0, 1].

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones((2, 5, 3), np.float32)             # (batch, time, features)
    >>> y = cdropout.variational_dropout(x, 0.5, seed=0)
    >>> bool(np.all(y == y[:, :1, :]))                  # the same at every time step
    True
    """
    x = _as_float_array(x, "x")
    axes = _normalize_axes(time_axis, x.ndim, "time_axis")
    ns = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
    return dropout(x, p, seed=seed, stream=stream, offset=offset, training=training, out=out,
                   return_mask=return_mask, num_threads=num_threads, noise_shape=ns, scale=scale)


def drop_path(
    x: Any,
    p: float,
    *,
    training: bool = True,
    scale_by_keep: bool = True,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    out: Optional[np.ndarray] = None,
    return_mask: Optional[str] = None,
    num_threads: Optional[int] = None,
) -> Result:
    """Stochastic depth: drop whole samples (axis 0) of a residual branch, as timm's ``drop_path``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of at least one dimension; axis 0 is the batch.
    p : float
        Probability that a sample's branch is dropped, in [0, 1].
    training : bool
        False returns x unchanged (whatever `scale_by_keep`), drawing no stream.
    scale_by_keep : bool
        Scale kept samples by 1/(1-p) (timm's default). False keeps them unscaled.
    seed, stream, offset, out, return_mask, num_threads
        As in :func:`cdropout.dropout`; the mask has the noise shape (N, 1, ..., 1): one keep
        decision per sample, and `offset` counts samples.

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x is 0-d (it has no batch axis), or p is outside [0, 1].

    Notes
    -----
    timm computes ``x * bernoulli(1-p) / (1-p)``; here dropped samples are +0.0 by selection,
    so NaN/Inf in a dropped sample do not leak, and p == 1 gives zeros as in timm.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones((4, 3), np.float32)
    >>> y, keep = cdropout.drop_path(x, 0.5, seed=2, return_mask="bool")
    >>> keep.shape
    (4, 1)
    >>> cdropout.drop_path(x, 0.5, training=False) is not x   # a copy, equal to x
    True
    """
    x = _as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("drop_path needs an array with a batch axis (axis 0), got a 0-d array")
    ns = (x.shape[0],) + (1,) * (x.ndim - 1)
    if not training:  # timm: the identity at inference, with or without scale_by_keep
        return dropout(x, p, training=False, out=out, return_mask=return_mask, noise_shape=ns)
    return dropout(x, p, seed=seed, stream=stream, offset=offset, out=out, return_mask=return_mask,
                   num_threads=num_threads, noise_shape=ns, scale=bool(scale_by_keep))


# --------------------------------------------------------------------------------------------
# Alpha dropout (SELU networks).
# --------------------------------------------------------------------------------------------

# ALPHA_PRIME (alpha' of SELU) and the constants (a, b, c), each correctly rounded from its exact
# expression (docs/variants.md), live in ._alpha_constants.
_alpha_coefficients = alpha_coefficients


def _keep_of(seed: int, stream: int, offset: int, p: float, mshape: Tuple[int, ...], nthreads: int
             ) -> Tuple[np.ndarray, np.ndarray]:
    bits = generate_bits(seed, stream, offset, p, mshape, nthreads)
    return bits, unpack(bits, mshape)


def _mask_result(form: Optional[str], seed: int, stream: int, offset: int, p: float,
                 mshape: Tuple[int, ...], bits: np.ndarray, keep: np.ndarray) -> Any:
    if form == "key":
        return MaskKey(seed, stream, offset, p, mshape, True)
    if form == "bits":
        return BitMask(bits, mshape, p, True)
    return keep


def _alpha(x: Any, p: float, noise_shape: Any, seed: SeedLike, stream: Optional[int], offset: int,
           training: bool, out: Optional[np.ndarray], return_mask: Optional[str],
           num_threads: Optional[int]) -> Result:
    x = _as_float_array(x, "x")
    p = _check_p(p)
    if return_mask not in (None, "bool", "bits", "key"):
        raise ValueError(f"return_mask must be one of (None, 'bool', 'bits', 'key'), got {return_mask!r}")
    mshape = _mask_shape(noise_shape, x.shape)
    if not training or p == 0.0:
        return dropout(x, p, training=False, out=out, return_mask=return_mask, noise_shape=mshape,
                       offset=offset)
    out = _check_out(out, x)
    offset = check_u64(offset, "offset")
    n = math.prod(mshape)
    if offset + n > U64:
        raise ValueError(f"offset + mask size must be at most 2**64, got {offset} + {n}")
    nthreads = _check_threads(num_threads)
    seed_, stream_ = resolve(seed, stream)
    x, y = _writable_target(x, out)
    bits, keep = _keep_of(seed_, stream_, offset, p, mshape, nthreads)
    if p == 1.0:  # PyTorch: p == 1 gives zeros (a would be infinite)
        y[...] = 0
    else:
        a, b, c = _alpha_coefficients(p)
        work = np.float32 if x.dtype == np.float16 else x.dtype.type
        if work is x.dtype.type:
            np.multiply(x, work(a), out=y)
            np.add(y, work(b), out=y)
        else:  # float16: a*x + b in float32, rounded once
            y[...] = np.multiply(x, work(a), dtype=work) + work(b)
        np.copyto(y, x.dtype.type(c), where=~keep)
    if return_mask is None:
        return y
    return y, _mask_result(return_mask, seed_, stream_, offset, p, mshape, bits, keep)


def alpha_dropout(
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
) -> Result:
    """Alpha dropout for self-normalizing (SELU) networks, as ``torch.nn.AlphaDropout``.

    Dropped elements are set to SELU's negative saturation alpha' and an affine map restores
    zero mean and unit variance for standard-normal inputs:
    ``y = a * (x * keep + alpha' * (1 - keep)) + b`` with ``alpha' = -1.7580993408473766``,
    ``a = ((1 - p) * (1 + p * alpha'**2)) ** -0.5`` and ``b = -a * alpha' * p``.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    p : float
        Drop probability in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, noise_shape
        As in :func:`cdropout.dropout`: the keep mask is exactly format v1's mask of
        (seed, stream, offset, p) over the noise shape.

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given. Use
        :func:`alpha_dropout_backward` with that mask (not :func:`cdropout.dropout_backward`,
        whose scale is 1/(1-p)).

    Notes
    -----
    a, b and c = a*alpha' + b are each the float64 nearest to their exact value (computed with
    exact integer arithmetic, see docs/variants.md); kept elements are ``x * a + b`` in the
    dtype's arithmetic with a and b rounded to the dtype (float16: in float32 with float32 a and
    b, rounded once), dropped ones are c rounded to the dtype, by selection (NaN/Inf there do
    not leak). ``training=False`` or ``p == 0`` is the identity;
    ``p == 1`` gives zeros, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.random.default_rng(0).standard_normal(100_000)
    >>> y = cdropout.alpha_dropout(x, 0.2, seed=0)
    >>> abs(float(y.mean())) < 0.02 and abs(float(y.std()) - 1.0) < 0.02
    True
    """
    return _alpha(x, p, noise_shape, seed, stream, offset, training, out, return_mask, num_threads)


def feature_alpha_dropout(
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
) -> Result:
    """Alpha dropout of whole channels, as ``torch.nn.FeatureAlphaDropout``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of at least 2 dimensions (N, C, ...).
    p : float
        Probability that a channel is dropped, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads
        As in :func:`alpha_dropout`, with the noise shape (N, C, 1, ..., 1).

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x has fewer than 2 dimensions.

    Notes
    -----
    Like PyTorch, the first two axes are the ones with a mask entry each; an unbatched
    (C, D, H, W) input therefore gets one decision per (C, D) pair, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> y, keep = cdropout.feature_alpha_dropout(np.zeros((2, 3, 4)), 0.5, seed=0, return_mask="bool")
    >>> keep.shape
    (2, 3, 1)
    """
    xa = _as_float_array(x, "x")
    if xa.ndim < 2:
        raise ValueError(f"feature_alpha_dropout needs at least 2 dimensions (N, C, ...), got shape {xa.shape}")
    ns = xa.shape[:2] + (1,) * (xa.ndim - 2)
    return _alpha(xa, p, ns, seed, stream, offset, training, out, return_mask, num_threads)


def alpha_dropout_backward(grad: Any, mask: Mask, *, p: Optional[float] = None,
                           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`alpha_dropout`: ``grad * a`` where kept, +0 where dropped.

    Parameters
    ----------
    grad : array_like
        float16/32/64 gradient of the forward's output.
    mask : numpy.ndarray of bool, BitMask or MaskKey
        The mask returned by the forward (noise-shaped masks broadcast).
    p : float, optional
        Required for a bool mask; must agree with the mask's p otherwise.
    out : numpy.ndarray, optional
        Where to write the result (``out=grad`` works in place).

    Returns
    -------
    numpy.ndarray
        The input gradient (zeros when p == 1).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.linspace(-1, 1, 10)
    >>> y, key = cdropout.alpha_dropout(x, 0.3, seed=4, return_mask="key")
    >>> g = cdropout.alpha_dropout_backward(np.ones_like(x), key)
    >>> bool(np.all((g == 0) == (key.to_bool() == False)))
    True
    """
    grad = _as_float_array(grad, "grad")
    out = _check_out(out, grad)
    if isinstance(mask, (MaskKey, BitMask)):
        if p is not None and float(p) != mask.p:
            raise ValueError(f"p={p} disagrees with the mask's p={mask.p}")
        p_, keep = mask.p, mask.to_bool()
    else:
        if p is None:
            raise ValueError("p is required with a bool mask")
        keep = np.asarray(mask)
        if keep.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array, a BitMask or a MaskKey, not {keep.dtype}")
        p_ = _check_p(p)
    _mask_shape(keep.shape, grad.shape, "mask shape")
    grad, y = _writable_target(grad, out)
    a = 0.0 if p_ >= 1.0 else _alpha_coefficients(p_)[0]
    prod = np.multiply(grad, grad.dtype.type(a))
    y[...] = 0
    np.copyto(y, prod, where=keep)
    return y


# --------------------------------------------------------------------------------------------
# Gaussian dropout: multiplicative N(1, p/(1-p)) noise from a counter-based normal.
# --------------------------------------------------------------------------------------------

#: Bit 30 of Philox counter word 1 marks Gaussian-noise blocks (format v1 uses bit 31 for its
#: secondary draws and leaves bits 29-31 zero in primary ones).
GAUSSIAN_COUNTER_BIT = 0x40000000
_CHUNK_BLOCKS = 1 << 13      # blocks of 4 normals per step: temporaries stay in cache

# The normal deviates use only IEEE-754 binary64 operations that are correctly rounded on every
# platform (+, -, *, /, sqrt, exact integer -> float conversion, exact exponent/mantissa split),
# one NumPy ufunc per operation (so no fused multiply-add), in the order of docs/variants.md.
# No libm function (log, sin, cos, exp, pow) is involved: those differ between platforms and
# NumPy's SIMD builds in the last bit. The constants are the exact doubles written in hex.
_X = float.fromhex
_TWO_M30 = _X("0x1p-30")
_SQRT2 = _X("0x1.6a09e667f3bcdp+0")           # float64(sqrt(2)), the mantissa split point
_LN2_HI = _X("0x1.62e42fee00000p-1")           # ln 2 to 32 bits (k * _LN2_HI is exact)
_LN2_LO = _X("0x1.a39ef35793c76p-33")          # float64(ln 2 - _LN2_HI)
#: log(f) = 2s + 2s * (s^2 * Q(s^2)), s = (f-1)/(f+1); Q's coefficients are float64(1/(2j+3)).
_LOG_Q = tuple(_X(h) for h in (
    "0x1.5555555555555p-2", "0x1.999999999999ap-3", "0x1.2492492492492p-3",
    "0x1.c71c71c71c71cp-4", "0x1.745d1745d1746p-4", "0x1.3b13b13b13b14p-4",
    "0x1.1111111111111p-4", "0x1.e1e1e1e1e1e1ep-5", "0x1.af286bca1af28p-5"))
#: sin(pi*t/2) = t * S(t^2), S's coefficients float64((-1)^j (pi/2)^(2j+1) / (2j+1)!), j = 0..8.
_SIN_S = tuple(_X(h) for h in (
    "0x1.921fb54442d18p+0", "-0x1.4abbce625be53p-1", "0x1.466bc6775aae2p-4",
    "-0x1.32d2cce62bd86p-8", "0x1.50783487ee782p-13", "-0x1.e3074fde8871fp-19",
    "0x1.e8f434d018d63p-25", "-0x1.6fadb9f155744p-31", "0x1.aaec32af93359p-38"))
#: cos(pi*t/2) = C(t^2), C's coefficients float64((-1)^j (pi/2)^(2j) / (2j)!), j = 0..8.
_COS_C = tuple(_X(h) for h in (
    "0x1.0000000000000p+0", "-0x1.3bd3cc9be45dep+0", "0x1.03c1f081b5ac4p-2",
    "-0x1.55d3c7e3cbffap-6", "0x1.e1f506891babbp-11", "-0x1.a6d1f2a204a8cp-16",
    "0x1.f9d38a3763cc3p-22", "-0x1.b6e24f44b128fp-28", "0x1.20c62c2f2d7f5p-34"))
del _X
_EXP_MASK = np.uint64(0x7FF0000000000000)
_MANT_MASK = np.uint64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.uint64(0x3FF0000000000000)


def _horner(x: np.ndarray, coefficients: Tuple[float, ...]) -> np.ndarray:
    """c[-1]; then acc = acc * x + c[k] for k = len-2 .. 0, each step two rounded ufuncs."""
    acc = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc *= x
        acc += c
    return acc


def _neg_log_u1(a: np.ndarray) -> np.ndarray:
    """E = -log(u1), u1 = (a + 1) * 2**-32, for uint32 words a (step 4 of docs/variants.md)."""
    n = a.astype(np.float64)
    n += 1.0                                                  # exact: an integer in [1, 2**32]
    bits = n.view(np.uint64)
    q = ((bits & _EXP_MASK) >> np.uint64(52)).astype(np.int64) - 1023
    f = ((bits & _MANT_MASK) | _ONE_BITS).view(np.float64)   # n = 2**q * f, f in [1, 2), exact
    big = f > _SQRT2
    f[big] *= 0.5                                             # exact; f in [2**-0.5, 2**0.5]
    q += big
    k = (32 - q).astype(np.float64)                           # u1 = 2**-K * f, K in 0..32
    s = f - 1.0                                               # exact (Sterbenz)
    s /= f + 1.0                                              # f + 1 exact (n has <= 32 bits)
    s2 = s * s
    v = _horner(s2, _LOG_Q)                                   # Q
    d = s + s
    v *= s2
    v *= d
    v += d                                                    # lf = log f = 2s + 2s*(s2*Q)
    lo = k * _LN2_LO
    lo -= v                                                   # K*LN2_LO - lf
    e = k * _LN2_HI                                           # exact
    e += lo
    return e


def _sincos_turn(b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of 2*pi * b / 2**32 for uint32 words b (step 5 of docs/variants.md)."""
    quadrant = b >> np.uint32(30)
    r = b & np.uint32(0x3FFFFFFF)
    reflect = r > np.uint32(0x20000000)
    r = np.where(reflect, np.uint32(0x40000000) - r, r)
    t = r.astype(np.float64)
    t *= _TWO_M30                                             # exact: t in [0, 1/2]
    t2 = t * t
    sin_t = _horner(t2, _SIN_S)
    sin_t *= t                                                # sin(pi*t/2)
    cos_t = _horner(t2, _COS_C)                               # cos(pi*t/2)
    swap = reflect ^ ((quadrant & np.uint32(1)) != 0)
    s = np.where(swap, cos_t, sin_t)
    c = np.where(swap, sin_t, cos_t)
    np.negative(s, out=s, where=quadrant >= np.uint32(2))
    np.negative(c, out=c, where=(quadrant == np.uint32(1)) | (quadrant == np.uint32(2)))
    return s, c


def _normals_from_words(w: np.ndarray) -> np.ndarray:
    """The four standard normals of each row of Philox words w (shape (nb, 4), uint32)."""
    e_ = _neg_log_u1(np.ascontiguousarray(w[:, 0::2]))
    e_ += e_                                                  # -2 log(u1), exact doubling
    r = np.sqrt(e_)
    s, c = _sincos_turn(np.ascontiguousarray(w[:, 1::2]))
    z = np.empty(w.shape, np.float64)
    np.multiply(r, c, out=z[:, 0::2])
    np.multiply(r, s, out=z[:, 1::2])
    return z


def _standard_normals(seed: int, stream: int, offset: int, n: int) -> np.ndarray:
    """z_e for e = offset .. offset+n-1 (float64), the rule of docs/variants.md."""
    z = np.empty(n, np.float64)
    if n == 0:
        return z
    key = (seed & 0xFFFFFFFF, seed >> 32)
    first, last = offset >> 2, (offset + n - 1) >> 2
    lo = offset & 3  # position of element 0 within its block
    pos = 0
    b0 = first
    while b0 <= last:
        nb = min(_CHUNK_BLOCKS, last - b0 + 1)
        blocks = np.arange(b0, b0 + nb, dtype=np.uint64)
        ctr = np.empty((nb, 4), np.uint32)
        ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
        ctr[:, 1] = (blocks >> np.uint64(32)) | np.uint64(GAUSSIAN_COUNTER_BIT)
        ctr[:, 2] = stream & 0xFFFFFFFF
        ctr[:, 3] = stream >> 32
        flat = _normals_from_words(philox4x32(ctr, key)).reshape(-1)
        start = lo if b0 == first else 0
        take = min(flat.size - start, n - pos)
        z[pos:pos + take] = flat[start:start + take]
        pos += take
        b0 += nb
    return z


def _gaussian_p(p: Any) -> float:
    p = _check_p(p)
    if p >= 1.0:
        raise ValueError("gaussian_dropout needs p < 1 (the noise variance p/(1-p) is infinite at p=1)")
    return p


def gaussian_noise(
    shape: Union[int, Sequence[int]],
    p: float,
    *,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    dtype: Any = np.float64,
) -> np.ndarray:
    """The multiplicative noise of :func:`gaussian_dropout`: ``1 + sqrt(p/(1-p)) * z``.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the noise (element i, in C order, has global index offset + i).
    p : float
        Dropout-equivalent rate in [0, 1): the noise has mean 1 and variance p/(1-p).
    seed, stream, offset
        As in :func:`cdropout.dropout`.
    dtype : float16, float32 or float64
        The noise is computed in float64 and rounded once to this dtype.

    Returns
    -------
    numpy.ndarray
        The noise, of `shape` and `dtype`.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> m = cdropout.gaussian_noise(100_000, 0.5, seed=0)
    >>> abs(float(m.mean()) - 1) < 0.02 and abs(float(m.var()) - 1) < 0.03
    True
    """
    if isinstance(shape, (int, np.integer)):
        dims: Tuple[int, ...] = (int(shape),)
    else:
        dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative entries, got {dims}")
    dt = np.dtype(dtype)
    if dt not in (np.float16, np.float32, np.float64):
        raise TypeError(f"dtype must be float16, float32 or float64, not {dt}")
    p = _gaussian_p(p)
    offset = check_u64(offset, "offset")
    n = math.prod(dims)
    if offset + n > U64:
        raise ValueError(f"offset + size must be at most 2**64, got {offset} + {n}")
    seed_, stream_ = resolve(seed, stream)
    return _noise(seed_, stream_, offset, p, dims, dt)


def _noise(seed: int, stream: int, offset: int, p: float, shape: Tuple[int, ...], dt: np.dtype) -> np.ndarray:
    sigma = math.sqrt(p / (1.0 - p))
    z = _standard_normals(seed, stream, offset, math.prod(shape))
    z *= sigma
    z += 1.0
    return z.astype(dt, copy=False).reshape(shape)


def gaussian_dropout(
    x: Any,
    p: float = 0.5,
    *,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    training: bool = True,
    out: Optional[np.ndarray] = None,
    return_mask: Optional[str] = None,
    noise_shape: Optional[Sequence[int]] = None,
) -> Result:
    """Gaussian dropout: multiply by noise ``N(1, p/(1-p))`` (Srivastava et al.; Keras' GaussianDropout).

    Parameters
    ----------
    x : array_like
        float16, float32 or float64, any shape.
    p : float
        Rate in [0, 1): the noise has the variance p/(1-p) of inverted dropout's multiplier.
    seed, stream, offset, training, out, noise_shape
        As in :func:`cdropout.dropout`. The noise is drawn over the noise shape and broadcast.
    return_mask : {None, 'noise', 'key'}
        Also return the noise (an array of the noise shape and x's dtype) or a
        :class:`cdropout.MaskKey` that regenerates it (see :func:`gaussian_dropout_backward`).

    Returns
    -------
    y : numpy.ndarray
        ``x * noise`` in x's dtype (float16 multiplies in float32 and rounds once), or
        ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If p is outside [0, 1).

    Notes
    -----
    The standard normal of element e is Box-Muller on the Philox4x32-10 words of block
    ``e >> 2`` with bit 30 of counter word 1 set, a counter range format v1 never uses, so it is
    independent of the dropout mask of the same (seed, stream). Its log, sin and cos are fixed
    polynomials after an exact range reduction, evaluated with correctly rounded float64
    operations only (no libm), so the noise is bit-identical on every machine and NumPy build.
    docs/variants.md gives the rule, constants and evaluation order.
    ``training=False`` or ``p == 0`` is the identity.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.full(8, 2.0)
    >>> y, noise = cdropout.gaussian_dropout(x, 0.1, seed=0, return_mask="noise")
    >>> np.array_equal(y, x * noise)
    True
    """
    x = _as_float_array(x, "x")
    p = _gaussian_p(p)
    if return_mask not in (None, "noise", "key"):
        raise ValueError(f"return_mask must be one of (None, 'noise', 'key'), got {return_mask!r}")
    out = _check_out(out, x)
    mshape = _mask_shape(noise_shape, x.shape)
    offset = check_u64(offset, "offset")
    n = math.prod(mshape)
    if offset + n > U64:
        raise ValueError(f"offset + mask size must be at most 2**64, got {offset} + {n}")
    if not training or p == 0.0:
        y = np.copy(x) if out is None else out
        if out is not None and out is not x:
            np.copyto(out, x)
        if return_mask is None:
            return y
        if return_mask == "key":
            return y, MaskKey(0, 0, offset, 0.0, mshape, True)
        return y, np.ones(mshape, x.dtype)
    seed_, stream_ = resolve(seed, stream)
    x, y = _writable_target(x, out)
    noise = _noise(seed_, stream_, offset, p, mshape, x.dtype)
    np.multiply(x, noise, out=y)
    if return_mask is None:
        return y
    if return_mask == "key":
        return y, MaskKey(seed_, stream_, offset, p, mshape, True)
    return y, noise


def gaussian_dropout_backward(grad: Any, mask: Union[np.ndarray, MaskKey], *,
                              out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`gaussian_dropout`: ``grad * noise``.

    Parameters
    ----------
    grad : array_like
        float16/32/64 gradient of the forward's output.
    mask : numpy.ndarray or MaskKey
        The forward's noise (``return_mask='noise'``) or its key (``return_mask='key'``,
        which regenerates the noise in grad's dtype).
    out : numpy.ndarray, optional
        Where to write the result (``out=grad`` works in place).

    Returns
    -------
    numpy.ndarray
        The input gradient, of grad's shape and dtype.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.arange(6.0)
    >>> y, key = cdropout.gaussian_dropout(x, 0.2, seed=9, return_mask="key")
    >>> np.array_equal(cdropout.gaussian_dropout_backward(x, key), y)
    True
    """
    grad = _as_float_array(grad, "grad")
    out = _check_out(out, grad)
    if isinstance(mask, MaskKey):
        _mask_shape(mask.shape, grad.shape, "mask shape")
        if mask.p == 0.0:
            noise = np.ones(mask.shape, grad.dtype)
        else:
            noise = _noise(mask.seed, mask.stream, mask.offset, _gaussian_p(mask.p), mask.shape, grad.dtype)
    elif isinstance(mask, BitMask):
        raise TypeError("a BitMask is not Gaussian noise: pass the noise array or its MaskKey")
    else:
        noise = np.asarray(mask)
        if noise.dtype.kind != "f":
            raise TypeError(f"mask must be the float noise array or a MaskKey, not {noise.dtype}")
        _mask_shape(noise.shape, grad.shape, "mask shape")
    grad, y = _writable_target(grad, out)
    np.multiply(grad, noise.astype(grad.dtype, copy=False), out=y)
    return y
