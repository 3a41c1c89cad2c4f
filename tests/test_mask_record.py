"""The mask record and the Python layer's rules: each numbered test is a regression test of one
defect found by adversarial use (the number is the defect's), plus the record's own contract.

Expected values come from tests/reference.py (an independent NumPy implementation of the format)
or from the definition of the operation, never from cdropout itself.
"""
import pickle
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data

KINDS = {
    "bernoulli": (lambda x, **kw: cdropout.dropout(x, 0.3, **kw), cdropout.dropout_backward),
    "alpha": (lambda x, **kw: cdropout.alpha_dropout(x, 0.3, **kw), cdropout.alpha_dropout_backward),
    "gaussian": (lambda x, **kw: cdropout.gaussian_dropout(x, 0.3, **kw), cdropout.gaussian_dropout_backward),
}


# -- the record ------------------------------------------------------------------------------

def test_format_version_and_record_fields():
    assert cdropout.FORMAT_VERSION in (1, 2)  # the default format; records made without format= carry it
    v = cdropout.FORMAT_VERSION
    x = np.ones((4, 6), np.float32)
    _, key = cdropout.dropout(x, 0.25, seed=3, stream=2, offset=5, return_mask="key", noise_shape=(4, 1),
                              scale=False)
    assert (key.kind, key.version, key.p, key.scale, key.shape, key.offset, key.seed, key.stream, key.index) == \
        ("bernoulli", v, 0.25, False, (4, 1), 5, 3, 2, None)
    _, bits = cdropout.alpha_dropout(x, 0.25, seed=3, return_mask="bits")
    assert (bits.kind, bits.version, bits.p, bits.shape) == ("alpha", v, 0.25, (4, 6))
    assert np.array_equal(bits.data, reference.packbits(reference.keep_mask((4, 6), 0.25, 3, fmt=v)))


def test_records_are_immutable_and_picklable():
    _, key = cdropout.dropout(np.ones(10), 0.5, seed=1, return_mask="key")
    _, bits = cdropout.dropout(np.ones(10), 0.5, seed=1, return_mask="bits")
    for rec, field in ((key, "p"), (key, "seed"), (bits, "p"), (bits, "kind")):
        with pytest.raises(AttributeError):
            setattr(rec, field, 0)
    with pytest.raises(ValueError):  # the bits are read-only too
        bits.data[0] = 0
    k2 = pickle.loads(pickle.dumps(key))
    assert k2 == key and hash(k2) == hash(key) and k2 is not key
    b2 = pickle.loads(pickle.dumps(bits))
    assert np.array_equal(b2.data, bits.data) and (b2.shape, b2.p, b2.kind) == (bits.shape, bits.p, bits.kind)
    g = np.arange(10.0)
    assert_same_bits(cdropout.dropout_backward(g, b2), cdropout.dropout_backward(g, key))


def test_user_built_bits_are_copied():
    data = reference.packbits(reference.keep_mask((10,), 0.5, 1))
    m = cdropout.BitMask(data, (10,), 0.5)
    data[:] = 0  # changing the caller's array later does not change the record
    assert np.array_equal(m.to_bool(), reference.keep_mask((10,), 0.5, 1))


@pytest.mark.parametrize("kwargs,exc", [
    (dict(kind="dropout"), ValueError),
    (dict(kind=None), ValueError),
    (dict(version=3), ValueError),
    (dict(version=0), ValueError),
    (dict(version="1"), TypeError),
    (dict(version=2.0), TypeError),
    (dict(version=True), TypeError),
    (dict(scale=1), TypeError),
    (dict(index=((4,), (1,))), ValueError),     # shape (4,) fits, but origin... ok; wrong: see below
])
def test_maskkey_new_fields_are_validated(kwargs, exc):
    if "index" in kwargs:
        kwargs = dict(index=((5,), (6,)))  # origin past the global shape
    with pytest.raises(exc):
        cdropout.MaskKey(1, 0, 0, 0.5, (5,), **kwargs)


