"""Dropout variants: alpha / feature alpha, Gaussian, classic (unscaled) dropout.

Masks come from tests/reference.py (pure NumPy format v1); the Gaussian noise from a scalar
pure-Python evaluation of the rule in docs/variants.md on top of reference.philox4x32.
"""
import math

import numpy as np
import pytest

import cdropout
import cdropout._normals
import cdropout.variants as variants
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, assert_same_mask, random_data

ALPHA_PRIME = -1.7580993408473766


# --- alpha dropout -----------------------------------------------------------------------------

def alpha_reference(x, keep, p):
    """y = a * (x * keep + alpha' * (1 - keep)) + b, PyTorch's formula, in the dtype's arithmetic."""
    a = ((1 - p) * (1 + p * ALPHA_PRIME ** 2)) ** -0.5
    b = -a * ALPHA_PRIME * p
    c = a * ALPHA_PRIME + b
    work = np.float32 if x.dtype == np.float16 else x.dtype.type
    kept = (x.astype(work) * work(a) + work(b)).astype(x.dtype)
    return np.where(np.broadcast_to(keep, x.shape), kept, x.dtype.type(c))


def test_alpha_constants():
    assert variants.ALPHA_PRIME == ALPHA_PRIME
    # alpha' = -lambda * alpha of SELU
    assert math.isclose(ALPHA_PRIME, -1.0507009873554805 * 1.6732632423543772, rel_tol=1e-15)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_alpha_dropout_matches_formula_and_reference_mask(dtype, p):
    x = random_data((37, 29), dtype, seed=1)
    y, keep = cdropout.alpha_dropout(x, p, seed=3, stream=1, offset=2, return_mask="bool")
    expected_keep = reference.keep_mask(x.shape, p, 3, 1, 2)
    assert_same_mask(keep, expected_keep)
    assert_same_bits(y, alpha_reference(x, expected_keep, p))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_feature_alpha_dropout(dtype):
    x = random_data((3, 5, 4, 2), dtype, seed=2)
    y, keep = cdropout.feature_alpha_dropout(x, 0.4, seed=8, stream=2, return_mask="bool")
    expected_keep = reference.keep_mask((3, 5, 1, 1), 0.4, 8, 2)
    assert_same_mask(keep, expected_keep)
    assert_same_bits(y, alpha_reference(x, expected_keep, 0.4))
    y2 = cdropout.feature_alpha_dropout(x[:, :, 0, 0], 0.4, seed=8, stream=2)  # (N, C): elementwise
    assert_same_bits(y2, alpha_reference(x[:, :, 0, 0], expected_keep[:, :, 0, 0], 0.4))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cdropout.feature_alpha_dropout(np.ones(4), 0.4, seed=0)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_alpha_dropout_keeps_mean_and_variance(p):
    """For N(0, 1) inputs the output has mean 0 and variance 1 (within 5 sigma)."""
    n = 1 << 18
    x = np.random.default_rng(123).standard_normal(n)
    y = cdropout.alpha_dropout(x, p, seed=77)
    mean, var = y.mean(), y.var()
    m4 = np.mean((y - mean) ** 4)
    assert abs(mean) < 5 * math.sqrt(var / n), f"mean {mean}"
    assert abs(var - 1.0) < 5 * math.sqrt((m4 - var ** 2) / n), f"variance {var}"


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_alpha_dropout_backward(form):
    x = random_data((50, 7), np.float32, seed=4)
    g = random_data(x.shape, np.float32, seed=5)
    p = 0.3
    y, mask = cdropout.alpha_dropout(x, p, seed=6, return_mask=form)
    keep = reference.keep_mask(x.shape, p, 6)
    a = np.float32(((1 - p) * (1 + p * ALPHA_PRIME ** 2)) ** -0.5)
    grad = cdropout.alpha_dropout_backward(g, mask, p=p if form == "bool" else None)
    assert_same_bits(grad, np.where(keep, g * a, np.float32(0)))
    # finite differences: the map is affine in x for a fixed mask
    eps = 1e-3
    x64 = x.astype(np.float64)
    yp = cdropout.alpha_dropout(x64 + eps, p, seed=6)
    ym = cdropout.alpha_dropout(x64 - eps, p, seed=6)
    np.testing.assert_allclose((yp - ym) / (2 * eps),
                               cdropout.alpha_dropout_backward(np.ones_like(x64), mask, p=p), atol=1e-9)


