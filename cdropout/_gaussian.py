"""Gaussian dropout: multiply by noise N(1, p/(1-p)) drawn from a counter-based normal."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union, overload

import numpy as np

from ._api import check_call, eval_result, record_shape
from ._apply import target
from ._checks import as_array, check_out, check_p, check_shape, check_span, noise_shape
from ._normals import _standard_normals
from ._record import MaskKey
from ._seeding import SeedLike, resolve, validate

__all__ = ["gaussian_dropout", "gaussian_dropout_backward", "gaussian_noise"]

Result = Union[np.ndarray, Tuple[np.ndarray, Any]]
_FORMS = (None, "noise", "key")


def _gaussian_p(p: Any) -> float:
    p = check_p(p)
    if p >= 1.0:
        raise ValueError("gaussian_dropout needs p < 1 (the noise variance p/(1-p) is infinite at p=1)")
    return p


def _noise(seed: int, stream: int, offset: int, p: float, shape: Tuple[int, ...], dt: np.dtype) -> np.ndarray:
    sigma = math.sqrt(p / (1.0 - p))
    z = _standard_normals(seed, stream, offset, math.prod(shape))
    z *= sigma
    z += 1.0
    with np.errstate(all="ignore"):
        return z.astype(dt, copy=False).reshape(shape)


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
    dims = check_shape(shape)
    dt = np.dtype(dtype)
    if dt not in (np.float16, np.float32, np.float64):
        raise TypeError(f"dtype must be float16, float32 or float64, not {dt}")
    p = _gaussian_p(p)
    offset = check_span(offset, math.prod(dims), "size")
    seed_, stream_ = resolve(seed, stream)
    return _noise(seed_, stream_, offset, p, dims, dt)


@overload
def gaussian_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                     offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                     return_mask: None = ..., noise_shape: Optional[Sequence[int]] = ...) -> np.ndarray: ...
@overload
def gaussian_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                     offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                     return_mask: str,
                     noise_shape: Optional[Sequence[int]] = ...) -> Tuple[np.ndarray, Any]: ...
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
    ``e >> 2`` with bit 30 of counter word 1 set, a counter range the masks never use, so it is
    independent of the dropout mask of the same (seed, stream). The noise has this one rule in
    every stream format: there is no ``format=``, a format-2 :class:`cdropout.Generator` only
    gives the call its stream, and a returned key has version 1. Its log, sin and cos are fixed
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
    x, code, p, form, _, out, mshape, _, offset = check_call(x, p, offset, out, return_mask, None, noise_shape,
                                                             None, _FORMS)
    p = _gaussian_p(p)
    if not training or p == 0.0:
        validate(seed, stream)
        if form == "noise":
            return eval_result(x, out, None, offset, mshape, None, "gaussian"), np.ones(mshape, x.dtype)
        return eval_result(x, out, form, offset, mshape, None, "gaussian")
    seed_, stream_ = resolve(seed, stream)
    noise = _noise(seed_, stream_, offset, p, mshape, x.dtype)
    x, y = target(x, out)
    with np.errstate(all="ignore"):  # underflow/overflow are results, never errors half-way
        np.multiply(x, noise, out=y)
    if form is None:
        return y
    if form == "key":
        return y, MaskKey._make(seed_, stream_, offset, p, mshape, True, "gaussian", None, 1)
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
    grad = as_array(grad, "grad")[0]
    out = check_out(out, grad)
    if isinstance(mask, MaskKey):
        mask.check_kind("gaussian")
        if mask.index is not None:
            raise ValueError("gaussian_dropout_backward does not take a block key (index=)")
        mshape, _ = record_shape(mask, grad.shape, None)
        if mask.p == 0.0:
            noise = np.ones(mshape, grad.dtype)
        else:
            noise = _noise(mask.seed, mask.stream, mask.offset, mask.p, mshape, grad.dtype)
    elif isinstance(mask, np.ndarray) and mask.dtype.kind == "f":
        noise_shape(mask.shape, grad.shape, "mask shape")
        noise = mask
    else:
        what = f"a {mask.dtype} array" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"mask must be the float noise array or a 'gaussian' MaskKey of gaussian_dropout, "
                        f"not {what}")
    grad, y = target(grad, out)
    with np.errstate(all="ignore"):
        np.multiply(grad, noise.astype(grad.dtype, copy=False), out=y)
    return y
