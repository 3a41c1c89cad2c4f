"""Arbitrary Python objects as inputs: the documented result or a clear TypeError/ValueError.

Documented (cdropout._api): x is converted with numpy.asarray; after conversion it must be
float16/32/64 in native byte order, else TypeError (no silent cast). Masked arrays are
rejected with TypeError (their mask would be ignored). The result is always a base-class
numpy.ndarray of the converted array's shape and dtype.
"""
import array
import decimal
import fractions

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, assert_same_mask

# np.matrix is deprecated, and these tests use it on purpose (a subclass users still pass).
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

P, SEED = 0.5, 12345


def _expected(x):
    a = np.asarray(x)
    keep = reference.keep_mask(a.shape, P, SEED)
    return reference.apply_mask(a, keep, P).reshape(a.shape)


class FloatSub(np.ndarray):
    """A trivial ndarray subclass."""


class HasArrayInterface:
    def __init__(self, a):
        self.__array_interface__ = a.__array_interface__
        self._keep = a


class HasDunderArray:
    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def _unaligned_f8():
    buf = np.zeros(4 * 8 + 1, np.uint8)
    a = np.frombuffer(buf.data, dtype=np.float64, offset=1, count=4)
    assert not a.flags.aligned
    return a


ACCEPTED = {
    "list": lambda: [1.0, -2.0, 3.5],
    "nested list": lambda: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
    "empty list": lambda: [],
    "nested empty list": lambda: [[], []],
    "python float": lambda: 1.5,
    "numpy float16 scalar": lambda: np.float16(2.0),
    "numpy float32 scalar": lambda: np.float32(2.0),
    "numpy float64 scalar": lambda: np.float64(-3.0),
    "0-d array": lambda: np.array(7.0, np.float32),
    "memoryview float64": lambda: memoryview(np.arange(10.0)),
    "memoryview float32 2-d": lambda: memoryview(np.ones((3, 4), np.float32)),
    "memoryview strided": lambda: memoryview(np.arange(20.0))[::3],
    "array.array d": lambda: array.array("d", [1.0, 2.0, 3.0]),
    "array.array f": lambda: array.array("f", [1.0, 2.0, 3.0]),
    "np.matrix": lambda: np.matrix([[1.0, 2.0], [3.0, 4.0]]),
    "ndarray subclass": lambda: np.arange(9.0).view(FloatSub),
    "recarray of float": lambda: np.rec.array(np.arange(5.0)),
    "unaligned float64": _unaligned_f8,
    "__array_interface__": lambda: HasArrayInterface(np.arange(6.0, dtype=np.float32)),
    "__array__": lambda: HasDunderArray(np.arange(6.0, dtype=np.float16)),
    "read-only array": lambda: np.broadcast_to(np.arange(3.0), (4, 3)),
}

