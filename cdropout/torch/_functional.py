"""Functional forms with ``torch.nn.functional``'s names and signatures.

Every check runs before a key is drawn and before anything is written, so a failed call leaves
every tensor, and every generator, as it was.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._formats import FORMAT_VERSION, check_format
from .._seeding import Generator as _CdGenerator, resolve
from ._ops import _signed, apply_, dtype_code, to_key, tracing
from ._ops import dropout as dropout_op

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]

GeneratorLike = Union[torch.Generator, _CdGenerator, None]

_OVERLAP_MSG = ("unsupported operation: more than one element of the written-to tensor refers to a single "
                "memory location. Please clone() the tensor before performing the operation.")


def _check_p(p: Any) -> float:
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, fast
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, not {type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:  # also NaN; PyTorch's message
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


def _check_input(x: Any, inplace: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, not {type(x).__name__}")
    if dtype_code(x.dtype) is None:
        raise TypeError(f"input must have dtype float16, bfloat16, float32 or float64, not {x.dtype}")
    if x.device.type not in ("cpu", "meta"):
        raise ValueError(f"input must be a CPU tensor (cdropout runs on the CPU), got device {x.device}")
    if x.layout != torch.strided:
        raise TypeError(f"input must be a dense (strided) tensor, not {x.layout}")
    if inplace and x.device.type == "cpu" and not _is_traced(x) and torch._debug_has_internal_overlap(x) == 1:
        raise RuntimeError(_OVERLAP_MSG)  # PyTorch's check for in-place ops (expanded tensors)


def _is_traced(x: torch.Tensor) -> bool:
    """True when x must not be written through NumPy: tracing, dispatch modes, subclasses and
    functorch-wrapped (vmap, grad) tensors."""
    return tracing(x) or torch._C._functorch.is_functorch_wrapped_tensor(x)


def _u64(value: Any, name: str) -> int:
    """`value` as an int in [0, 2**64) (pure Python: torch.compile traces it)."""
    if type(value) is int and 0 <= value < 1 << 64:  # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 2**64), not {type(value).__name__}")
    value = int(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def _check_format(fmt: Any) -> Optional[int]:
    """format=: None (the generator's, else FORMAT_VERSION) or 1 or 2 (cdropout's one check)."""
    return None if fmt is None else check_format(fmt)


def _draw_key(generator: GeneratorLike, seed: Any, stream: Optional[int], offset: int,
              fmt: Optional[int] = None) -> torch.Tensor:
    """The op's key: from `seed`/`stream`, a generator, or torch's default CPU generator, with the
    stream format `fmt` (checked; None: a cdropout.Generator's format, else FORMAT_VERSION)."""
    if isinstance(seed, (torch.Generator, _CdGenerator)):
        if generator is not None:
            raise TypeError("give the generator as generator= or seed=, not both")
        generator, seed = seed, None
    if seed is not None:
        if generator is not None:
            raise TypeError("give either seed (a fixed mask) or generator, not both")
        s = _u64(seed, "seed")
        return to_key(s, 0 if stream is None else _u64(stream, "stream"), offset,
                      FORMAT_VERSION if fmt is None else fmt)
    if stream is not None:
        raise ValueError("stream is only allowed with an int seed")
    if isinstance(generator, _CdGenerator):
        if torch.compiler.is_compiling():
            raise RuntimeError("a cdropout.Generator cannot be used under torch.compile (its stream "
                               "counter would be frozen into the graph): use a seed or torch's generator")
        f = generator.format if fmt is None else fmt
        s, st = resolve(generator, None)
        return to_key(s, st, offset, f)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator, a cdropout.Generator or None, "
                        f"not {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got device {generator.device}")
    # 128 random bits from torch's generator (its default one when None) give seed and stream.
    sk = torch.randint(-(1 << 63), (1 << 63) - 1, (2,), dtype=torch.int64, generator=generator)
    tail = torch.tensor([_signed(offset), FORMAT_VERSION if fmt is None else fmt], dtype=torch.int64)
    return torch.cat([sk, tail])


