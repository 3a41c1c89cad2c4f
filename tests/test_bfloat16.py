"""bfloat16 (ml_dtypes arrays and torch.bfloat16 tensors): every kernel path, bit for bit, against an
independent NumPy reference (widen to float32, multiply by the scale rounded to bfloat16, round once
to nearest even; NaN -> sign | 0x7fc0, as ml_dtypes casts), in both stream formats."""
import math
from fractions import Fraction

import numpy as np
import pytest

import cdropout
import reference
from helpers import available_isas

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fmt(request):
    return request.param


def bf16_scale(p):
    """1/(1-p) rounded to bfloat16 with exact rational arithmetic (ties to even)."""
    s = 1 / (1 - Fraction(p))
    e = math.floor(math.log2(s))
    if Fraction(2) ** e > s:
        e -= 1
    ulp = Fraction(2) ** (e - 7)
    return float(round(s / ulp) * ulp)


def round_f32_to_bf16_bits(f):
    """float32 array -> bfloat16 bit patterns (uint16), round to nearest even, in integer NumPy."""
    u = np.asarray(f, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) & 0x8000).astype(np.uint16) | np.uint16(0x7FC0), r)


def ref_bits(x_bits, keep, s):
    """Expected output bits of dropout on bfloat16 bit patterns x_bits with mask keep, scale s."""
    wide = (x_bits.astype(np.uint32) << 16).view(np.float32)
    with np.errstate(all="ignore"):
        prod = wide * np.float32(s)
    return np.where(keep, round_f32_to_bf16_bits(prod), np.uint16(0))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7, 0.999])
def test_scale_rounding(p):
    assert cdropout._bf16.round_to_bfloat16(1 / (1 - p)) == bf16_scale(p)


def test_reference_rounding_agrees_with_ml_dtypes():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        expected = f.astype(BF16).view(np.uint16)
    nan = np.isnan(f)
    assert np.array_equal(round_f32_to_bf16_bits(f)[~nan], expected[~nan])
    assert np.array_equal(round_f32_to_bf16_bits(f)[nan] & 0xFFC0, expected[nan] & 0xFFC0)


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("scale", [True, False])
def test_all_65536_values_every_path(isa, scale, fmt):
    x_bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = x_bits.view(BF16)
    p = 0.3
    keep = reference.keep_mask(x.shape, p, 11, 2, fmt=fmt)
    s = bf16_scale(p) if scale else 1.0
    with cdropout._config.forced_isa(isa):
        y = cdropout.dropout(x, p, seed=11, stream=2, scale=scale, format=fmt)
    assert y.dtype == BF16
    np.testing.assert_array_equal(y.view(np.uint16), ref_bits(x_bits, keep, s))


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("n, offset", [(1, 0), (7, 3), (8, 5), (31, 1), (100, 13), (1029, 0), (5000, 6)])
def test_heads_tails_offsets_every_path(isa, n, offset, fmt):
    rng = np.random.default_rng(n)
    x_bits = rng.integers(0, 65536, n).astype(np.uint16)
    p = 0.4
    keep = reference.keep_mask((n,), p, 3, 0, offset, fmt)
    with cdropout._config.forced_isa(isa):
        y = cdropout.dropout(x_bits.view(BF16), p, seed=3, offset=offset, format=fmt)
        z = x_bits.copy().view(BF16)
        cdropout.dropout(z, p, seed=3, offset=offset, out=z, format=fmt)  # in place
    expected = ref_bits(x_bits, keep, bf16_scale(p))
    np.testing.assert_array_equal(y.view(np.uint16), expected)
    np.testing.assert_array_equal(z.view(np.uint16), expected)


@pytest.mark.parametrize("isa", available_isas())
def test_strided_and_noise_shaped(isa, fmt):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((40, 50)).astype(BF16)
    x = base[::2, ::3].T  # strided, transposed
    p = 0.25
    with cdropout._config.forced_isa(isa):
        y = cdropout.dropout(x, p, seed=9, format=fmt)
        yn = cdropout.dropout(base, p, seed=9, noise_shape=(40, 1), format=fmt)
    xb = np.ascontiguousarray(x).view(np.uint16)
    np.testing.assert_array_equal(y.view(np.uint16),
                                  ref_bits(xb, reference.keep_mask(x.shape, p, 9, fmt=fmt), bf16_scale(p)))
    keep = np.broadcast_to(reference.keep_mask((40, 1), p, 9, fmt=fmt), base.shape)
    np.testing.assert_array_equal(yn.view(np.uint16), ref_bits(base.view(np.uint16), keep, bf16_scale(p)))


def test_backward_bfloat16(fmt):
    x = np.linspace(-3, 3, 300).astype(BF16)
    y, key = cdropout.dropout(x, 0.5, seed=4, return_mask="key", format=fmt)
    g = cdropout.dropout_backward(np.ones_like(x), key)
    np.testing.assert_array_equal(g.view(np.uint16),
                                  cdropout.dropout(np.ones_like(x), 0.5, seed=4, format=fmt).view(np.uint16))
    assert np.array_equal(g != 0, key.to_bool())
    assert np.array_equal(g != 0, reference.keep_mask((300,), 0.5, 4, fmt=fmt))


def test_torch_bfloat16_matches_numpy_path(fmt):
    torch = pytest.importorskip("torch")
    import cdropout.torch as ct

    rng = np.random.default_rng(5)
    x_bits = rng.integers(0, 65536, 4099).astype(np.uint16)
    t = torch.from_numpy(x_bits.astype(np.int16)).view(torch.bfloat16)
    for isa in available_isas():
        with cdropout._config.forced_isa(isa):
            yt = ct.dropout(t, 0.3, seed=8, stream=1, format=fmt)
        assert yt.dtype == torch.bfloat16
        expected = ref_bits(x_bits, reference.keep_mask(x_bits.shape, 0.3, 8, 1, fmt=fmt), bf16_scale(0.3))
        np.testing.assert_array_equal(yt.view(torch.int16).numpy().view(np.uint16), expected)
    tg = torch.randn(64, dtype=torch.bfloat16, requires_grad=True)
    out = ct.dropout(tg, 0.5, seed=2, format=fmt)
    out.sum().backward()
    keep = reference.keep_mask((64,), 0.5, 2, fmt=fmt)
    assert torch.equal(tg.grad, torch.from_numpy(np.where(keep, 2.0, 0.0)).to(torch.bfloat16))