def test_gaussian_records():
    with pytest.raises(ValueError):
        cdropout.MaskKey(1, 0, 0, 1.0, (4,), kind="gaussian")
    with pytest.raises(ValueError):
        cdropout.BitMask(np.zeros(1, np.uint8), (4,), 0.5, kind="gaussian")


# -- defect 1: scale=False masks of every form back-propagate with the forward's scale ----------

@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_1_layer_without_scale_same_gradient_for_every_form(form):
    layer = cdropout.Dropout(0.5, seed=0, mask=form, scale=False)
    x = random_data((6, 7), np.float32, seed=1)
    layer(x)
    layer.p = 0.25  # changed after the forward: the backward still uses the forward's p and scale
    g = layer.backward(np.ones_like(x))
    keep = reference.keep_mask(x.shape, 0.5, layer.generator.seed, 0)
    assert_same_bits(g, np.where(keep, np.float32(1), np.float32(0)))


def test_1_bool_masks_of_unscaled_forwards():
    x = random_data((4, 3, 5), np.float64, seed=2)
    g = random_data((4, 3, 5), np.float64, seed=3)
    y, keep = cdropout.drop_path(x, 0.5, seed=4, scale_by_keep=False, return_mask="bool")
    assert_same_bits(cdropout.dropout_backward(g, keep, p=0.5, scale=False), np.where(keep, g, 0.0))
    y, keep = cdropout.variational_dropout(x, 0.3, seed=5, scale=False, return_mask="bool")
    assert_same_bits(cdropout.dropout_backward(g, keep, p=0.3, scale=False), np.where(keep, g, 0.0))
    # a record's own scale is used; a contradicting scale= is an error, not a silent choice
    _, key = cdropout.dropout(x, 0.5, seed=4, scale=False, return_mask="key")
    with pytest.raises(ValueError, match="scale"):
        cdropout.dropout_backward(g, key, scale=True)


# -- defect 2: a backward rejects a mask of another kind, naming both --------------------------

_FOREIGN = [(made_by, given_to, form) for made_by in KINDS for given_to in KINDS for form in ("key", "bits")
            if made_by != given_to and not (form == "bits" and made_by == "gaussian")]  # gaussian: key only


@pytest.mark.parametrize("made_by,given_to,form", _FOREIGN)
def test_2_backward_rejects_other_kinds(made_by, given_to, form):
    forward, _ = KINDS[made_by]
    _, backward = KINDS[given_to]
    x = np.ones(16)
    _, mask = forward(x, seed=1, return_mask=form)
    g = np.ones(16)
    if form == "bits" and given_to == "gaussian":
        with pytest.raises(TypeError):
            backward(g, mask)
        return
    with pytest.raises(ValueError) as info:
        backward(g, mask, out=g)
    assert repr(made_by) in str(info.value) and repr(given_to) in str(info.value)
    assert np.array_equal(g, np.ones(16))


# -- defect 3: a BitMask is validated when built ---------------------------------------------

@pytest.mark.parametrize("data,shape,p,exc", [
    (np.zeros(1, np.uint8), (5,), 2.0, ValueError),
    (np.zeros(1, np.uint8), (5,), -1, ValueError),
    (np.zeros(1, np.uint8), (5,), float("nan"), ValueError),
    ([255], (5,), 0.5, TypeError),                             # a list of ints: not uint8 data
    (np.zeros(1, np.uint8), (3, 4), 0.5, ValueError),          # too few bytes (2 needed)
    (np.zeros(3, np.uint8), (3, 4), 0.5, ValueError),          # too many
    (np.zeros(0, np.uint8), (4,), 0.5, ValueError),            # empty data for 4 elements
    (np.zeros((1, 1), np.uint8), (4,), 0.5, ValueError),       # not 1-d
    (np.zeros(1, np.uint8), (-1,), 0.5, ValueError),
])
def test_3_bitmask_is_validated(data, shape, p, exc):
    with pytest.raises(exc):
        cdropout.BitMask(data, shape, p)


