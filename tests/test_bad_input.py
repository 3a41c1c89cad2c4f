"""Bad input: the right exception, a message that names the argument, and every array untouched."""
import re

import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import assert_same_bits, random_data

N = 1000


class Untouched:
    """Snapshots arrays and checks afterwards that every bit is as before."""

    def __init__(self, *arrays):
        self.arrays = arrays
        self.copies = [np.array(a, copy=True) for a in arrays]

    def check(self):
        for a, c in zip(self.arrays, self.copies):
            if a.dtype.kind == "f":
                assert_same_bits(a, c, "array after the failed call")
            else:
                assert a.dtype == c.dtype and np.array_equal(a, c), "array modified"


def _raises(exc, name, fn, *arrays):
    """fn() raises exc with `name` as a word in the message; arrays untouched."""
    guard = Untouched(*arrays)
    with pytest.raises(exc) as info:
        fn()
    assert re.search(rf"\b{name}\b", str(info.value)), (
        f"message {str(info.value)!r} does not name {name!r}")
    guard.check()


def _x(dtype=np.float32, shape=(N,)):
    return random_data(shape, dtype, 1)


BAD_P = [float("nan"), float("inf"), float("-inf"), -0.1, -1e-300, 1.0 + 2**-52, 1.5, 2.0,
         np.float32("nan"), -1]


# ------------------------------------------------------------------ p


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_bad_p_forward(p):
    x = _x()
    _raises(ValueError, "p", lambda: cd.dropout(x, p, seed=1), x)


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_bad_p_forward_in_place_and_out(p):
    x = _x()
    out = np.full_like(x, 3.0)
    _raises(ValueError, "p", lambda: cd.dropout(x, p, seed=1, out=x), x)
    _raises(ValueError, "p", lambda: cd.dropout(x, p, seed=1, out=out), x, out)


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_bad_p_backward_bool_mask(p):
    g = _x()
    mask = np.ones(N, bool)
    _raises(ValueError, "p", lambda: cd.dropout_backward(g, mask, p=p), g, mask)


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_bad_p_generator(p):
    g = cd.Generator(1)
    x = _x()
    _raises(ValueError, "p", lambda: g.dropout(x, p), x)


# ------------------------------------------------------------------ dtypes

BAD_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.bool_, np.complex64, np.complex128, object]


def _typed(dtype):
    if dtype is object:
        a = np.empty(N, object)
        a[:] = [float(i) for i in range(N)]
        return a
    return (np.arange(N) % 3).astype(dtype)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_dtype_forward(dtype):
    x = _typed(dtype)
    _raises(TypeError, "x", lambda: cd.dropout(x, 0.5, seed=1), x)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_dtype_forward_in_place(dtype):
    x = _typed(dtype)
    _raises(TypeError, "x", lambda: cd.dropout(x, 0.5, seed=1, out=x), x)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_dtype_forward_identity_cases(dtype):
    """No silent pass-through either when p == 0 or training=False."""
    x = _typed(dtype)
    _raises(TypeError, "x", lambda: cd.dropout(x, 0.0, seed=1), x)
    _raises(TypeError, "x", lambda: cd.dropout(x, 0.5, seed=1, training=False), x)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_dtype_backward(dtype):
    g = _typed(dtype)
    mask = np.ones(N, bool)
    _, key = cd.dropout(_x(), 0.5, seed=1, return_mask="key")
    _raises(TypeError, "grad", lambda: cd.dropout_backward(g, mask, p=0.5), g, mask)
    _raises(TypeError, "grad", lambda: cd.dropout_backward(g, key), g)


# ------------------------------------------------------------------ out


@pytest.mark.parametrize("shape", [(N + 1,), (N - 1,), (1, N), (N, 1), (), (2, N // 2)], ids=str)
def test_out_wrong_shape(shape):
    x = _x()
    out = np.full(shape, 5.0, np.float32)
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=out), x, out)


def test_out_wrong_shape_broadcastable_input():
    """out larger than x but broadcast-compatible is still a shape mismatch (result shape = x)."""
    x = _x(shape=(1, 10))
    out = np.full((4, 10), 5.0, np.float32)
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=out), x, out)