def test_alpha_dropout_special_cases():
    x = random_data((64,), np.float64, seed=6)
    assert_same_bits(cdropout.alpha_dropout(x, 0.5, training=False), x)
    assert_same_bits(cdropout.alpha_dropout(x, 0.0, seed=1), x)
    assert not np.any(cdropout.alpha_dropout(x, 1.0, seed=1))  # PyTorch: zeros at p == 1
    assert not np.any(cdropout.alpha_dropout_backward(x, np.zeros(64, bool), p=1.0))
    x[::2] = np.nan
    y, keep = cdropout.alpha_dropout(x, 0.5, seed=2, return_mask="bool")
    assert np.all(np.isfinite(y[~keep])), "NaN in a dropped element must not leak"
    z = x.copy()
    assert cdropout.alpha_dropout(z, 0.5, seed=2, out=z) is z
    assert_same_bits(z, y)


def test_alpha_dropout_bad_arguments():
    x = np.ones((3, 4))
    for p in (-0.2, 1.2, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            cdropout.alpha_dropout(x, p, seed=0)
    with pytest.raises(ValueError, match="does not broadcast"):
        cdropout.alpha_dropout(x, 0.5, seed=0, noise_shape=(3, 2))
    with pytest.raises(ValueError, match="return_mask"):
        cdropout.alpha_dropout(x, 0.5, seed=0, return_mask="noise")
    with pytest.raises(TypeError):
        cdropout.alpha_dropout(x.astype(int), 0.5, seed=0)
    with pytest.raises(ValueError, match="p is required"):
        cdropout.alpha_dropout_backward(x, np.ones((3, 4), bool))
    _, key = cdropout.alpha_dropout(x, 0.5, seed=0, return_mask="key")
    with pytest.raises(ValueError, match="does not broadcast"):
        cdropout.alpha_dropout_backward(np.ones((4, 4)), key)


# --- Gaussian dropout --------------------------------------------------------------------------

# The constants of docs/variants.md (Gaussian dropout), copied from the page as hex.
SQRT2 = float.fromhex("0x1.6a09e667f3bcdp+0")
LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
LOG_L = [float.fromhex(h) for h in (
    "0x1.5555555555555p-2", "0x1.999999999999ap-3", "0x1.2492492492492p-3",
    "0x1.c71c71c71c71cp-4", "0x1.745d1745d1746p-4", "0x1.3b13b13b13b14p-4",
    "0x1.1111111111111p-4", "0x1.e1e1e1e1e1e1ep-5", "0x1.af286bca1af28p-5")]
SIN_S = [float.fromhex(h) for h in (
    "0x1.921fb54442d18p+0", "-0x1.4abbce625be53p-1", "0x1.466bc6775aae2p-4",
    "-0x1.32d2cce62bd86p-8", "0x1.50783487ee782p-13", "-0x1.e3074fde8871fp-19",
    "0x1.e8f434d018d63p-25", "-0x1.6fadb9f155744p-31", "0x1.aaec32af93359p-38")]
COS_C = [float.fromhex(h) for h in (
    "0x1.0000000000000p+0", "-0x1.3bd3cc9be45dep+0", "0x1.03c1f081b5ac4p-2",
    "-0x1.55d3c7e3cbffap-6", "0x1.e1f506891babbp-11", "-0x1.a6d1f2a204a8cp-16",
    "0x1.f9d38a3763cc3p-22", "-0x1.b6e24f44b128fp-28", "0x1.20c62c2f2d7f5p-34")]


def horner_py(x, coefficients):
    acc = coefficients[-1]
    for c in coefficients[-2::-1]:
        acc = acc * x + c  # CPython: a rounded multiply, then a rounded add (no FMA)
    return acc


def neg_log_u1_py(a):
    """Step 4 of docs/variants.md in Python floats (IEEE binary64): E = -log((a + 1) * 2**-32)."""
    n = float(a + 1)
    fr, ex = math.frexp(n)  # n = fr * 2**ex, fr in [0.5, 1)
    f, q = fr * 2.0, ex - 1
    if f > SQRT2:
        f, q = f * 0.5, q + 1
    k = float(32 - q)
    s = (f - 1.0) / (f + 1.0)
    s2 = s * s
    d = s + s
    lf = d + (s2 * horner_py(s2, LOG_L)) * d
    return k * LN2_HI + (k * LN2_LO - lf)


def sincos_turn_py(b):
    """Step 5 of docs/variants.md: (sin, cos) of 2*pi * b * 2**-32."""
    h, r = b >> 30, b & 0x3FFFFFFF
    reflect = r > 0x20000000
    if reflect:
        r = 0x40000000 - r
    t = math.ldexp(float(r), -30)
    t2 = t * t
    sn = t * horner_py(t2, SIN_S)
    cs = horner_py(t2, COS_C)
    s, c = (cs, sn) if reflect != (h & 1 == 1) else (sn, cs)
    if h >= 2:
        s = -s
    if h in (1, 2):
        c = -c
    return s, c


def normals_py(w):
    """The four standard normals of one row of Philox words (steps 3-6)."""
    z = []
    for k in (0, 1):
        e = neg_log_u1_py(int(w[2 * k]))
        r = math.sqrt(e + e)
        s, c = sincos_turn_py(int(w[2 * k + 1]))
        z += [r * c, r * s]
    return z


def gaussian_reference(seed, stream, offset, n):
    """The rule of docs/variants.md, scalar-wise in Python floats on the Philox words of the
    pure-NumPy reference (tests/reference.py)."""
    if n == 0:
        return np.zeros(0)
    first, last = offset >> 2, (offset + n - 1) >> 2
    blocks = [first + i for i in range(last - first + 1)]
    ctr = np.array([[b & 0xFFFFFFFF, (b >> 32) | 0x40000000, stream & 0xFFFFFFFF, stream >> 32]
                    for b in blocks], dtype=np.uint32)
    w = reference.philox4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32))
    z = [v for row in w for v in normals_py(row)]
    return np.array(z[offset & 3:(offset & 3) + n], dtype=np.float64)