def test_3_valid_bitmask_gives_the_reference_gradient():
    keep = reference.keep_mask((3, 1), 0.5, 8)
    m = cdropout.BitMask(reference.packbits(keep), (3, 1), 0.5)
    g = random_data((3, 4), np.float32, seed=1)
    assert_same_bits(cdropout.dropout_backward(g, m), reference.apply_mask(g, keep, 0.5))


# -- defect 4: overflow/underflow are results, never an error half-way through a write -------

@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_4_variants_under_errstate_raise(dtype):
    big = random_data((64,), dtype, seed=1) * dtype(1e3 if dtype == np.float16 else 1e36)
    tiny = np.full(64, np.finfo(dtype).smallest_subnormal, dtype)
    calls = [
        (big, lambda x, **kw: cdropout.alpha_dropout(x, 0.9, seed=1, **kw)),
        (big.reshape(8, 8), lambda x, **kw: cdropout.feature_alpha_dropout(x, 0.9, seed=1, **kw)),
        (tiny, lambda x, **kw: cdropout.gaussian_dropout(x, 0.9, seed=1, **kw)),
        (big, lambda x, **kw: cdropout.gaussian_dropout(x, 0.9, seed=1, **kw)),
    ]
    for x, call in calls:
        expected = call(x.copy())  # default settings
        a = x.copy()
        with np.errstate(all="raise"), warnings.catch_warnings():
            warnings.simplefilter("error")
            got = call(a, out=a)  # in place: nothing may be written before an error
        assert got is a
        assert_same_bits(a, expected)