REJECTED_TYPE = {
    "int list": lambda: [1, 2, 3],
    "python int": lambda: 3,
    "python bool": lambda: True,
    "python complex": lambda: 1j,
    "None": lambda: None,
    "str": lambda: "abc",
    "numeric str": lambda: "1.5",
    "bytes": lambda: b"abcd",
    "dict": lambda: {"a": 1.0},
    "set": lambda: {1.0},
    "generator": lambda: (float(i) for i in range(3)),
    "object": lambda: object(),
    "ragged list": lambda: [[1.0, 2.0], [3.0]],
    "deeply ragged list": lambda: [[[1.0]], [2.0]],
    "list with None": lambda: [1.0, None],
    "list with str": lambda: [1.0, "a"],
    "Decimal list": lambda: [decimal.Decimal("1.5")],
    "Fraction list": lambda: [fractions.Fraction(1, 2)],
    "memoryview of bytes": lambda: memoryview(b"abcdefgh"),
    "object array of floats": lambda: np.array([1.0, 2.0], dtype=object),
    "masked array": lambda: np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
    "masked array without masked values": lambda: np.ma.masked_array([1.0, 2.0]),
    "byte-swapped float64": lambda: np.arange(4.0).astype(">f8"),
    "byte-swapped float32": lambda: np.arange(4.0).astype(">f4"),
    "byte-swapped float16": lambda: np.arange(4.0).astype(">f2"),
    "bool array": lambda: np.ones(3, bool),
    "int32 array": lambda: np.ones(3, np.int32),
    "uint64 array": lambda: np.ones(3, np.uint64),
    "complex64 array": lambda: np.ones(3, np.complex64),
    "longdouble array": lambda: np.ones(3, np.longdouble),
    "datetime64 array": lambda: np.array(["2020-01-01"], dtype="M8[D]"),
    "timedelta64 array": lambda: np.array([1], dtype="m8[s]"),
    "structured float array": lambda: np.zeros(3, dtype=[("a", "f8")]),
    "void array": lambda: np.zeros(2, "V8"),
    "string array": lambda: np.array(["1.0", "2.0"]),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_objects_give_the_reference(name):
    obj = ACCEPTED[name]()
    expected = _expected(obj)
    y = cdropout.dropout(obj, P, seed=SEED)
    assert type(y) is np.ndarray, f"{name}: result is {type(y).__name__}, not a plain ndarray"
    assert_same_bits(y, expected, name)
    y2, m = cdropout.dropout(ACCEPTED[name](), P, seed=SEED, return_mask="bool")
    assert_same_mask(m, reference.keep_mask(np.shape(np.asarray(ACCEPTED[name]())), P, SEED))
    # backward with the same kind of object as grad
    g = cdropout.dropout_backward(ACCEPTED[name](), m, p=P)
    assert type(g) is np.ndarray
    assert_same_bits(g, expected, f"backward {name}")


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_objects_are_not_modified(name):
    obj = ACCEPTED[name]()
    before = np.array(np.asarray(obj), copy=True)
    cdropout.dropout(obj, P, seed=SEED)
    assert_same_bits(np.asarray(obj), before, f"{name} after the call")


@pytest.mark.parametrize("name", sorted(REJECTED_TYPE))
@pytest.mark.parametrize("training", [True, False])
def test_rejected_objects_raise_typeerror(name, training):
    obj = REJECTED_TYPE[name]()
    snapshot = np.array(obj, copy=True) if isinstance(obj, np.ndarray) else None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        def same(a, b):
            return a.tolist() == b.tolist()
    else:
        def same(a, b):
            return a.tobytes() == b.tobytes()
    with pytest.raises(TypeError) as info:
        cdropout.dropout(obj, P, seed=SEED, training=training)
    msg = str(info.value)
    assert "x" in msg and len(msg) < 400, msg  # names the argument, stays readable
    if snapshot is not None:
        assert same(np.asarray(obj), snapshot)


@pytest.mark.parametrize("name", sorted(REJECTED_TYPE))
@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_rejected_objects_as_grad(name, form):
    _, mask = cdropout.dropout(np.ones(3), P, seed=SEED, return_mask=form)
    with pytest.raises(TypeError):
        cdropout.dropout_backward(REJECTED_TYPE[name](), mask, p=P if form == "bool" else None)


def test_matrix_out_and_matrix_input():
    x = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    out = np.matrix(np.zeros((2, 2)))
    y = cdropout.dropout(x, P, seed=SEED, out=out)
    assert y is out
    assert_same_bits(np.asarray(y), _expected(x))


def test_masked_array_as_out_is_rejected_like_as_x():
    """A masked array is rejected as `out` as it is as `x` (its mask would be ignored), and
    nothing is written."""
    x = np.arange(4.0)
    out = np.ma.masked_array(np.zeros(4), mask=[0, 1, 0, 0])
    with pytest.raises(TypeError, match="masked array"):
        cdropout.dropout(x, P, seed=SEED, out=out)
    with pytest.raises(TypeError, match="masked array"):
        cdropout.dropout(out, P, seed=SEED)
    with pytest.raises(TypeError, match="masked array"):
        cdropout.dropout_backward(x, cdropout.MaskKey(1, 0, 0, P, (4,)), out=out)
    assert np.array_equal(out.data, np.zeros(4))


@pytest.mark.parametrize("mask", [
    [True, False, True, False],           # list of bools: accepted with p
    np.array([1, 0, 1, 0], np.uint8),     # not bool: TypeError
    np.array([1.0, 0.0, 1.0, 0.0]),       # not bool: TypeError
    "1010",                                # TypeError
    None,                                  # TypeError (object) or ValueError
    [[True, False], [True, False]],       # wrong shape: ValueError
])
def test_backward_mask_objects(mask):
    g = np.arange(1.0, 5.0)
    if isinstance(mask, list) and np.asarray(mask).shape == g.shape:
        res = cdropout.dropout_backward(g, mask, p=P)
        expected = reference.apply_mask(g, np.asarray(mask), P)
        assert_same_bits(res, expected)
        return
    with pytest.raises((TypeError, ValueError)):
        cdropout.dropout_backward(g, mask, p=P)


@pytest.mark.parametrize("counter,key,exc", [
    ([0, 0, 0, 0], [0, 0], None),
    ([[0, 0, 0, 0], [1, 2, 3, 4]], (np.uint32(1), np.uint64(2)), None),
    (np.zeros((0, 4), np.uint32), [0, 0], None),
    ([0.0, 0.0, 0.0, 0.0], [0, 0], TypeError),
    ([0, 0, 0], [0, 0], ValueError),
    (0, [0, 0], ValueError),
    ([0, 0, 0, -1], [0, 0], ValueError),
    ([0, 0, 0, 2 ** 32], [0, 0], ValueError),
    ([0, 0, 0, 0], [0], ValueError),
    ([0, 0, 0, 0], [0, 0, 0], ValueError),
    ([0, 0, 0, 0], [2 ** 32, 0], ValueError),
    ([0, 0, 0, 0], [-1, 0], ValueError),
    ([0, 0, 0, 0], [0.5, 0], TypeError),
    ([0, 0, 0, 0], None, TypeError),
    ("abcd", [0, 0], TypeError),
    ([None, 0, 0, 0], [0, 0], TypeError),
])
def test_philox4x32_inputs(counter, key, exc):
    if exc is None:
        out = cdropout.philox4x32(counter, key)
        c = np.asarray(counter, dtype=np.uint64).astype(np.uint32)
        assert out.dtype == np.uint32 and out.shape == c.shape
        assert np.array_equal(out, reference.philox4x32(c, [int(k) for k in key]))
    else:
        with pytest.raises(exc):
            cdropout.philox4x32(counter, key)


@pytest.mark.parametrize("rounds", [-1, 17, 1.0, "10", True, None])
def test_philox4x32_bad_rounds(rounds):
    with pytest.raises((TypeError, ValueError)):
        cdropout.philox4x32([0, 0, 0, 0], [0, 0], rounds=rounds)


@pytest.mark.parametrize("kwargs,exc", [
    (dict(seed=-1), ValueError),
    (dict(seed=1.0), TypeError),
    (dict(stream=2 ** 64), ValueError),
    (dict(offset=2 ** 64 - 2), ValueError),      # offset + size past 2**64
    (dict(p=1.5), ValueError),
    (dict(p=float("nan")), ValueError),
    (dict(p="0.5"), TypeError),
    (dict(shape=(-1,)), ValueError),
    (dict(shape=(2.5,)), TypeError),
])
def test_maskkey_validates_its_fields(kwargs, exc):
    base = dict(seed=1, stream=0, offset=0, p=0.5, shape=(4,))
    base.update(kwargs)
    with pytest.raises(exc):
        cdropout.MaskKey(**base)


def test_maskkey_normalises_and_roundtrips():
    k = cdropout.MaskKey(np.uint64(5), np.int64(2), 3, np.float32(0.25), [2, np.int64(3)])
    assert k.shape == (2, 3) and type(k.seed) is int and k.p == 0.25
    hash(k)  # frozen dataclass with a tuple shape: hashable
    g = cdropout.dropout_backward(np.ones((2, 3)), k)
    keep = reference.keep_mask((2, 3), 0.25, 5, 2, 3)
    assert_same_bits(g, reference.apply_mask(np.ones((2, 3)), keep, 0.25))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_overflow_is_a_result_not_an_error_on_every_path(dtype):
    """With np.errstate(all='raise') (or warnings as errors) every path gives inf quietly,
    as the core path does: noise-shaped masks, bool-mask backward, classic eval scaling."""
    big = np.finfo(dtype).max
    x = np.full((4, 8), big, dtype)
    x[0, 0] = np.finfo(dtype).smallest_subnormal
    calls = {
        "core": lambda: cdropout.dropout(x, 0.5, seed=1),
        "noise_shape": lambda: cdropout.dropout(x, 0.5, seed=1, noise_shape=(4, 1)),
        "bool backward": lambda: cdropout.dropout_backward(x, np.ones(x.shape, bool), p=0.5),
        "bits backward": lambda: cdropout.dropout_backward(
            x, cdropout.dropout(x, 0.5, seed=1, return_mask="bits")[1]),
        "eval unscaled": lambda: cdropout.dropout(x, 0.5, training=False, scale=False),
    }
    expected = {name: f() for name, f in calls.items()}
    import warnings
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, f in calls.items():
            assert_same_bits(f(), expected[name], name)