def noise_reference(seed, stream, offset, p, shape):
    z = gaussian_reference(seed, stream, offset, math.prod(shape))
    sigma = math.sqrt(p / (1 - p))
    return np.array([1.0 + sigma * v for v in z], dtype=np.float64).reshape(shape)


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5, 4 * (1 << 32) - 6, (1 << 64) - 103])
@pytest.mark.parametrize("seed, stream", [(0, 0), (12345, 7), ((1 << 64) - 1, (1 << 64) - 1)])
def test_gaussian_noise_matches_reference(offset, seed, stream):
    n = 103
    got = cdropout.gaussian_noise(n, 0.5, seed=seed, stream=stream, offset=offset)
    assert_same_bits(got, noise_reference(seed, stream, offset, 0.5, (n,)))


def test_gaussian_counter_never_meets_format_v1():
    """Bit 30 of counter word 1 is set for every Gaussian block (even the last one) and is
    never set by format v1's primary (bits 29-31 zero) or secondary (bit 31) counters."""
    last_block = ((1 << 64) - 1) >> 2
    assert ((last_block >> 32) | 0x40000000) & 0x80000000 == 0
    assert (((1 << 64) - 1) >> 3) >> 32 < 1 << 29


def test_gaussian_noise_matches_reference_on_thousands_of_elements():
    n = 4099
    for seed, stream, offset, p in [(3, 1, (1 << 40) + 3, 0.3), (2**63 + 5, 2**40, 2, 0.9)]:
        got = cdropout.gaussian_noise(n, p, seed=seed, stream=stream, offset=offset)
        assert_same_bits(got, noise_reference(seed, stream, offset, p, (n,)))


# Words that hit every branch and boundary of steps 4 and 5: radius words around the powers of
# two and the SQRT2 split, u1 = 2**-32 and u1 = 1; angle words at and around every octant edge.
EDGE_A = sorted({0, 1, 2, 3, 0xB504F332, 0xB504F333, 0xB504F334, 0x6A09E666, 0x6A09E667,
                 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF}
                | {(1 << i) + d for i in range(32) for d in (-2, -1, 0) if (1 << i) + d >= 0})
EDGE_B = sorted({(o << 29) + d & 0xFFFFFFFF for o in range(9) for d in (-2, -1, 0, 1, 2)}
                | {1 << i for i in range(32)})


def test_gaussian_normals_match_scalar_reference_on_edge_and_random_words():
    """variants._normals_from_words against steps 3-6 in Python floats, bit for bit, on every
    pairing of edge words and on 2**15 random rows (rare rounding-order slips need many rows)."""
    pairs = [(a, b) for a in EDGE_A for b in EDGE_B]
    pairs += pairs[:len(pairs) % 2]
    rng = np.random.default_rng(123)
    w = np.concatenate([np.array(pairs, dtype=np.uint32).reshape(-1, 4),
                        rng.integers(0, 1 << 32, (1 << 15, 4), dtype=np.uint64).astype(np.uint32)])
    got = variants._normals_from_words(w)
    expected = np.array([normals_py(row) for row in w], dtype=np.float64)
    assert_same_bits(got, expected, "normals")