def test_4_no_float16_warnings_leak():
    x = np.array([60000, -60000, 1e-7, 3.0], np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cdropout.alpha_dropout(x, 0.5, seed=2)
        cdropout.gaussian_dropout(x, 0.5, seed=2)
        cdropout.dropout(x, 0.5, seed=2, training=False, scale=False)


# -- defect 5: the same checks in eval mode and at p = 0, everywhere ----------------------------

FUNCS = {
    "dropout": lambda x, **kw: cdropout.dropout(x, **kw),
    "dropout2d": lambda x, **kw: cdropout.dropout2d(x, **kw),
    "variational_dropout": lambda x, **kw: cdropout.variational_dropout(x, **kw),
    "drop_path": lambda x, **kw: cdropout.drop_path(x, **kw),
    "alpha_dropout": lambda x, **kw: cdropout.alpha_dropout(x, **kw),
    "feature_alpha_dropout": lambda x, **kw: cdropout.feature_alpha_dropout(x, **kw),
    "gaussian_dropout": lambda x, **kw: cdropout.gaussian_dropout(x, **kw),
}
BAD = [dict(seed=-1), dict(seed=1, stream=-1), dict(seed=1, offset=-1), dict(seed=1, num_threads=0)]


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("mode", [dict(training=False, p=0.5), dict(p=0.0)])
@pytest.mark.parametrize("bad", BAD, ids=str)
def test_5_bad_arguments_rejected_in_eval_and_at_p0(name, mode, bad):
    x = np.ones((2, 3, 4, 5), np.float32)
    if name == "gaussian_dropout" and "num_threads" in bad:  # it has no num_threads argument
        with pytest.raises(TypeError, match="num_threads"):
            FUNCS[name](x, **mode, **bad)
        return
    with pytest.raises(ValueError):
        FUNCS[name](x, **mode, **bad)


def test_5_drop_path_eval_key_keeps_the_offset():
    _, key = cdropout.drop_path(np.ones((4, 3)), 0.5, training=False, offset=7, return_mask="key")
    assert key.offset == 7 and key.p == 0.0 and key.shape == (4, 1)


# -- defect 6: noise_shape broadcasts (TensorFlow), and nothing else is accepted ---------------

def test_6_noise_shape_broadcasts():
    x = random_data((3, 10), np.float32, seed=1)
    expected = reference.dropout(x, 0.5, 2, noise_shape=(1, 10))
    assert_same_bits(cdropout.dropout(x, 0.5, seed=2, noise_shape=(10,)), expected)
    assert_same_bits(cdropout.dropout(x, 0.5, seed=2, noise_shape=(None, 1)),
                     reference.dropout(x, 0.5, 2, noise_shape=(3, 1)))
    _, keep = cdropout.dropout(x, 0.5, seed=2, noise_shape=(10,), return_mask="bool")
    assert keep.shape == (1, 10)


@pytest.mark.parametrize("ns,exc", [("41", TypeError), ((4.7, 1.2), TypeError), ((True, 10), TypeError),
                                    (3, TypeError), ((2, 10), ValueError), ((1, 3, 10), ValueError)])
def test_6_bad_noise_shapes(ns, exc):
    x = np.ones((3, 10))
    with pytest.raises(exc):
        cdropout.dropout(x, 0.5, seed=1, noise_shape=ns)
    if not isinstance(ns, int):
        with pytest.raises(exc):
            cdropout.Dropout(0.5, seed=1, noise_shape=ns)(x)


# -- defect 7: eval returns the input itself ------------------------------------------------

def test_7_eval_returns_the_input_itself():
    x = random_data((4, 5), np.float32, seed=1)
    for f in (cdropout.dropout, cdropout.alpha_dropout, cdropout.gaussian_dropout, cdropout.drop_path,
              cdropout.dropout1d, cdropout.variational_dropout):
        assert f(x, 0.5, training=False) is x
    assert cdropout.Dropout(0.5, seed=1).eval().forward(x) is x
    out = np.empty_like(x)
    assert cdropout.dropout(x, 0.5, training=False, out=out) is out and np.array_equal(out, x)
    # a broadcast 2 PiB view: returned as it is, nothing allocated
    huge = np.broadcast_to(np.ones(1), (1 << 48,))
    assert cdropout.dropout(huge, 0.5, training=False) is huge


# -- defect 8: a mask of the wrong type is a TypeError naming the accepted types ---------------

@pytest.mark.parametrize("mask", [None, "abc", 3, np.ones(4), np.ones(4, np.uint8)], ids=repr)
def test_8_wrong_mask_types(mask):
    g = np.ones(4)
    with pytest.raises(TypeError) as info:
        cdropout.dropout_backward(g, mask)
    assert all(w in str(info.value) for w in ("MaskKey", "BitMask", "bool"))


def test_8_forward_tuple_is_not_a_mask():
    y, key = cdropout.dropout(np.ones(4), 0.5, seed=1, return_mask="key")
    with pytest.raises(TypeError, match="MaskKey"):
        cdropout.dropout_backward(np.ones(4), (y, key))


# -- defect 9: a numpy Generator is a seed ---------------------------------------------------

def test_9_numpy_generator_seed():
    x = random_data((50,), np.float64, seed=1)
    drawn = int(np.random.default_rng(0).integers(0, 2 ** 64, dtype=np.uint64))
    assert_same_bits(cdropout.dropout(x, 0.5, seed=np.random.default_rng(0)), reference.dropout(x, 0.5, drawn))
    assert_same_bits(cdropout.dropout(x, 0.5, seed=np.random.default_rng(0), stream=3),
                     reference.dropout(x, 0.5, drawn, 3))
    assert cdropout.Generator(np.random.default_rng(0)).seed == drawn
    with pytest.raises(TypeError) as info:
        cdropout.dropout(x, 0.5, seed="0")
    assert all(w in str(info.value) for w in ("int", "SeedSequence", "numpy.random.Generator", "None"))


# -- defect 11: layer(x) calls the subclass's forward ----------------------------------------

def test_11_call_uses_the_overridden_forward():
    class Twice(cdropout.Dropout):
        def forward(self, x):
            return super().forward(x) * 2

    x = np.ones(8, np.float32)
    assert_same_bits(Twice(0.5, seed=1)(x), cdropout.Dropout(0.5, seed=1)(x) * 2)


# -- defect 12: errors of __array__ other than TypeError/ValueError propagate ------------------

@pytest.mark.parametrize("exc", [MemoryError, RecursionError, KeyboardInterrupt])
def test_12_array_errors_propagate(exc):
    class Bad:
        def __array__(self, dtype=None, copy=None):
            raise exc("from __array__")

    with pytest.raises(exc):
        cdropout.dropout(Bad(), 0.5, seed=1)
    with pytest.raises(exc):
        cdropout.dropout_backward(Bad(), cdropout.MaskKey(1, 0, 0, 0.5, (4,)))


# -- defect 13: p is any real scalar ----------------------------------------------------------

@pytest.mark.parametrize("p", [np.float16(0.5), np.float32(0.25), np.float64(0.25), np.array(0.25),
                               np.array(0.5, np.float32), np.int64(0), np.array(1)], ids=repr)
def test_13_p_as_numpy_scalar_or_0d_array(p):
    x = random_data((40,), np.float32, seed=1)
    expected = reference.dropout(x, float(p), 3)
    assert_same_bits(cdropout.dropout(x, p, seed=3), expected)
    assert cdropout.Dropout(p, seed=3).p == float(p)
    assert cdropout.MaskKey(3, 0, 0, p, (40,)).p == float(p)
    cdropout.alpha_dropout(x, p, seed=3)
    _, key = cdropout.dropout(x, p, seed=3, return_mask="key")
    assert_same_bits(cdropout.dropout_backward(x, key, p=p), expected)


@pytest.mark.parametrize("p", [np.array([0.5]), np.bool_(True), True, "0.5", np.array("0.5")], ids=repr)
def test_13_non_scalar_p_is_a_type_error(p):
    with pytest.raises(TypeError):
        cdropout.dropout(np.ones(4), p, seed=1)


# -- defect 14: noise-shaped masks are applied in place by the core ---------------------------

MIB4 = (8, 16, 64, 128)  # 4 MiB of float32


@pytest.mark.parametrize("call,mask_elems", [
    (lambda x: cdropout.dropout2d(x, 0.5, seed=1, out=x), 8 * 16),
    (lambda x: cdropout.dropout3d(x, 0.5, seed=1, out=x), 8),             # unbatched (C, D, H, W)
    (lambda x: cdropout.variational_dropout(x, 0.5, seed=1, time_axis=2, out=x), 8 * 16 * 128),
    (lambda x: cdropout.drop_path(x, 0.5, seed=1, out=x), 8),
    (lambda x: cdropout.dropout(x, 0.5, seed=1, noise_shape=(1, 16, 1, 128), out=x), 16 * 128),
    (lambda x: cdropout.dropout_backward(x, cdropout.MaskKey(1, 0, 0, 0.5, (8, 16, 1, 1)), out=x), 128),
    (lambda x: cdropout.dropout_backward(x, cdropout.MaskKey(1, 0, 0, 0.5, (8, 16, 1, 1)).to_bits(), out=x), 0),
], ids=["dropout2d", "dropout3d", "variational", "drop_path", "noise_shape", "backward key", "backward bits"])
def test_14_noise_shaped_in_place_allocates_at_most_4KiB(call, mask_elems):
    x = np.ones(MIB4, np.float32)
    call(x)  # warm up (imports, caches)
    x[...] = 1
    tracemalloc.start()
    try:
        call(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 4096 + (mask_elems + 7) // 8, peak  # the mask's bits and at most 4 KiB more


def test_14_noise_shaped_result_is_the_reference():
    x = random_data((3, 4, 5, 6), np.float16, seed=1)
    for ns in [(3, 4, 1, 1), (1, 4, 1, 6), (3, 1, 5, 1)]:
        a = x.copy()
        cdropout.dropout(a, 0.3, seed=2, stream=1, offset=9, noise_shape=ns, out=a)
        assert_same_bits(a, reference.dropout(x, 0.3, 2, 1, 9, noise_shape=ns))


# -- defect 16: cdropout.seed(n) makes every unseeded object reproducible ----------------------

def test_16_seed_makes_layers_and_generators_reproducible():
    x = np.ones(64, np.float32)

    def run():
        layer = cdropout.Dropout(0.5)
        return layer(x), cdropout.Generator().seed, cdropout.dropout(x, 0.5)

    cdropout.seed(123)
    a = run()
    cdropout.seed(123)
    b = run()
    cdropout.seed(124)
    c = run()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and a[1] != c[1]
    cdropout.seed()


# -- defect 19: the exact equivalence of a key's backward ------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(scale=False), dict(noise_shape=(6, 1)), dict(offset=11),
                                dict(scale=False, noise_shape=(1, 5)), dict(index=((9, 5), (2, 0)))], ids=str)
