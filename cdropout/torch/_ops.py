"""The ``cdropout::dropout`` operator: registered with ``torch.library`` (kernel, fake kernel,
autograd formula, vmap rule), so torch.compile, torch.export and torch.vmap see one opaque op.

Schema: ``cdropout::dropout(Tensor x, Tensor key, float p, int[] mask_shape, bool scale) -> Tensor``

- ``key``: an int64 tensor ``[seed, stream, offset, format]`` (seed, stream and offset each the
  two's-complement bit pattern of a 64-bit unsigned value; format the stream format, 1 or 2). A
  key of three elements ``[seed, stream, offset]`` is format 1 (the keys of earlier releases).
  Drawing the key is the caller's job (outside the op), so the op is a pure function of its
  arguments: compiled graphs, exported programs and the backward all see the same mask for the
  same key.
- ``mask_shape``: ``[]`` for a mask of x's shape, otherwise a noise shape of x's rank (each entry
  1 or x's size) that is broadcast over x.
- ``scale``: kept elements are multiplied by 1/(1-p) rounded to x's dtype (else by 1).

The backward saves only ``key`` (a 4-element tensor) and applies the same op to the gradient,
which regenerates the mask of the key's format: forward plus backward is two passes over the data.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import _config, _core
from .._apply import constants, mask_map
from .._formats import FORMAT_VERSION, check_format
from .._record import gen_bits

__all__ = ["dropout_op", "apply_", "dtype_code", "to_key"]

_U64 = 1 << 64
_I64 = 1 << 63
_CODES = {torch.float16: 0, torch.float32: 1, torch.float64: 2, torch.bfloat16: 3}


def dtype_code(dtype: torch.dtype) -> Optional[int]:
    """The C dtype code of a torch dtype (src_c/kernels.h), or None when unsupported."""
    return _CODES.get(dtype)


def _signed(v: int) -> int:
    return v - _U64 if v >= _I64 else v


def to_key(seed: int, stream: int, offset: int, fmt: int = FORMAT_VERSION) -> torch.Tensor:
    """The op's key tensor for unsigned 64-bit (seed, stream, offset) and stream format `fmt`."""
    return torch.tensor([_signed(seed), _signed(stream), _signed(offset), fmt], dtype=torch.int64)


def _numpy_view(t: torch.Tensor, code: int) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (bfloat16 as int16: the kernel gets the code)."""
    t = t.detach()
    return (t.view(torch.int16) if code == 3 else t).numpy()


def check_args(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: Sequence[int]) -> None:
    """The op's own argument checks (it is public: torch.ops.cdropout.dropout)."""
    torch._check(x.dtype in _CODES, lambda: f"x must be float16, bfloat16, float32 or float64, not {x.dtype}")
    torch._check(key.dtype == torch.int64 and key.dim() == 1 and key.shape[0] in (3, 4),
                 lambda: "key must be an int64 tensor of 4 elements [seed, stream, offset, format] "
                         "(or 3: format 1)")
    torch._check(0.0 <= p <= 1.0, lambda: f"p must be in [0, 1], got {p}")
    torch._check(len(mask_shape) == 0 or (len(mask_shape) == x.dim() and all(
        m == 1 or m == d for m, d in zip(mask_shape, x.shape))),
        lambda: f"mask_shape {list(mask_shape)} does not broadcast to {tuple(x.shape)}")


def apply_(x: torch.Tensor, y: torch.Tensor, key: torch.Tensor, p: float, mask_shape: Sequence[int],
           scale: bool) -> None:
    """Write the dropout of x with `key` into y (same shape and dtype; y may be x). No autograd.

    x must not have its neg bit set (the caller resolves it); y must be dense or be x. The
    constants, mask addressing and bit generation are the NumPy path's (cdropout._apply); the
    C kernels run on ``torch.get_num_threads()`` threads (the result does not depend on it).
    """
    code = _CODES[x.dtype]
    values = key.tolist()
    seed, stream, offset = (v % _U64 for v in values[:3])
    fmt = check_format(values[3], "format (key[3])") if len(values) == 4 else 1
    s, T = constants(p, code, scale)
    shape = tuple(x.shape)
    ms = tuple(mask_shape) if len(mask_shape) else shape
    xn, yn = _numpy_view(x, code), _numpy_view(y, code)
    nthreads, mpt, isa, bf16 = torch.get_num_threads(), _config.min_per_thread, _config.isa, int(code == 3)
    if ms == shape:
        _core.apply_key(xn, yn, s, seed, stream, T, offset, None, None, nthreads, mpt, isa, bf16=bf16, fmt=fmt)
    else:  # noise shape: the small mask's bits, broadcast with zero mask strides
        bits = gen_bits(seed, stream, T, offset, math.prod(ms), nthreads, fmt)
        mbase, mstrides = mask_map(shape, ms, None)
        _core.apply_bits(xn, yn, s, bits, mbase, mstrides, nthreads, mpt, isa, bf16=bf16)


_NP_STORAGE = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
               torch.bfloat16: np.int16}