def test_gaussian_log_sin_cos_accuracy():
    """The polynomial log/sin/cos of steps 4-5 against math.* (a dense sample of words)."""
    a = np.concatenate([np.array(EDGE_A, np.uint32),
                        np.arange(0, 1 << 32, 4093, dtype=np.uint64).astype(np.uint32)])
    e = variants._neg_log_u1(a)
    u1 = [math.ldexp(float(v) + 1.0, -32) for v in a]
    ref = np.array([-math.log(u) for u in u1])
    assert np.all(e >= 0.0) and e[a == 0xFFFFFFFF][0] == 0.0
    rel = np.abs(e - ref)[ref > 0] / ref[ref > 0]
    assert rel.max() < 1e-15, rel.max()  # measured 2.2e-16: about one ulp
    b = np.concatenate([np.array(EDGE_B, np.uint32),
                        np.arange(0, 1 << 32, 4093, dtype=np.uint64).astype(np.uint32)])
    s, c = variants._sincos_turn(b)
    theta = [2.0 * math.pi * math.ldexp(float(v), -32) for v in b]  # rounded angle: ~4e-16 off
    assert np.abs(s - np.array([math.sin(t) for t in theta])).max() < 2e-15
    assert np.abs(c - np.array([math.cos(t) for t in theta])).max() < 2e-15
    assert np.abs(s * s + c * c - 1.0).max() < 1e-15
    # exact values at the quadrant edges
    assert_same_bits(variants._sincos_turn(np.array([0, 1 << 30, 1 << 31, 3 << 30], np.uint32)),
                     (np.array([0.0, 1.0, -0.0, -1.0]), np.array([1.0, -0.0, -1.0, 0.0])))


def test_gaussian_constants_are_the_documented_series():
    """The hex constants are the exact values they claim to be, rounded to nearest, and are the
    module's and docs/variants.md's constants."""
    from fractions import Fraction
    pi = Fraction("3.14159265358979323846264338327950288419716939937510582097494459")
    ln2 = Fraction("0.693147180559945309417232121458176568075500134360255254120680009")
    half_pi = pi / 2
    for j, c in enumerate(SIN_S):
        assert c == float((-1) ** j * half_pi ** (2 * j + 1) / math.factorial(2 * j + 1)), j
    for j, c in enumerate(COS_C):
        assert c == float((-1) ** j * half_pi ** (2 * j) / math.factorial(2 * j)), j
    for j, c in enumerate(LOG_L):
        assert c == float(Fraction(1, 2 * j + 3)), j
    assert SQRT2 == math.sqrt(2.0)
    assert Fraction(LN2_HI).denominator <= 1 << 32  # 32 significant bits: K * LN2_HI is exact
    assert abs(Fraction(LN2_HI) - ln2) < Fraction(1, 1 << 32)
    assert LN2_LO == float(ln2 - Fraction(LN2_HI))
    assert (variants._SQRT2, variants._LN2_HI, variants._LN2_LO) == (SQRT2, LN2_HI, LN2_LO)
    assert list(variants._LOG_Q) == LOG_L
    assert list(variants._SIN_S) == SIN_S and list(variants._COS_C) == COS_C
    import pathlib
    doc = (pathlib.Path(__file__).parent.parent / "docs" / "variants.md").read_text()
    for c in [SQRT2, LN2_HI, LN2_LO] + LOG_L + SIN_S + COS_C:
        h = c.hex()
        mantissa, exp = h.split("p")
        assert f"`{mantissa.ljust(len(mantissa.split('.')[0]) + 14, '0')}p{exp}`" in doc, h
        assert f"`{c!r}`" in doc, c