def _keyed(x: torch.Tensor, p: float, inplace: bool, mask_shape: Sequence[int], scale: bool,
           key: torch.Tensor) -> torch.Tensor:
    """The op with autograd, out of place or in place."""
    ms = list(mask_shape)
    if not inplace:
        return dropout_op(x, key, p, ms, scale)
    if _is_traced(x) or x.is_neg():
        # copy_ runs PyTorch's in-place checks before it writes; under tracing this is what
        # functionalization produces anyway; a neg view is written back negated, as it must be.
        return x.copy_(dropout_op(x, key, p, ms, scale))
    if torch.is_grad_enabled() and x.requires_grad:
        # _Inplace.apply runs PyTorch's in-place checks (leaf, view of a leaf, multi-output view)
        # and records the node; only then is x written.
        out = _Inplace.apply(x, key, p, ms, scale)
    else:
        out = x
        torch.autograd.graph.increment_version(x)
    apply_(x, x, key, p, ms, scale)
    return out


class _Inplace(torch.autograd.Function):
    """Records in-place dropout in the graph without writing (the caller writes after apply)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: Any, scale: bool) -> torch.Tensor:
        ctx.mark_dirty(x)
        ctx.save_for_backward(key)
        ctx.p, ctx.mask_shape, ctx.scale = p, mask_shape, scale
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # pragma: no cover - run by autograd
        (key,) = ctx.saved_tensors
        return dropout_op(grad, key, ctx.p, ctx.mask_shape, ctx.scale), None, None, None, None


def _eval(x: torch.Tensor, p: float, scale: bool) -> torch.Tensor:
    """training=False: x itself; classic dropout (scale=False) multiplies by 1-p in x's dtype."""
    if scale:
        return x
    return x * torch.tensor(1.0 - p, dtype=x.dtype)  # factor rounded to the dtype, as in NumPy


def _check_offset(offset: Any, n: int) -> int:
    offset = _u64(offset, "offset")
    if offset + n > 1 << 64:
        raise ValueError(f"offset + mask size must be at most 2**64, got {offset} + {n}")
    return offset


def _noise_shape(noise_shape: Any, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    if noise_shape is None:
        return shape
    try:
        ns = tuple(operator_index(d) for d in noise_shape)
    except TypeError:
        raise TypeError("noise_shape must be a sequence of ints") from None
    if len(ns) != len(shape) or any(n != 1 and n != s for n, s in zip(ns, shape)):
        raise ValueError(f"noise_shape {ns} does not broadcast to {shape}: each entry must be 1 or the size")
    return ns


def operator_index(d: Any) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
        raise TypeError
    return int(d)


def dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: GeneratorLike = None,
    seed: Any = None,
    stream: Optional[int] = None,
    offset: int = 0,
    noise_shape: Optional[Sequence[int]] = None,
    scale: bool = True,
    format: Optional[int] = None,
) -> torch.Tensor:
    """``torch.nn.functional.dropout`` with cdropout's exact, reproducible masks.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of dtype float16, bfloat16, float32 or float64; any shape and strides.
    p : float
        Drop probability in [0, 1].
    training : bool
        False returns `input` itself (``input * (1 - p)``, the factor rounded to the dtype, when
        ``scale=False``).
    inplace : bool
        Write the result into `input`. Refused, with nothing written, where PyTorch refuses an
        in-place op: a leaf that requires grad (or a view of one, or an ``unbind()`` output)
        while grad mode is on, and tensors whose elements share memory (``expand()``).
    generator : torch.Generator or cdropout.Generator, optional
        Where the mask's key comes from (see Notes).
    seed : int, optional
        A fixed key: the same (seed, stream, offset) always gives the same mask.
    stream : int, optional
        Stream number in [0, 2**64), only with `seed` (default 0).
    offset : int
        Global index of the first element, as in :func:`cdropout.dropout`.
    noise_shape : sequence of int, optional
        Draw the mask over this shape (each entry 1 or the input's size) and broadcast it.
    scale : bool
        False: kept elements are not rescaled by 1/(1-p).
    format : {1, 2} or None
        The stream format (1: Philox4x32-10, 2: ARS-7; docs/stream-format.md). None: a
        :class:`cdropout.Generator`'s own format, else ``cdropout.FORMAT_VERSION``. The same
        (format, seed, stream, offset) gives the same mask as :func:`cdropout.dropout`.

    Returns
    -------
    torch.Tensor
        The result (`input` itself when `inplace`, or when ``training=False``); differentiable.

    Notes
    -----
    Seeding rule: with neither `seed` nor `generator`, each call draws 128 bits (seed and stream)
    from torch's default CPU generator, so ``torch.manual_seed(n)`` makes a run reproducible;
    a ``torch.Generator`` is used the same way; a :class:`cdropout.Generator` gives the call
    its next stream (not under torch.compile); an int `seed` fixes the mask. Only the key
    (seed, stream, offset, format) is saved for the backward, which regenerates the mask. Dropped
    elements are +0.0 even where the input is NaN or Inf. At ``p = 0`` the input itself is
    returned and no key is drawn, as in PyTorch. The C kernels run on ``torch.get_num_threads()``
    threads; the result does not depend on it.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> x = torch.ones(8, dtype=torch.float64, requires_grad=True)
    >>> y = ct.dropout(x, 0.5, seed=42)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> y.sum().backward()
    >>> torch.equal(x.grad, y.detach())
    True
    >>> _ = torch.manual_seed(0); a = ct.dropout(torch.ones(100))
    >>> _ = torch.manual_seed(0); b = ct.dropout(torch.ones(100))
    >>> torch.equal(a, b)
    True
    """
    p = _check_p(p)
    fmt = _check_format(format)
    if not training:
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, not {type(input).__name__}")
        return _eval(input, p, scale)
    _check_input(input, inplace)
    shape = tuple(input.shape)
    ms = _noise_shape(noise_shape, shape)
    offset = _check_offset(offset, math.prod(ms))
    if p == 0.0 and generator is None and seed is None and stream is None:
        return input  # PyTorch returns the input itself at p = 0
    key = _draw_key(generator, seed, stream, offset, fmt)
    return _keyed(input, p, bool(inplace), [] if ms == shape else ms, bool(scale), key)


