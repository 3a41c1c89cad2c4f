"""Alpha dropout for self-normalizing (SELU) networks: alpha_dropout, feature_alpha_dropout."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union, overload

import numpy as np

from ._alpha_constants import ALPHA_PRIME, alpha_coefficients
from ._api import Mask, apply_record, as_record, check_call, eval_result, mask_result
from ._apply import target
from ._checks import as_array, check_out, check_threads
from ._record import gen_bits, threshold, unpack
from ._seeding import SeedLike, resolve, resolve_format, validate

__all__ = ["ALPHA_PRIME", "alpha_dropout", "alpha_dropout_backward", "feature_alpha_dropout"]

Result = Union[np.ndarray, Tuple[np.ndarray, Any]]

# ALPHA_PRIME (alpha' of SELU) and the constants (a, b, c), each correctly rounded from its exact
# expression (docs/variants.md), live in ._alpha_constants.
_alpha_coefficients = alpha_coefficients


def _alpha(x: Any, p: float, ns: Any, seed: SeedLike, stream: Optional[int], offset: int,
           training: bool, out: Optional[np.ndarray], return_mask: Optional[str],
           num_threads: Optional[int], format: Optional[int]) -> Result:
    x, code, p, form, nthreads, out, mshape, _, offset = check_call(x, p, offset, out, return_mask,
                                                                    num_threads, ns, None)
    fmt = resolve_format(seed, format)
    if not training or p == 0.0:
        validate(seed, stream)
        return eval_result(x, out, form, offset, mshape, None, "alpha", None, fmt)
    seed_, stream_ = resolve(seed, stream)
    bits = gen_bits(seed_, stream_, threshold(p), offset, int(np.prod(mshape)), nthreads, fmt)
    keep = unpack(bits, mshape)
    x, y = target(x, out)
    with np.errstate(all="ignore"):  # overflow is a result, never an error half-way through
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
    if form is None:
        return y
    return y, mask_result(form, seed_, stream_, offset, p, mshape, True, "alpha", None, bits, x.shape, fmt)


@overload
def alpha_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                  offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                  return_mask: None = ..., num_threads: Optional[int] = ...,
                  noise_shape: Optional[Sequence[int]] = ..., format: Optional[int] = ...) -> np.ndarray: ...
@overload
def alpha_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                  offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: str,
                  num_threads: Optional[int] = ...,
                  noise_shape: Optional[Sequence[int]] = ..., format: Optional[int] = ...) -> Tuple[np.ndarray, Any]: ...
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
    format: Optional[int] = None,
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
    seed, stream, offset, training, out, return_mask, num_threads, noise_shape, format
        As in :func:`cdropout.dropout`: the keep mask is exactly :func:`cdropout.dropout`'s mask
        of (format, seed, stream, offset, p) over the noise shape.

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
    return _alpha(x, p, noise_shape, seed, stream, offset, training, out, return_mask, num_threads, format)


@overload
def feature_alpha_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                          offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                          return_mask: None = ..., num_threads: Optional[int] = ...,
                          format: Optional[int] = ...) -> np.ndarray: ...
@overload
def feature_alpha_dropout(x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                          offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                          return_mask: str, num_threads: Optional[int] = ...,
                          format: Optional[int] = ...) -> Tuple[np.ndarray, Any]: ...
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
    format: Optional[int] = None,
) -> Result:
    """Alpha dropout of whole channels, as ``torch.nn.FeatureAlphaDropout``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of at least 2 dimensions (N, C, ...).
    p : float
        Probability that a channel is dropped, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, format
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
    xa = as_array(x, "x")[0]
    if xa.ndim < 2:
        raise ValueError(f"feature_alpha_dropout needs at least 2 dimensions (N, C, ...), got shape {xa.shape}")
    ns = xa.shape[:2] + (1,) * (xa.ndim - 2)
    return _alpha(xa, p, ns, seed, stream, offset, training, out, return_mask, num_threads, format)


def alpha_dropout_backward(grad: Any, mask: Mask, *, p: Optional[float] = None,
                           out: Optional[np.ndarray] = None, num_threads: Optional[int] = None) -> np.ndarray:
    """Gradient of :func:`alpha_dropout`: ``grad * a`` where kept, +0 where dropped.

    Parameters
    ----------
    grad : array_like
        float16/32/64 gradient of the forward's output.
    mask : numpy.ndarray of bool, BitMask or MaskKey
        The mask returned by the forward (noise-shaped masks broadcast); a record must be of
        kind 'alpha' (a mask of another operation raises ValueError). A key regenerates the
        mask with its own format (its `version`).
    p : float, optional
        Required for a bool mask; must agree with the mask's p otherwise.
    out : numpy.ndarray, optional
        Where to write the result (``out=grad`` works in place).
    num_threads : int, optional
        OpenMP threads for this call.

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
    grad, code = as_array(grad, "grad")
    rec = as_record(mask, p, None, "alpha")
    nthreads = check_threads(num_threads)
    out = check_out(out, grad)
    return apply_record(grad, out, rec, nthreads, None, code)