def test_gaussian_noise_path_calls_no_transcendental_function(monkeypatch):
    """log/sin/cos/exp/pow of NumPy or math are not correctly rounded: none may run."""
    import ast
    import inspect
    import textwrap
    import math as math_module

    def forbidden(*args, **kwargs):
        raise AssertionError("a transcendental function was called in the noise path")

    for name in ("log", "log2", "log10", "log1p", "exp", "exp2", "expm1", "sin", "cos", "tan",
                 "arctan", "arctan2", "sinh", "cosh", "tanh", "power", "float_power", "polyval",
                 "hypot"):
        if hasattr(np, name):
            monkeypatch.setattr(np, name, forbidden)
    for name in ("log", "log2", "log10", "log1p", "exp", "expm1", "sin", "cos", "tan", "atan",
                 "atan2", "pow", "hypot", "erf"):
        monkeypatch.setattr(math_module, name, forbidden)
    x = np.ones((3, 70000), np.float32)
    y, key = cdropout.gaussian_dropout(x, 0.3, seed=1, offset=3, return_mask="key")
    cdropout.gaussian_dropout_backward(x, key)
    cdropout.gaussian_noise(1000, 0.5, seed=2, dtype=np.float16)
    monkeypatch.undo()
    assert_same_bits(y, x * noise_reference(1, 0, 3, 0.3, x.shape).astype(np.float32))
    # ufuncs reached by operators (x ** y calls np.power without the attribute) are not in it
    forbidden_names = {"log", "log2", "log10", "log1p", "exp", "exp2", "expm1", "sin", "cos", "tan",
                       "arctan", "arctan2", "atan", "atan2", "power", "float_power", "pow",
                       "polyval", "hypot", "erf", "sinh", "cosh", "tanh"}
    for f in (variants._horner, variants._neg_log_u1, variants._sincos_turn,
              variants._normals_from_words, variants._standard_normals, variants._noise):
        tree = ast.parse(textwrap.dedent(inspect.getsource(f)))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.Pow, ast.MatMult)), f.__name__
            if isinstance(node, ast.Attribute):
                assert node.attr not in forbidden_names, (f.__name__, node.attr)


def test_gaussian_normals_kolmogorov_smirnov():
    """The standard normals against the normal CDF (math.erf): the KS statistic of 2**18
    deviates is below the 0.1% critical value 1.95/sqrt(n), for a few streams."""
    n = 1 << 18
    for seed, stream, offset in [(2024, 3, 0), (7, 2**63, 2**50 + 1), (0, 0, 0)]:
        z = np.sort(variants._standard_normals(seed, stream, offset, n))
        cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z])
        i = np.arange(1, n + 1)
        d = max((i / n - cdf).max(), (cdf - (i - 1) / n).max())
        assert d < 1.95 / math.sqrt(n), (seed, stream, d)
        assert np.abs(z).max() <= math.sqrt(64 * math.log(2.0)) + 1e-12


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gaussian_dropout_matches_reference(dtype):
    x = random_data((13, 11), dtype, seed=7)
    for p in (0.1, 0.5, 0.8):
        y, noise = cdropout.gaussian_dropout(x, p, seed=4, stream=9, offset=6, return_mask="noise")
        expected_noise = noise_reference(4, 9, 6, p, x.shape).astype(dtype)
        assert_same_bits(noise, expected_noise)
        with np.errstate(over="ignore"):
            assert_same_bits(y, x * expected_noise)
    # noise shape: drawn over (13, 1) and broadcast
    y = cdropout.gaussian_dropout(x, 0.3, seed=4, noise_shape=(13, 1))
    with np.errstate(over="ignore"):
        assert_same_bits(y, x * noise_reference(4, 0, 0, 0.3, (13, 1)).astype(dtype))


def test_gaussian_chunk_and_offset_invariance(monkeypatch):
    x = random_data((1001,), np.float32, seed=8)
    whole = cdropout.gaussian_dropout(x, 0.4, seed=2)
    for a in (1, 3, 4, 517):
        assert_same_bits(cdropout.gaussian_dropout(x[a:], 0.4, seed=2, offset=a), whole[a:])
    monkeypatch.setattr(cdropout._normals, "_CHUNK_BLOCKS", 7)  # many internal chunks
    assert_same_bits(cdropout.gaussian_dropout(x, 0.4, seed=2), whole)
    assert_same_bits(cdropout.gaussian_dropout(x[5:], 0.4, seed=2, offset=5), whole[5:])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_gaussian_noise_statistics(p):
    """Mean 1 and variance p/(1-p) (5 sigma), and the normal's shape (quantile fractions)."""
    n = 1 << 18
    m = cdropout.gaussian_noise(n, p, seed=2024, stream=3)
    var_expected = p / (1 - p)
    assert abs(m.mean() - 1.0) < 5 * math.sqrt(var_expected / n)
    assert abs(m.var() - var_expected) < 5 * var_expected * math.sqrt(2.0 / n)
    z = (m - 1.0) / math.sqrt(var_expected)
    for threshold, prob in [(0.0, 0.5), (1.0, 0.8413447460685429), (-2.0, 0.022750131948179195)]:
        frac = np.mean(z < threshold)
        assert abs(frac - prob) < 5 * math.sqrt(prob * (1 - prob) / n), (threshold, frac)


