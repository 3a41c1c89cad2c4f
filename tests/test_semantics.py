"""Output semantics: select not multiply, p = 0 / 1, training=False, dtypes, float16 rounding,
scale=False and a basic noise_shape check."""
import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, random_data

SPECIAL = [np.nan, np.inf, -np.inf, -np.nan]


def _with_specials(n, dtype, seed=0):
    x = random_data((n,), dtype, seed)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, n // 4, replace=False)
    x[idx] = np.array(SPECIAL, dtype)[rng.integers(0, len(SPECIAL), len(idx))]
    return x


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [0.3, 0.5, 0.9])
def test_nan_inf_do_not_leak_from_dropped(p, dtype):
    n = 4099
    x = _with_specials(n, dtype)
    x0 = x.copy()
    y, mask = cd.dropout(x, p, seed=5, stream=1, return_mask="bool")
    keep = reference.keep_flat(n, p, 5, 1, 0)
    np.testing.assert_array_equal(mask, keep)
    special = ~np.isfinite(x0)
    assert np.any(special & keep) and np.any(special & ~keep)
    # dropped: exactly +0.0 (sign bit clear), whatever x was
    dropped_bits = reference.bits_of(y[~keep])
    assert np.all(dropped_bits == 0), "dropped elements must be +0.0"
    # kept NaN stays NaN, kept +-Inf stays +-Inf (times s > 0)
    kn = keep & np.isnan(x0)
    assert np.all(np.isnan(y[kn]))
    ki = keep & np.isinf(x0)
    assert_same_bits(y[ki], x0[ki])
    # finite elements bitwise as the reference
    fin = np.isfinite(x0)
    assert_same_bits(y[fin], reference.apply_mask(x0, keep, p)[fin])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_negative_zero_and_negative_values_dropped_to_positive_zero(dtype):
    x = np.full(1000, -0.0, dtype)
    x[::2] = -3.0
    y, mask = cd.dropout(x, 0.5, seed=3, return_mask="bool")
    assert np.all(reference.bits_of(y[~mask]) == 0)
    assert np.all(np.signbit(y[mask]))  # kept -0.0 * s is -0.0, kept -3 * s < 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_p_one_gives_positive_zeros(dtype):
    x = _with_specials(1001, dtype, 1)
    x0 = x.copy()
    y = cd.dropout(x, 1.0, seed=1)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.all(reference.bits_of(y) == 0)
    assert_same_bits(x, x0, "input")
    # in place too
    cd.dropout(x, 1.0, seed=1, out=x)
    assert np.all(reference.bits_of(x) == 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kwargs", [dict(p=0.0), dict(p=0.5, training=False),
                                    dict(p=1.0, training=False)], ids=str)
def test_identity_cases(kwargs, dtype):
    x = _with_specials(1001, dtype, 2)
    x[:3] = [-0.0, 0.0, -0.0]
    x0 = x.copy()
    y = cd.dropout(x, seed=7, **kwargs)
    assert_same_bits(y, x0, "identity result")
    assert_same_bits(x, x0, "input (out is None)")


@pytest.mark.parametrize("kwargs", [dict(p=0.0), dict(p=0.5, training=False)], ids=str)
def test_identity_cases_noncontiguous_and_out(kwargs):
    x = random_data((30, 40), np.float64, 3)[::-1, ::3]
    x0 = x.copy()
    y = cd.dropout(x, seed=7, **kwargs)
    assert_same_bits(y, x0)
    assert_same_bits(x, x0, "input")
    out = np.full(x.shape, 2.0)
    cd.dropout(x, seed=7, out=out, **kwargs)
    assert_same_bits(out, x0, "out")
    cd.dropout(x, seed=7, out=x, **kwargs)
    assert_same_bits(x, x0, "in place")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_preserved(dtype):
    for shape in [(), (5,), (3, 4)]:
        x = random_data(shape, dtype, 4)
        assert np.asarray(cd.dropout(x, 0.5, seed=1)).dtype == dtype
        assert np.asarray(cd.dropout(x, 0.0, seed=1)).dtype == dtype
        assert np.asarray(cd.dropout(x, 1.0, seed=1)).dtype == dtype
        assert np.asarray(cd.dropout(x, 0.5, seed=1, training=False)).dtype == dtype


@pytest.mark.parametrize("p", [0.1, 0.3, 1.0 / 3.0, 0.7, 0.9, 0.99, 1.5 * 2.0**-32])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kept_values_are_x_times_dtype_rounded_scale(p, dtype):
    """Kept elements are exactly NumPy's x * dtype(1/(1-p)) (float16: x * np.float16(s))."""
    x = random_data((20_000,), dtype, 5)
    s = np.dtype(dtype).type(1.0 / (1.0 - p))
    y, mask = cd.dropout(x, p, seed=11, return_mask="bool")
    with np.errstate(over="ignore"):
        numpy_product = x * s
    assert numpy_product.dtype == dtype
    assert_same_bits(y[mask], numpy_product[mask], "kept values")