def empty_like(x: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(x)`` (same shape and strides) in memory NumPy allocates: NumPy asks the
    kernel for huge pages on large arrays, so a fresh output costs a few page faults, not one per
    4 KiB page (measured: two live 4 MiB outputs cost 3x one with torch's allocator, 2x with NumPy's)."""
    if x.is_contiguous():  # the common case: C order, no meta tensor needed
        buf = torch.from_numpy(np.empty(tuple(x.shape), _NP_STORAGE[x.dtype]))
        return buf.view(torch.bfloat16) if x.dtype == torch.bfloat16 else buf
    like = torch.empty_like(x, device="meta")
    buf = torch.from_numpy(np.empty(x.numel(), _NP_STORAGE[x.dtype]))
    if x.dtype == torch.bfloat16:
        buf = buf.view(torch.bfloat16)
    return buf.as_strided(like.shape, like.stride())


@torch.library.custom_op("cdropout::dropout", mutates_args=(), device_types="cpu")
def dropout_op(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int], scale: bool) -> torch.Tensor:
    """Dropout of x with the mask of `key` (see the module docstring)."""
    check_args(x, key, p, mask_shape)
    y = empty_like(x)
    apply_(x.resolve_neg(), y, key, p, mask_shape, scale)
    return y


@dropout_op.register_fake
def _(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int], scale: bool) -> torch.Tensor:
    check_args(x, key, p, mask_shape)
    return torch.empty_like(x)


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    _, key, p, mask_shape, scale = inputs
    ctx.save_for_backward(key)  # the only thing saved: 3 integers
    ctx.p, ctx.mask_shape, ctx.scale = p, mask_shape, scale


def _backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], None, None, None, None]:
    (key,) = ctx.saved_tensors
    # d(keep ? x*s : 0)/dx = keep * s: the same op on the gradient, itself differentiable.
    return dropout_op(grad, key, ctx.p, ctx.mask_shape, ctx.scale), None, None, None, None


dropout_op.register_autograd(_backward, setup_context=_setup_context)


def _vmap_rule(info: Any, in_dims: Tuple[Optional[int], ...], x: torch.Tensor, key: torch.Tensor, p: float,
               mask_shape: List[int], scale: bool, fn: Any = None) -> Tuple[torch.Tensor, int]:
    """vmap: an unbatched key gives every sample the same mask (randomness 'same' or 'error', so
    ``vmap(f)(X)[i] == f(X[i])``) or masks drawn over the stacked batch (randomness 'different':
    sample i uses mask indices ``offset + i * n .. offset + (i + 1) * n - 1``, as if dropout ran on
    the stacked tensor). A batched key gives sample i the mask of key i."""
    op = dropout_op if fn is None else fn
    x_bdim, key_bdim = in_dims[0], in_dims[1]
    B = info.batch_size
    if key_bdim is None:
        if x_bdim is None:
            return op(x, key, p, mask_shape, scale), 0  # pragma: no cover - vmap skips this
        xb = x.movedim(x_bdim, 0)
        per = list(mask_shape) if len(mask_shape) else list(xb.shape[1:])
        lead = B if info.randomness == "different" else 1
        return op(xb, key, p, [lead] + per, scale), 0
    keys = key.movedim(key_bdim, 0)
    xb = x.movedim(x_bdim, 0) if x_bdim is not None else x.unsqueeze(0).expand(B, *x.shape)
    return torch.stack([op(xb[i], keys[i], p, mask_shape, scale) for i in range(B)]), 0


dropout_op.register_vmap(_vmap_rule)


def tracing(x: torch.Tensor) -> bool:
    """True under torch.compile/export tracing, a dispatch mode, or for a tensor subclass (fake
    tensors): the registered op must be called then, so the tracer records it."""
    return (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0
            or not (type(x) is torch.Tensor or type(x) is torch.nn.Parameter))


def _forward(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int], scale: bool) -> torch.Tensor:
    y = empty_like(x)
    apply_(x.resolve_neg(), y, key, p, mask_shape, scale)
    return y


class _Eager(torch.autograd.Function):
    """The op's eager-mode twin: the same kernel and formulas with less dispatch overhead
    (forward + backward of 64 elements: about 60 us against 160 us through the registered op)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int],
                scale: bool) -> torch.Tensor:
        _setup_context(ctx, (x, key, p, mask_shape, scale), x)
        return _forward(x, key, p, mask_shape, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return _backward_any(ctx, grad)


class _EagerFunc(torch.autograd.Function):
    """The same for torch.func transforms (grad, vmap, ...), which need setup_context and a vmap
    rule; the op's registered autograd formula does not run under them."""

    @staticmethod
    def forward(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int],  # type: ignore[override]
                scale: bool) -> torch.Tensor:
        return _forward(x, key, p, mask_shape, scale)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
        _setup_context(ctx, inputs, output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        return _backward_any(ctx, grad)

    @staticmethod
    def vmap(info: Any, in_dims: Tuple[Optional[int], ...], x: torch.Tensor, key: torch.Tensor, p: float,
             mask_shape: List[int], scale: bool) -> Tuple[torch.Tensor, int]:
        return _vmap_rule(info, in_dims, x, key, p, mask_shape, scale, fn=_EagerFunc.apply)


def _backward_any(ctx: Any, grad: torch.Tensor) -> Any:
    (key,) = ctx.saved_tensors
    return dropout(grad, key, ctx.p, ctx.mask_shape, ctx.scale), None, None, None, None


def dropout(x: torch.Tensor, key: torch.Tensor, p: float, mask_shape: List[int], scale: bool) -> torch.Tensor:
    """The op, differentiable: the registered op while tracing, its eager twins otherwise."""
    if tracing(x):
        return dropout_op(x, key, p, mask_shape, scale)
    if torch._C._are_functorch_transforms_active():
        return _EagerFunc.apply(x, key, p, mask_shape, scale)  # type: ignore[no-any-return]
    if not (x.requires_grad and torch.is_grad_enabled()):  # nothing to record (e.g. in a backward)
        return _forward(x, key, p, mask_shape, scale)
    return _Eager.apply(x, key, p, mask_shape, scale)  # type: ignore[no-any-return]
