"""Structured dropout: whole channels (dropout1d/2d/3d), time steps (variational), samples (drop_path).

Each is :func:`cdropout.dropout` with a noise shape: the mask is the stream format's (``format=``,
1 or 2) over the noise shape, broadcast by the core with zero mask strides (no temporary the size
of the array).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Sequence, Tuple, Union, cast, overload

import numpy as np

from ._api import check_call, dropout, eval_result
from ._checks import as_array, check_axes
from ._seeding import SeedLike, resolve_format, validate

__all__ = ["dropout1d", "dropout2d", "dropout3d", "drop_path", "variational_dropout"]

Result = Union[np.ndarray, Tuple[np.ndarray, Any]]


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


_CHANNEL_DOC = """Channel dropout of {k}-d feature maps: zero whole channels, like ``torch.nn.Dropout{k}d``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of shape (N, C, {dims}), or unbatched (C, {dims}).
    p : float
        Probability that a channel is zeroed, in [0, 1].
    seed, stream, offset, training, out, return_mask, num_threads, scale, format
        As in :func:`cdropout.dropout`. The mask is drawn over the noise shape (N, C{ones})
        (or (C{ones})), so a returned mask has that shape and `offset` counts channels.

    Returns
    -------
    y : numpy.ndarray
        The result, or ``(y, mask)`` when `return_mask` is given.

    Raises
    ------
    ValueError
        If x is not {lo}-D or {hi}-D, or p is outside [0, 1].

    Notes
    -----
    Equals ``cdropout.dropout(x, p, noise_shape=(N, C{ones}), ...)`` bit for bit;
    :func:`cdropout.dropout_backward` accepts the returned mask.{extra}

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones((2, 3{example}), np.float32)
    >>> y, keep = cdropout.dropout{k}d(x, 0.5, seed=0, return_mask="bool")
    >>> keep.shape
    (2, 3{ones})
    >>> bool(np.all(y == np.where(keep, 2.0, 0.0)))          # whole channels kept or zeroed
    True
    """

_DIMS = {1: "L", 2: "H, W", 3: "D, H, W"}
_EXTRA = {2: """ A 3-D input is the unbatched (C, H, W), as PyTorch's documentation
    announces (PyTorch itself still treats a 3-D input to ``dropout2d`` as (N, C, L) with a
    warning; use :func:`dropout1d` for that)."""}


def _channel_dropout(spatial: int) -> Callable[..., Result]:
    """dropout1d, dropout2d or dropout3d: one function per number of spatial dimensions."""
    name = f"dropout{spatial}d"

    def channel_dropout(x: Any, p: float = 0.5, *, seed: SeedLike = None, stream: Optional[int] = None,
                        offset: int = 0, training: bool = True, out: Optional[np.ndarray] = None,
                        return_mask: Optional[str] = None, num_threads: Optional[int] = None,
                        scale: bool = True, format: Optional[int] = None) -> Result:
        xa = as_array(x, "x")[0]
        ns = _channel_noise_shape(xa.shape, spatial, name)
        return dropout(xa, p, seed=seed, stream=stream, offset=offset, training=training, out=out,
                       return_mask=return_mask, num_threads=num_threads, noise_shape=ns, scale=scale,
                       format=format)

    channel_dropout.__name__ = channel_dropout.__qualname__ = name
    channel_dropout.__doc__ = _CHANNEL_DOC.format(
        k=spatial, dims=_DIMS[spatial], ones=", 1" * spatial, lo=spatial + 1, hi=spatial + 2,
        extra=_EXTRA.get(spatial, ""), example=", 4" * spatial)
    return channel_dropout


class _ChannelDropout(Protocol):
    """The type of dropout1d/2d/3d: an array without return_mask, a tuple with it."""

    @overload
    def __call__(self, x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                 offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                 return_mask: None = ..., num_threads: Optional[int] = ..., scale: bool = ...,
                 format: Optional[int] = ...) -> np.ndarray: ...
    @overload
    def __call__(self, x: Any, p: float = ..., *, seed: SeedLike = ..., stream: Optional[int] = ...,
                 offset: int = ..., training: bool = ..., out: Optional[np.ndarray] = ...,
                 return_mask: str, num_threads: Optional[int] = ..., scale: bool = ...,
                 format: Optional[int] = ...) -> Tuple[np.ndarray, Any]: ...


dropout1d = cast(_ChannelDropout, _channel_dropout(1))
dropout2d = cast(_ChannelDropout, _channel_dropout(2))
dropout3d = cast(_ChannelDropout, _channel_dropout(3))


@overload
def variational_dropout(x: Any, p: float = ..., *, time_axis: Union[int, Sequence[int]] = ...,
                        seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
                        training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: None = ...,
                        num_threads: Optional[int] = ..., scale: bool = ...,
                        format: Optional[int] = ...) -> np.ndarray: ...
@overload
def variational_dropout(x: Any, p: float = ..., *, time_axis: Union[int, Sequence[int]] = ...,
                        seed: SeedLike = ..., stream: Optional[int] = ..., offset: int = ...,
                        training: bool = ..., out: Optional[np.ndarray] = ..., return_mask: str,
                        num_threads: Optional[int] = ..., scale: bool = ...,
                        format: Optional[int] = ...) -> Tuple[np.ndarray, Any]: ...
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
    format: Optional[int] = None,
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
    seed, stream, offset, training, out, return_mask, num_threads, scale, format
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
    xa = as_array(x, "x")[0]
    axes = check_axes(time_axis, xa.ndim, "time_axis")
    ns = tuple(1 if d in axes else s for d, s in enumerate(xa.shape))
    return dropout(xa, p, seed=seed, stream=stream, offset=offset, training=training, out=out,
                   return_mask=return_mask, num_threads=num_threads, noise_shape=ns, scale=scale, format=format)


@overload
def drop_path(x: Any, p: float, *, training: bool = ..., scale_by_keep: bool = ..., seed: SeedLike = ...,
              stream: Optional[int] = ..., offset: int = ..., out: Optional[np.ndarray] = ...,
              return_mask: None = ..., num_threads: Optional[int] = ...,
              format: Optional[int] = ...) -> np.ndarray: ...
@overload
def drop_path(x: Any, p: float, *, training: bool = ..., scale_by_keep: bool = ..., seed: SeedLike = ...,
              stream: Optional[int] = ..., offset: int = ..., out: Optional[np.ndarray] = ...,
              return_mask: str, num_threads: Optional[int] = ...,
              format: Optional[int] = ...) -> Tuple[np.ndarray, Any]: ...
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
    format: Optional[int] = None,
) -> Result:
    """Stochastic depth: drop whole samples (axis 0) of a residual branch, as timm's ``drop_path``.

    Parameters
    ----------
    x : array_like
        float16/32/64 of at least one dimension; axis 0 is the batch.
    p : float
        Probability that a sample's branch is dropped, in [0, 1].
    training : bool
        False returns x itself (whatever `scale_by_keep`), drawing no stream.
    scale_by_keep : bool
        Scale kept samples by 1/(1-p) (timm's default). False keeps them unscaled.
    seed, stream, offset, out, return_mask, num_threads, format
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
    >>> cdropout.drop_path(x, 0.5, training=False) is x       # inference: x itself
    True
    """
    xa = as_array(x, "x")[0]
    if xa.ndim == 0:
        raise ValueError("drop_path needs an array with a batch axis (axis 0), got a 0-d array")
    ns = (xa.shape[0],) + (1,) * (xa.ndim - 1)
    if not training:  # timm: the identity at inference, with or without scale_by_keep
        xa, _, _, form, _, out, mshape, _, offset = check_call(xa, p, offset, out, return_mask, num_threads,
                                                               ns, None)
        fmt = resolve_format(seed, format)
        validate(seed, stream)
        return eval_result(xa, out, form, offset, mshape, None, "bernoulli", None, fmt)
    return dropout(xa, p, seed=seed, stream=stream, offset=offset, out=out, return_mask=return_mask,
                   num_threads=num_threads, noise_shape=ns, scale=bool(scale_by_keep), format=format)
