"""Mask forms ('bool', 'bits', 'key') and dropout_backward, bitwise against the reference."""
import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, assert_same_mask, random_data

CASES = [
    # shape, p, seed, stream, offset
    ((2**18 + 5,), 1.0 / 3.0, 2**64 - 1, 17, 3),   # ties occur (checked below)
    ((129, 33), 0.5, 0, 0, 0),
    ((7, 11, 13), 0.1, 12345, 2**32, 2**32 - 100),
    ((4097,), 0.9, 1, 2**64 - 1, 2**64 - 4097),
    ((), 0.3, 5, 0, 1),
    ((0,), 0.3, 5, 0, 0),
    ((3, 0), 0.3, 5, 0, 0),
    ((1,), 0.5, 2, 0, 7),
    ((127,), 0.7, 3, 9, 8 * 2**61 - 200),
]
IDS = [f"{s}-p{p:.3g}-off{o}" for s, p, _, _, o in CASES]


def test_the_tie_case_has_ties():
    shape, p, seed, stream, offset = CASES[0]
    ties, _ = reference.tie_stats(shape[0], p, seed, stream, offset)
    assert ties > 0


def _forward(case, dtype, form, data_seed=0):
    shape, p, seed, stream, offset = case
    x = random_data(shape, dtype, data_seed)
    before = x.copy()
    y, mask = cd.dropout(x, p, seed=seed, stream=stream, offset=offset, return_mask=form)
    assert_same_bits(x, before, "input after the call")
    keep = reference.keep_mask(shape, p, seed, stream, offset)
    assert_same_bits(y, reference.apply_mask(before, keep, p))
    return x, y, mask, keep


# ------------------------------------------------------------------ forward mask forms


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bool_mask(case, dtype):
    _, _, mask, keep = _forward(case, dtype, "bool")
    assert isinstance(mask, np.ndarray)
    assert_same_mask(mask, keep)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bits_mask(case, dtype):
    shape, p, _, _, _ = case
    _, _, mask, keep = _forward(case, dtype, "bits")
    assert isinstance(mask, cd.BitMask)
    data = np.asarray(mask.data)
    assert data.dtype == np.uint8 and data.ndim == 1
    np.testing.assert_array_equal(data, reference.packbits(keep))
    assert tuple(mask.shape) == shape
    assert mask.p == p
    assert_same_mask(mask.to_bool(), keep, "BitMask.to_bool()")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_key_mask(case, dtype):
    shape, p, seed, stream, offset = case
    _, _, mask, keep = _forward(case, dtype, "key")
    assert isinstance(mask, cd.MaskKey)
    assert (mask.seed, mask.stream, mask.offset) == (seed, stream, offset)
    assert mask.p == p
    assert tuple(mask.shape) == shape
    assert_same_mask(mask.to_bool(), keep, "MaskKey.to_bool()")


def test_bits_mask_pads_last_byte_with_zeros():
    """packbits pads the last byte with zero bits, even where the stream would keep."""
    for n in range(1, 17):
        x = np.ones(n, np.float32)
        _, mask = cd.dropout(x, 0.0, seed=1, return_mask="bits")
        np.testing.assert_array_equal(np.asarray(mask.data),
                                      reference.packbits(np.ones(n, bool)))


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_mask_is_the_same_for_every_dtype(form):
    shape, p, seed, stream, offset = CASES[2]
    masks = []
    for dtype in FLOAT_DTYPES:
        _, _, mask, _ = _forward(CASES[2], dtype, form)
        masks.append(mask if form == "bool" else mask.to_bool())
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_mask_of_noncontiguous_input_is_in_c_order_of_the_shape(form):
    x = random_data((40, 30), np.float64, 3)[::-2, 1::2].T  # shape (15, 20)
    y, mask = cd.dropout(x, 0.4, seed=8, stream=1, offset=5, return_mask=form)
    keep = reference.keep_mask(x.shape, 0.4, 8, 1, 5)
    assert_same_bits(y, reference.apply_mask(x, keep, 0.4))
    got = mask if form == "bool" else mask.to_bool()
    assert_same_mask(got, keep)
    if form == "bits":
        np.testing.assert_array_equal(np.asarray(mask.data), reference.packbits(keep))


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_mask_with_out_in_place(form):
    x = random_data((1000,), np.float32, 4)
    before = x.copy()
    y, mask = cd.dropout(x, 0.3, seed=4, stream=2, offset=1, out=x, return_mask=form)
    keep = reference.keep_mask(x.shape, 0.3, 4, 2, 1)
    assert_same_bits(x, reference.apply_mask(before, keep, 0.3), "x in place")
    assert_same_mask(mask if form == "bool" else mask.to_bool(), keep)