def _feature_shape(x: torch.Tensor) -> Tuple[int, ...]:
    """(N, C, 1, ...) of feature dropout (PyTorch: at least 2 dimensions)."""
    if x.dim() < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    return tuple(x.shape[:2]) + (1,) * (x.dim() - 2)


def _channel(input: torch.Tensor, p: float, training: bool, inplace: bool, generator: GeneratorLike,
             seed: Any, stream: Optional[int], spatial: int, name: str, fmt: Optional[int]) -> torch.Tensor:
    p = _check_p(p)
    fmt = _check_format(fmt)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, not {type(input).__name__}")
    nd = input.dim()
    if spatial == 1 and nd not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {nd}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
                           "dimension, a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if spatial > 1 and nd not in (spatial + 1, spatial + 2):
        warnings.warn(f"{name}: Received a {nd}-D input to {name}, which is deprecated and will result in "
                      "an error in a future release (as in torch.nn.functional)", stacklevel=3)
    if spatial == 2 and nd == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L) (as in "
                      "torch.nn.functional)", stacklevel=3)
    if not training:
        return input
    unbatched = spatial != 2 and nd != spatial + 2  # PyTorch unsqueezes these (2d never does)
    shape = (1,) + tuple(input.shape) if unbatched else tuple(input.shape)
    if len(shape) < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    ms = shape[:2] + (1,) * (len(shape) - 2)
    if unbatched:
        ms = ms[1:]
    return dropout(input, p, True, inplace, generator=generator, seed=seed, stream=stream, noise_shape=ms,
                   format=fmt)


def dropout1d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: GeneratorLike = None, seed: Any = None, stream: Optional[int] = None,
              format: Optional[int] = None) -> torch.Tensor:
    """``torch.nn.functional.dropout1d``: zero whole channels of (N, C, L) or (C, L) inputs.

    `generator`, `seed`, `stream` and `format` are as in :func:`dropout`; the mask has the noise
    shape (N, C, 1) (or (C, 1)).

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.dropout1d(torch.ones(2, 3, 4), 0.5, seed=0)
    >>> bool((y == y[..., :1]).all())
    True
    """
    return _channel(input, p, training, inplace, generator, seed, stream, 1, "dropout1d", format)


def dropout2d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: GeneratorLike = None, seed: Any = None, stream: Optional[int] = None,
              format: Optional[int] = None) -> torch.Tensor:
    """``torch.nn.functional.dropout2d``: zero whole channels of (N, C, H, W) inputs.

    As in PyTorch, a 3-D input is treated as (N, C, L) (with PyTorch's warning).

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.dropout2d(torch.ones(2, 3, 4, 4), 0.5, seed=0)
    >>> bool((y == y[..., :1, :1]).all())
    True
    """
    return _channel(input, p, training, inplace, generator, seed, stream, 2, "dropout2d", format)