@pytest.mark.parametrize("x_dtype,out_dtype", [(np.float32, np.float64), (np.float64, np.float32),
                                               (np.float16, np.float32), (np.float32, np.float16),
                                               (np.float32, np.int32)], ids=str)
def test_out_wrong_dtype(x_dtype, out_dtype):
    x = _x(x_dtype)
    out = np.full(N, 5, out_dtype)
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=out), x, out)


def test_out_read_only():
    x = _x()
    out = np.full(N, 5.0, np.float32)
    out.flags.writeable = False
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=out), x, out)


def test_out_read_only_in_place():
    x = _x()
    x.flags.writeable = False
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=x), x)


def test_out_read_only_identity_cases():
    x = _x()
    out = np.full(N, 5.0, np.float32)
    out.flags.writeable = False
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.0, seed=1, out=out), x, out)
    _raises(ValueError, "out", lambda: cd.dropout(x, 0.5, seed=1, out=out, training=False), x, out)


def test_backward_out_wrong_shape_dtype_read_only():
    g = _x()
    mask = np.ones(N, bool)
    out = np.full(N + 1, 5.0, np.float32)
    _raises(ValueError, "out", lambda: cd.dropout_backward(g, mask, p=0.5, out=out), g, mask, out)
    out = np.full(N, 5.0, np.float64)
    _raises(ValueError, "out", lambda: cd.dropout_backward(g, mask, p=0.5, out=out), g, mask, out)
    out = np.full(N, 5.0, np.float32)
    out.flags.writeable = False
    _raises(ValueError, "out", lambda: cd.dropout_backward(g, mask, p=0.5, out=out), g, mask, out)


# ------------------------------------------------------------------ out overlapping x


