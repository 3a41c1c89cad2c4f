"""PyTorch interop: cdropout's masks on CPU tensors, with autograd, without copies.

``import cdropout.torch`` needs PyTorch (``pip install 'cdropout[torch]'``); ``import cdropout``
never imports it. Tensors and NumPy arrays share memory both ways (``Tensor.numpy()`` and
``torch.from_numpy``), so the forward reads the input tensor's memory directly and the output
tensor owns the array cdropout wrote. Only the :class:`cdropout.MaskKey` (seed, stream, offset,
p, shape: a few integers) is kept for the backward, which regenerates the mask.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

try:
    import torch as _torch
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "cdropout.torch needs PyTorch, which is not installed: pip install 'cdropout[torch]' "
        "(or pip install torch). The rest of cdropout works without it."
    ) from _exc

import numpy as np

from ._api import _check_p, _mask_shape, dropout as _np_dropout
from ._record import MaskKey
from ._seeding import U64, SeedLike, Generator, check_u64, resolve

__all__ = ["Dropout", "DropoutFunction", "dropout"]

_DTYPES = (_torch.float16, _torch.float32, _torch.float64)


def _as_numpy(t: "_torch.Tensor", name: str) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy)."""
    if not isinstance(t, _torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU tensor (cdropout runs on the CPU), got device {t.device}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, not {t.dtype}")
    if t.layout != _torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, not {t.layout}")
    return t.detach().resolve_neg().numpy()


def _apply_key(x: "_torch.Tensor", key: MaskKey, inplace: bool) -> "_torch.Tensor":
    """y = dropout of x with the mask `key` stands for (no autograd here)."""
    xn = _as_numpy(x, "input")
    y = _np_dropout(xn, key.p, seed=key.seed, stream=key.stream, offset=key.offset, noise_shape=key.shape,
                    scale=key.scale, out=xn if inplace else None)
    return x if inplace else _torch.from_numpy(y)


class DropoutFunction(_torch.autograd.Function):
    """Autograd function of dropout with a given mask key: ``DropoutFunction.apply(x, key, inplace)``.

    The forward is :func:`cdropout.dropout` with the key's (seed, stream, offset, p, shape,
    scale); the backward applies the same function to the incoming gradient (the gradient of
    dropout is dropout with the same mask), so it is itself differentiable. Only `key` is saved.
    """

    @staticmethod
    def forward(ctx: Any, x: "_torch.Tensor", key: MaskKey, inplace: bool = False) -> "_torch.Tensor":
        y = _apply_key(x, key, inplace)
        if inplace:
            ctx.mark_dirty(x)
        ctx.key = key
        return y

    @staticmethod
    def backward(ctx: Any, grad: "_torch.Tensor") -> Any:
        return DropoutFunction.apply(grad, ctx.key, False), None, None


def dropout(
    x: "_torch.Tensor",
    p: float = 0.5,
    *,
    training: bool = True,
    inplace: bool = False,
    seed: SeedLike = None,
    stream: Optional[int] = None,
    offset: int = 0,
    noise_shape: Optional[Sequence[int]] = None,
    scale: bool = True,
) -> "_torch.Tensor":
    """Dropout of a CPU tensor with cdropout's masks, differentiable.

    Parameters
    ----------
    x : torch.Tensor
        CPU tensor of dtype float16, float32 or float64, any shape and strides.
    p : float
        Drop probability in [0, 1].
    training : bool
        False returns x itself (``x * (1 - p)`` when ``scale=False``), as ``F.dropout`` does.
    inplace : bool
        Write the result into x (x must not be a leaf that requires grad, as in PyTorch).
    seed, stream, offset, noise_shape, scale
        As in :func:`cdropout.dropout`: an int seed fixes the mask; a :class:`cdropout.Generator`
        (or None, the module's default generator) gives each call its next stream.

    Returns
    -------
    torch.Tensor
        The result; it shares memory with the array cdropout wrote (or is x when `inplace`).

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> x = torch.ones(8, dtype=torch.float64, requires_grad=True)
    >>> y = ct.dropout(x, 0.5, seed=42)
    >>> y.sum().backward()
    >>> torch.equal(x.grad, y.detach())
    True
    """
    p = _check_p(p)
    if not training:
        return x if scale else x * (1.0 - p)
    if not isinstance(x, _torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, not {type(x).__name__}")
    mshape = _mask_shape(noise_shape, tuple(x.shape))
    offset = check_u64(offset, "offset")
    n = 1
    for d in mshape:
        n *= d
    if offset + n > U64:
        raise ValueError(f"offset + mask size must be at most 2**64, got {offset} + {n}")
    _as_numpy(x, "x")  # type/device checks before a stream is drawn
    seed_, stream_ = resolve(seed, stream)
    key = MaskKey(seed_, stream_, offset, p, mshape, bool(scale))
    return DropoutFunction.apply(x, key, bool(inplace))


class Dropout(_torch.nn.Module):
    """``torch.nn.Dropout`` with cdropout's reproducible masks.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    inplace : bool
        Overwrite the input, as in ``torch.nn.Dropout``.
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        Source of the masks: each training forward takes the next stream of this module's
        :class:`cdropout.Generator` (made from an int/SeedSequence, from OS entropy for None, or
        the given Generator itself).

    Notes
    -----
    In eval mode (``module.eval()``) the forward returns its input. The generator's state is the
    module's extra state, so ``state_dict()``/``load_state_dict()`` resume a run with the same
    masks.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> m = ct.Dropout(0.25, seed=0)
    >>> x = torch.ones(4, 4)
    >>> y = m(x)
    >>> bool(((y == 0) | (y == torch.tensor(4 / 3))).all())
    True
    >>> torch.equal(m.eval()(x), x)
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False,
                 seed: Union[int, np.integer, np.random.SeedSequence, Generator, None] = None) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.inplace = bool(inplace)
        self.generator = seed if isinstance(seed, Generator) else Generator(seed)

    def forward(self, x: "_torch.Tensor") -> "_torch.Tensor":
        return dropout(x, self.p, training=self.training, inplace=self.inplace, seed=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"

    def get_extra_state(self) -> Dict[str, int]:
        return self.generator.get_state()

    def set_extra_state(self, state: Dict[str, int]) -> None:
        self.generator.set_state(state)