def test_19_backward_with_a_key_is_dropout_with_the_keys_fields(kw):
    g = random_data((6, 5), np.float32, seed=1)
    _, k = cdropout.dropout(np.ones((6, 5), np.float32), 0.4, seed=7, stream=3, return_mask="key", **kw)
    expected = cdropout.dropout(g, k.p, seed=k.seed, stream=k.stream, offset=k.offset,
                                noise_shape=k.shape, scale=k.scale, index=k.index)
    assert_same_bits(cdropout.dropout_backward(g, k), expected)
    if "index" not in kw:  # and both equal the reference of the forward's mask
        ns = kw.get("noise_shape", (6, 5))
        keep = reference.keep_mask(ns, 0.4, 7, 3, kw.get("offset", 0))
        assert_same_bits(expected, reference.apply_mask(g, keep, 0.4, scale=kw.get("scale", True)))


# -- adversarial: aliasing and threads -------------------------------------------------------

def test_partial_overlap_out_reads_the_input_first():
    base = random_data((40,), np.float64, seed=1)
    x = base.copy()
    expected = reference.dropout(x[:30].reshape(3, 10), 0.5, 4, noise_shape=(3, 1))
    cdropout.dropout(x[:30].reshape(3, 10), 0.5, seed=4, noise_shape=(3, 1), out=x[10:40].reshape(3, 10))
    assert_same_bits(x[10:40].reshape(3, 10), expected)
    y = base.copy()
    rev = y[::-1]  # same memory, reversed strides
    exp2 = reference.dropout(base[::-1].copy(), 0.5, 4)
    cdropout.dropout(rev, 0.5, seed=4, out=y)
    assert_same_bits(y, exp2)