def _overlap_cases(buf):
    return {
        "out=buf[1:], x=buf[:-1]": (buf[:-1], buf[1:]),
        "out=buf[:-1], x=buf[1:]": (buf[1:], buf[:-1]),
        "out=buf[::-1], x=buf": (buf, buf[::-1]),
        "out=buf[3:], x=buf[:-3]": (buf[:-3], buf[3:]),
        "out=buf[::2], x=buf[:n//2]": (buf[:len(buf) // 2], buf[::2][:len(buf) // 2]),
    }


@pytest.mark.parametrize("case", sorted(_overlap_cases(np.zeros(8))))
def test_out_partially_overlapping_x(case):
    """NumPy's rule for ufuncs: the result is as if x had been copied first (never an error)."""
    buf = random_data((4097,), np.float32, 2)
    x, out = _overlap_cases(buf)[case]
    expected = reference.dropout(x.copy(), 0.5, 3, 0, 1)
    y = cd.dropout(x, 0.5, seed=3, offset=1, out=out)
    assert y is out
    assert_same_bits(out, expected, "out overlapping x")


@pytest.mark.parametrize("case", sorted(_overlap_cases(np.zeros(8))))
def test_backward_out_partially_overlapping_grad(case):
    buf = random_data((4097,), np.float64, 3)
    g, out = _overlap_cases(buf)[case]
    _, key = cd.dropout(np.zeros(g.shape), 0.3, seed=4, return_mask="key")
    keep = reference.keep_mask(g.shape, 0.3, 4, 0, 0)
    expected = reference.apply_mask(g.copy(), keep, 0.3)
    y = cd.dropout_backward(g, key, out=out)
    assert y is out
    assert_same_bits(out, expected, "out overlapping grad")


# ------------------------------------------------------------------ masks


# (A mask of the same ndim with entries 1, e.g. (1,) for grad (N,), is a noise-shaped mask and is
# broadcast, so it is not in this list.)
@pytest.mark.parametrize("mask_shape", [(N + 1,), (N - 1,), (1, N), (N, 1), (2, N // 2), (), (2,)],
                         ids=str)
def test_bool_mask_shape_mismatch(mask_shape):
    g = _x()
    mask = np.ones(mask_shape, bool)
    guard = Untouched(g, mask)
    with pytest.raises(ValueError) as info:
        cd.dropout_backward(g, mask, p=0.5)
    assert re.search(r"\b(mask|grad)\b", str(info.value)), str(info.value)
    guard.check()


@pytest.mark.parametrize("form", ["bits", "key"])
@pytest.mark.parametrize("mask_shape", [(N + 1,), (N - 1,), (1, N), (2, N // 2), ()], ids=str)
def test_bits_key_mask_shape_mismatch(form, mask_shape):
    _, mask = cd.dropout(_x(shape=mask_shape), 0.5, seed=1, return_mask=form)
    g = _x()
    guard = Untouched(g)
    with pytest.raises(ValueError) as info:
        cd.dropout_backward(g, mask)
    assert re.search(r"\b(mask|grad)\b", str(info.value)), str(info.value)
    guard.check()


def test_bool_mask_without_p():
    g = _x()
    mask = np.ones(N, bool)
    _raises(ValueError, "p", lambda: cd.dropout_backward(g, mask), g, mask)
    out = np.full(N, 5.0, np.float32)
    _raises(ValueError, "p", lambda: cd.dropout_backward(g, mask, out=out), g, mask, out)


# ------------------------------------------------------------------ seed, stream, offset

BAD_U64 = [-1, -2**63, 2**64, 2**64 + 1, 2**100]


@pytest.mark.parametrize("value", BAD_U64)
@pytest.mark.parametrize("name", ["seed", "stream", "offset"])
def test_out_of_range_seed_stream_offset(name, value):
    x = _x()
    kwargs = {"seed": 1, name: value}
    _raises(ValueError, name, lambda: cd.dropout(x, 0.5, **kwargs), x)
    _raises(ValueError, name, lambda: cd.dropout(x, 0.5, out=x, **kwargs), x)


@pytest.mark.parametrize("shape", [(N,), (10, N // 10), (9,)], ids=str)
@pytest.mark.parametrize("excess", [1, 2, 8, "size-1"])
def test_offset_plus_size_beyond_2_64(shape, excess):
    x = _x(shape=shape)
    excess = x.size - 1 if excess == "size-1" else excess
    offset = 2**64 - x.size + excess  # < 2**64, but offset + size > 2**64
    assert offset < 2**64
    _raises(ValueError, "offset", lambda: cd.dropout(x, 0.5, seed=1, offset=offset), x)
    _raises(ValueError, "offset", lambda: cd.dropout(x, 0.5, seed=1, offset=offset, out=x), x)


def test_offset_plus_size_exactly_2_64_is_fine():
    x = _x()
    y = cd.dropout(x, 0.5, seed=1, offset=2**64 - N)
    assert_same_bits(y, reference.dropout(x, 0.5, 1, 0, 2**64 - N))


@pytest.mark.parametrize("value", BAD_U64)
def test_generator_and_module_seed_out_of_range(value):
    with pytest.raises(ValueError, match=r"\bseed\b"):
        cd.Generator(value)
    with pytest.raises(ValueError, match=r"\bseed\b"):
        cd.seed(value)


# ------------------------------------------------------------------ return_mask


@pytest.mark.parametrize("form", ["mask", "BOOL", "Bits", "", "keys", "bytes", "bitmask"])
def test_bad_return_mask(form):
    x = _x()
    _raises(ValueError, "return_mask", lambda: cd.dropout(x, 0.5, seed=1, return_mask=form), x)
    _raises(ValueError, "return_mask",
            lambda: cd.dropout(x, 0.5, seed=1, return_mask=form, out=x), x)