def test_gaussian_noise_independent_of_the_dropout_mask():
    n = 1 << 16
    z = cdropout.gaussian_noise(n, 0.5, seed=1, stream=0) - 1.0
    keep = cdropout.MaskKey(1, 0, 0, 0.5, (n,)).to_bool()
    corr = np.corrcoef(z, keep.astype(np.float64))[0, 1]
    assert abs(corr) < 5 / math.sqrt(n)


@pytest.mark.parametrize("form", ["noise", "key"])
def test_gaussian_dropout_backward(form):
    x = random_data((40, 3), np.float64, seed=9)
    g = random_data(x.shape, np.float64, seed=10)
    y, mask = cdropout.gaussian_dropout(x, 0.25, seed=5, return_mask=form)
    noise = noise_reference(5, 0, 0, 0.25, x.shape)
    assert_same_bits(cdropout.gaussian_dropout_backward(g, mask), g * noise)
    h = g.copy()
    assert cdropout.gaussian_dropout_backward(h, mask, out=h) is h
    assert_same_bits(h, g * noise)


def test_gaussian_dropout_generator_and_special_cases():
    x = random_data((20,), np.float32, seed=11)
    gen = cdropout.Generator(17)
    a = cdropout.gaussian_dropout(x, 0.5, seed=gen)
    b = cdropout.gaussian_dropout(x, 0.5, seed=gen)
    assert_same_bits(a, cdropout.gaussian_dropout(x, 0.5, seed=17, stream=0))
    assert_same_bits(b, cdropout.gaussian_dropout(x, 0.5, seed=17, stream=1))
    assert_same_bits(cdropout.gaussian_dropout(x, 0.5, training=False), x)
    assert_same_bits(cdropout.gaussian_dropout(x, 0.0, seed=1), x)
    assert gen.next_stream == 2


def test_gaussian_dropout_bad_arguments():
    x = np.ones(5)
    with pytest.raises(ValueError, match="p < 1"):
        cdropout.gaussian_dropout(x, 1.0, seed=0)
    for p in (-0.1, float("inf")):
        with pytest.raises(ValueError, match="p must be in"):
            cdropout.gaussian_dropout(x, p, seed=0)
    with pytest.raises(ValueError, match="return_mask"):
        cdropout.gaussian_dropout(x, 0.5, seed=0, return_mask="bits")
    with pytest.raises(ValueError, match="does not broadcast"):
        cdropout.gaussian_dropout(x, 0.5, seed=0, noise_shape=(2,))
    with pytest.raises(TypeError):
        cdropout.gaussian_noise(5, 0.5, seed=0, dtype=np.int32)
    _, bits = cdropout.dropout(x, 0.5, seed=0, return_mask="bits")
    with pytest.raises(TypeError, match="BitMask"):
        cdropout.gaussian_dropout_backward(x, bits)


# --- classic dropout (scale=False) -------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_classic_dropout_training_and_inference(dtype):
    x = random_data((300,), dtype, seed=12)
    p = 0.3
    y, key = cdropout.dropout(x, p, seed=5, scale=False, return_mask="key")
    keep = reference.keep_mask(x.shape, p, 5)
    assert_same_bits(y, reference.apply_mask(x, keep, p, scale=False))  # kept values unscaled
    assert key.scale is False
    assert_same_bits(cdropout.dropout_backward(np.ones_like(x), key), keep.astype(dtype))
    # inference multiplies by 1 - p instead
    assert_same_bits(cdropout.dropout(x, p, scale=False, training=False), x * dtype(1 - p))


def test_classic_dropout_expectation_matches_inference():
    n = 1 << 18
    x = np.ones(n)
    for p in (0.1, 0.5, 0.9):
        mean = cdropout.dropout(x, p, seed=3, scale=False).mean()
        assert abs(mean - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
        assert cdropout.dropout(x[:1], p, scale=False, training=False)[0] == 1 - p


@pytest.mark.parametrize("module", ["_structured", "_alpha", "_gaussian"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"cdropout.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_alpha_dropout_thread_count_invariance():
    x = random_data((3, 1 << 16), np.float32, seed=13)
    expected = alpha_reference(x, reference.keep_mask(x.shape, 0.3, 21, 5), 0.3)
    for nt in (1, 2, 3):
        assert_same_bits(cdropout.alpha_dropout(x, 0.3, seed=21, stream=5, num_threads=nt), expected)