def dropout3d(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              generator: GeneratorLike = None, seed: Any = None, stream: Optional[int] = None,
              format: Optional[int] = None) -> torch.Tensor:
    """``torch.nn.functional.dropout3d``: zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.dropout3d(torch.ones(3, 2, 2, 2), 0.5, seed=0)
    >>> bool((y == y[:, :1, :1, :1]).all())
    True
    """
    return _channel(input, p, training, inplace, generator, seed, stream, 3, "dropout3d", format)


@torch.compiler.assume_constant_result  # torch.compile: evaluated once at trace time (p is a constant)
def _alpha_coefficients(p: float) -> Tuple[float, float, float]:
    """(a, b, c): kept -> a*x + b, dropped -> c, the same constants as cdropout.alpha_dropout."""
    from .._alpha import _alpha_coefficients

    return _alpha_coefficients(p)


def _alpha(input: torch.Tensor, p: float, training: bool, inplace: bool, generator: GeneratorLike,
           seed: Any, stream: Optional[int], feature: bool, fmt: Optional[int]) -> torch.Tensor:
    p = _check_p(p)
    fmt = _check_format(fmt)
    if not training or p == 0.0:
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, not {type(input).__name__}")
        return input
    _check_input(input, inplace)
    shape = tuple(input.shape)
    ms = _feature_shape(input) if feature else shape
    key = _draw_key(generator, seed, stream, 0, fmt)
    if p == 1.0:  # PyTorch: zeros
        y = input * torch.zeros((), dtype=input.dtype)
        return input.copy_(y) if inplace else y
    ones = torch.ones(ms, dtype=torch.float32)  # the keep mask: the op on ones, scale 1
    keep = dropout_op(ones, key, p, [], False) != 0
    a, b, c = _alpha_coefficients(p)
    work = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    kept = (input.to(work) * torch.tensor(a, dtype=work) + torch.tensor(b, dtype=work)).to(input.dtype)
    y = torch.where(keep, kept, torch.tensor(c, dtype=input.dtype))
    return input.copy_(y) if inplace else y


def alpha_dropout(input: torch.Tensor, p: float = 0.5, training: bool = False, inplace: bool = False, *,
                  generator: GeneratorLike = None, seed: Any = None, stream: Optional[int] = None,
                  format: Optional[int] = None) -> torch.Tensor:
    """``torch.nn.functional.alpha_dropout`` (SELU networks) with cdropout's masks.

    Kept elements become ``a*x + b``, dropped ones ``a*alpha' + b`` (the constants of
    :func:`cdropout.alpha_dropout`); the gradient is ``a`` where kept. As in PyTorch, `training`
    defaults to False. `generator`, `seed`, `stream` and `format` are as in :func:`dropout`.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.alpha_dropout(torch.zeros(1000), 0.2, training=True, seed=1)
    >>> len(set(y.tolist()))
    2
    """
    return _alpha(input, p, training, inplace, generator, seed, stream, False, format)


def feature_alpha_dropout(input: torch.Tensor, p: float = 0.5, training: bool = False, inplace: bool = False, *,
                          generator: GeneratorLike = None, seed: Any = None,
                          stream: Optional[int] = None, format: Optional[int] = None) -> torch.Tensor:
    """``torch.nn.functional.feature_alpha_dropout``: alpha dropout of whole channels (N, C, ...).

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.feature_alpha_dropout(torch.zeros(4, 3, 5), 0.5, training=True, seed=2)
    >>> bool((y == y[..., :1]).all())
    True
    """
    return _alpha(input, p, training, inplace, generator, seed, stream, True, format)


def scripted(input: torch.Tensor, p: float, training: bool, inplace: bool, spatial: int,
             fmt: int) -> torch.Tensor:
    """The modules' forward under torch.jit.script (TorchScript subset): key from torch's default
    generator; `spatial` -1 for element-wise dropout, else the channel dropout's spatial rank;
    `fmt` the stream format (the module's, resolved when it was made)."""
    if not training or p == 0.0:
        return input
    key = torch.cat([torch.randint(-9223372036854775807 - 1, 9223372036854775807, [2], dtype=torch.int64),
                     torch.tensor([0, fmt], dtype=torch.int64)])
    ms: List[int] = []
    if spatial >= 0:
        shape = input.shape
        nd = len(shape)
        if spatial != 2 and nd != spatial + 2:  # unbatched (C, ...)
            ms = [shape[0]] + [1] * (nd - 1)
        else:
            ms = [shape[0], shape[1]] + [1] * (nd - 2)
    y = torch.ops.cdropout.dropout(input, key, p, ms, True)
    if inplace:
        return input.copy_(y)
    return y