def test_records_from_many_threads():
    x = random_data((1000,), np.float32, seed=2)
    _, key = cdropout.dropout(x, 0.5, seed=9, return_mask="key", noise_shape=(1000,))
    expected = reference.dropout(x, 0.5, 9)
    results = [None] * 8

    def work(i):
        results[i] = cdropout.dropout_backward(x, key)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert_same_bits(r, expected)


# -- the one apply path, as the PyTorch and Dask front ends call it ---------------------------

def test_apply_record_is_the_forward_and_every_backward():
    from cdropout._api import apply_record

    x = random_data((5, 8), np.float32, seed=7)
    key = cdropout.MaskKey(3, 1, 2, 0.3, (5, 1))
    assert_same_bits(apply_record(x, None, key), reference.dropout(x, 0.3, 3, 1, 2, noise_shape=(5, 1)))
    a = x.copy()
    assert apply_record(a, a, key) is a
    assert_same_bits(a, reference.dropout(x, 0.3, 3, 1, 2, noise_shape=(5, 1)))
    akey = cdropout.MaskKey(3, 1, 2, 0.3, (5, 8), kind="alpha")
    assert_same_bits(apply_record(x, None, akey), cdropout.alpha_dropout_backward(x, akey))
    with pytest.raises(ValueError, match="gaussian"):
        apply_record(x, None, cdropout.MaskKey(3, 1, 2, 0.3, (5, 8), kind="gaussian"))