@pytest.mark.parametrize("p", [0.1, 0.2, 1.0 / 3.0, 0.5, 0.9, 0.99, 1.5 * 2.0**-32])
def test_float16_all_values(p):
    """Every non-NaN float16 bit pattern (subnormals, the overflow boundary 65520 = 43680 * 1.5,
    halfway cases, inf) is placed at a kept position: kept values are x * s rounded once, as
    NumPy computes x * np.float16(s)."""
    vals = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    vals = vals[~np.isnan(vals)]
    seed = 3
    n = int(len(vals) / (1.0 - p) * 1.05) + 4096 if p < 0.999 else 0
    keep = reference.keep_flat(n, p, seed, 0, 0)
    pos = np.flatnonzero(keep)[:len(vals)]
    assert len(pos) == len(vals)
    x = np.zeros(n, np.float16)
    x[pos] = vals
    y = cd.dropout(x, p, seed=seed)
    s16 = np.float16(1.0 / (1.0 - p))
    with np.errstate(over="ignore"):
        numpy_product = vals * s16
        once = (vals.astype(np.float32) * np.float32(s16)).astype(np.float16)
    assert_same_bits(once, numpy_product, "float32-then-round (spec) vs NumPy")
    assert_same_bits(y[pos], numpy_product, "float16 kept values")
    assert np.all(reference.bits_of(y[~keep]) == 0)


def test_float16_scale_is_rounded_to_float16():
    """s itself is rounded to float16 first: 1/(1-0.3) = 1.4285714... -> 1.4287109375."""
    p = 0.3
    s16 = np.float16(1.0 / (1.0 - p))
    assert float(s16) != 1.0 / (1.0 - p)
    x = np.full(64, 1.0, np.float16)
    y = cd.dropout(x, p, seed=1)
    keep = reference.keep_flat(64, p, 1)
    assert 0 < keep.sum() < 64, "the sample must keep and drop some elements"
    assert_same_bits(y, np.where(keep, s16, np.float16(0)))


def test_float32_scale_is_rounded_to_float32():
    """3 * float32(1/(1-0.1)) = 3.3333335, not float32(3/(1-0.1)) = 3.3333333."""
    p = 0.1
    x = np.full(64, 3.0, np.float32)
    y = cd.dropout(x, p, seed=1)
    want = np.float32(3.0) * np.float32(1.0 / (1.0 - p))
    assert want != np.float32(3.0 / (1.0 - p)), "p must tell the two roundings apart"
    keep = reference.keep_flat(64, p, 1)
    assert 0 < keep.sum() < 64, "the sample must keep and drop some elements"
    assert_same_bits(y, np.where(keep, want, np.float32(0)))


@pytest.mark.parametrize("p", [np.float32(0.3), np.float64(0.3), 0, 1, np.float16(0.25)], ids=repr)
def test_p_of_other_numeric_types_is_taken_as_float64(p):
    x = random_data((5000,), np.float32, 9)
    y = cd.dropout(x, p, seed=6)
    assert_same_bits(y, reference.dropout(x, float(p), 6))


# ------------------------------------------------------------------ scale=False, noise_shape


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_scale_false_keeps_values_unscaled(dtype):
    x = _with_specials(4099, dtype, 6)
    x0 = x.copy()
    y, mask = cd.dropout(x, 0.3, seed=4, stream=2, offset=1, scale=False, return_mask="bool")
    keep = reference.keep_flat(4099, 0.3, 4, 2, 1)
    np.testing.assert_array_equal(mask, keep)
    fin = np.isfinite(x0)
    assert_same_bits(y[keep & fin], x0[keep & fin], "kept values (unscaled)")
    assert np.all(np.isnan(y[keep & np.isnan(x0)]))
    assert np.all(reference.bits_of(y[~keep]) == 0)
    assert_same_bits(y[fin], reference.dropout(x0, 0.3, 4, 2, 1, scale=False)[fin])


@pytest.mark.parametrize("noise_shape", [(4, 1, 5), (1, 6, 1), (1, 1, 1), (4, 6, 5)], ids=str)
def test_noise_shape_basic(noise_shape):
    x = random_data((4, 6, 5), np.float32, 7)
    y = cd.dropout(x, 0.4, seed=12, stream=1, offset=3, noise_shape=noise_shape)
    expected = reference.dropout(x, 0.4, 12, 1, 3, noise_shape=noise_shape)
    assert_same_bits(y, expected)


def test_noise_shape_equal_to_shape_is_plain_dropout():
    x = random_data((8, 9), np.float64, 8)
    a = cd.dropout(x, 0.4, seed=12, noise_shape=x.shape)
    b = cd.dropout(x, 0.4, seed=12)
    assert_same_bits(a, b)