@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_masks_for_p_0_and_1(p, form):
    x = random_data((37,), np.float32, 5)
    y, mask = cd.dropout(x, p, seed=1, return_mask=form)
    want = np.full(x.shape, p == 0.0)
    assert_same_mask(mask if form == "bool" else mask.to_bool(), want)
    if form == "bits":
        np.testing.assert_array_equal(np.asarray(mask.data), reference.packbits(want))


def test_return_mask_none_returns_the_array_only():
    x = random_data((10,), np.float32)
    y = cd.dropout(x, 0.5, seed=1, return_mask=None)
    assert isinstance(y, np.ndarray)
    assert_same_bits(y, reference.dropout(x, 0.5, 1))


# ------------------------------------------------------------------ backward


def _grad(shape, dtype, seed=100):
    return random_data(shape, dtype, seed)


def _check_backward(grad, mask, keep, p_ref, **kwargs):
    """dropout_backward(grad, mask, **kwargs) == where(keep, grad * s(p_ref), 0), bitwise."""
    before = grad.copy()
    out = kwargs.get("out")
    gx = cd.dropout_backward(grad, mask, **kwargs)
    expected = reference.apply_mask(before, keep, p_ref)
    assert_same_bits(gx, expected, "backward")
    if out is not grad:
        assert_same_bits(grad, before, "grad after the call")
    return gx


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_backward_each_mask_form(form, case, dtype):
    shape, p, seed, stream, offset = case
    _, _, mask, keep = _forward(case, dtype, form)
    grad = _grad(shape, dtype)
    kwargs = {"p": p} if form == "bool" else {}
    _check_backward(grad, mask, keep, p, **kwargs)


@pytest.mark.parametrize("fwd_dtype,grad_dtype", [(np.float32, np.float64),
                                                  (np.float64, np.float16),
                                                  (np.float16, np.float32)])
@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_backward_grad_dtype_differs_from_forward(form, fwd_dtype, grad_dtype):
    """The mask does not depend on the dtype; the scale is rounded to grad's dtype."""
    case = CASES[1]
    shape, p = case[0], case[1]
    _, _, mask, keep = _forward(case, fwd_dtype, form)
    kwargs = {"p": p} if form == "bool" else {}
    _check_backward(_grad(shape, grad_dtype), mask, keep, p, **kwargs)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_from_key_equals_forward_with_that_key(case, dtype):
    shape = case[0]
    _, _, key, _ = _forward(case, dtype, "key")
    grad = _grad(shape, dtype)
    gx = cd.dropout_backward(grad, key)
    fwd = cd.dropout(grad, key.p, seed=key.seed, stream=key.stream, offset=key.offset)
    assert_same_bits(gx, fwd)


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_backward_out_in_place(form):
    shape, p = CASES[2][0], CASES[2][1]
    _, _, mask, keep = _forward(CASES[2], np.float32, form)
    grad = _grad(shape, np.float32)
    before = grad.copy()
    kwargs = {"p": p} if form == "bool" else {}
    gx = cd.dropout_backward(grad, mask, out=grad, **kwargs)
    assert_same_bits(grad, reference.apply_mask(before, keep, p), "grad in place")
    assert_same_bits(gx, grad)


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_backward_out_separate_noncontiguous(form):
    shape, p = CASES[2][0], CASES[2][1]
    _, _, mask, keep = _forward(CASES[2], np.float64, form)
    grad = _grad(shape, np.float64)
    buf = np.full((shape[0], shape[1], 2 * shape[2]), 9.0)
    out = buf[:, :, ::-2]
    kwargs = {"p": p} if form == "bool" else {}
    _check_backward(grad, mask, keep, p, out=out, **kwargs)
    assert_same_bits(out, reference.apply_mask(grad, keep, p), "out")
    assert np.all(buf[:, :, -2::-2] == 9.0), "elements of out's base outside out were written"


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_backward_noncontiguous_grad(form):
    """grad's logical element order (C order of its shape) is what the mask indexes."""
    shape, p = CASES[1][0], CASES[1][1]
    _, _, mask, keep = _forward(CASES[1], np.float32, form)
    grad = np.asfortranarray(_grad(shape, np.float32))
    kwargs = {"p": p} if form == "bool" else {}
    _check_backward(grad, mask, keep, p, **kwargs)
    grad2 = _grad((shape[0], 2 * shape[1]), np.float32)[:, ::-2]
    _check_backward(grad2, mask, keep, p, **kwargs)


def test_backward_bool_mask_from_user():
    """A bool mask made by the user (not by dropout) works with p given."""
    rng = np.random.default_rng(9)
    keep = rng.random((50, 3)) < 0.6
    grad = _grad((50, 3), np.float32)
    _check_backward(grad, keep, keep, 0.4, p=0.4)
    # a non-contiguous bool mask
    keep2 = np.asfortranarray(keep)
    _check_backward(grad, keep2, keep, 0.4, p=0.4)
