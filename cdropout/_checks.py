"""Argument checks shared by every entry point (a leaf module: it imports no other cdropout module
but the compiled core).

Each check returns the normalised value or raises TypeError/ValueError naming the argument, before
anything is written. Callers check user input once, here, and pass plain values inward.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _core

U64 = 1 << 64
#: A count far above the cores is clamped rather than handed to OpenMP (libgomp exits the
#: process when it cannot create a thread); results do not depend on the thread count. The rule
#: is the C core's, read once here.
MAX_THREADS = _core.thread_limit()
MASK_FORMS = (None, "bool", "bits", "key")

Shape = Tuple[int, ...]


def check_u64(value: Any, name: str) -> int:
    """`value` as a Python int in [0, 2**64), or a TypeError/ValueError naming `name`."""
    if type(value) is int and 0 <= value < U64:  # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    value = int(value)
    if not 0 <= value < U64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def check_real(value: Any, name: str) -> float:
    """Any real scalar (Python or NumPy, or a 0-d real array) as a float; bools are rejected."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    return float(value)


def check_p(p: Any, name: str = "p") -> float:
    """A drop probability in [0, 1] as a float (NaN is rejected)."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, fast
        return p
    p = check_real(p, name)
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return p


def check_threads(num_threads: Any) -> int:
    """num_threads as the core's count: None -> 0 (the default), else an int >= 1 (clamped)."""
    if num_threads is None:
        return 0
    if type(num_threads) is int and num_threads >= 1:  # the common case, fast
        return num_threads if num_threads <= MAX_THREADS else MAX_THREADS
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be a positive int or None, not {type(num_threads).__name__}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    return min(int(num_threads), MAX_THREADS)


def check_form(form: Any, forms: Tuple[Optional[str], ...] = MASK_FORMS) -> Optional[str]:
    """return_mask: one of `forms`."""
    if form is None or (type(form) is str and form in forms):
        return form
    raise ValueError(f"return_mask must be one of {forms}, got {form!r}")


def as_array(x: Any, name: str) -> Tuple[np.ndarray, int]:
    """(array, dtype code) of an array_like of float16/32/64: 0, 1, 2 as in the core.

    A masked array is rejected (its mask would be ignored). Errors of the conversion other than
    TypeError/ValueError (MemoryError, RecursionError, ...) propagate unchanged.
    """
    if type(x) is not np.ndarray:
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{name} must not be a masked array (its mask would be ignored)")
        if _is_grad_tensor(x):
            raise TypeError(f"{name} is a torch.Tensor that requires grad: use cdropout.torch, "
                            "which differentiates through dropout")
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array_like of floats: {exc}") from None
    return _core.operand(x, name)


def _is_grad_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and bool(getattr(x, "requires_grad", False))


def check_out(out: Any, like: np.ndarray, name: str = "out") -> Optional[np.ndarray]:
    """`out` if it can receive a result shaped and typed like `like`; None stays None."""
    if out is None:
        return None
    if type(out) is not np.ndarray and isinstance(out, np.ma.MaskedArray):
        raise TypeError(f"{name} must not be a masked array (its mask would be ignored)")
    return _core.check_out(out, like, name)


def noise_shape(ns: Any, shape: Shape, name: str = "noise_shape") -> Shape:
    """The mask shape of a TF-style noise shape for an array of `shape`.

    `ns` broadcasts to `shape` (TensorFlow's rule): it may have fewer entries (aligned on the
    right), each entry is 1 or the size of its axis, and a None entry takes that size. The
    result has one entry per axis of `shape`.
    """
    if ns is None or (type(ns) is tuple and ns == shape and all(type(d) is int for d in ns)):
        return shape
    if isinstance(ns, (str, bytes)) or not hasattr(ns, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints (or None entries), not {type(ns).__name__}")
    entries = tuple(ns)
    if len(entries) > len(shape):
        raise ValueError(f"{name} {entries} does not broadcast to {shape}: it has more entries than dimensions")
    pad = len(shape) - len(entries)
    out = [1] * pad
    for d, s in zip(entries, shape[pad:]):
        if d is None:
            out.append(s)
            continue
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise TypeError(f"{name} must be a sequence of ints (or None entries), got {d!r}")
        d = int(d)
        if d != 1 and d != s:
            raise ValueError(f"{name} {entries} does not broadcast to {shape}: each entry must be 1 or the size")
        out.append(d)
    return tuple(out)


def check_shape(shape: Any, name: str = "shape") -> Shape:
    """A shape: a sequence of ints in [0, 2**64) (an int alone is a 1-d shape)."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, not {type(shape).__name__}")
    return tuple(check_u64(d, name) for d in shape)


def check_span(offset: Any, n: int, what: str = "mask size") -> int:
    """offset as a u64 with offset + n <= 2**64 (every mask index fits the format)."""
    offset = check_u64(offset, "offset")
    if offset + n > U64:
        raise ValueError(f"offset + {what} must be at most 2**64, got {offset} + {n}")
    return offset


def check_index(index: Any, shape: Shape) -> Tuple[Shape, Shape]:
    """index=(global_shape, block_origin) of a block of `shape`: the block lies inside."""
    try:
        global_shape, origin = index
    except (TypeError, ValueError):
        raise TypeError("index must be a pair (global_shape, block_origin)") from None
    g = check_shape(global_shape, "index global_shape")
    o = check_shape(origin, "index block_origin")
    if len(g) != len(shape) or len(o) != len(shape):
        raise ValueError(f"index global_shape {g} and block_origin {o} need one entry per dimension "
                         f"of the block's shape {shape}")
    for gk, ok, bk in zip(g, o, shape):
        if ok + bk > gk:
            raise ValueError(f"the block of shape {shape} at origin {o} does not fit in global_shape {g}")
    return g, o


def check_axes(axes: Any, ndim: int, name: str) -> Tuple[int, ...]:
    """An axis or tuple of axes of an ndim-d array, normalised to [0, ndim), none repeated."""
    if isinstance(axes, numbers.Integral) and not isinstance(axes, (bool, np.bool_)):
        axes = (axes,)
    if isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__"):
        raise TypeError(f"{name} must be an int or a tuple of ints")
    axes = tuple(axes)
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


def size(shape: Sequence[int]) -> int:
    return math.prod(shape)
