"""Property-based fuzzing of dropout / dropout_backward against the NumPy reference (format v1).

Every generated call either equals the reference bit for bit (output, every mask form, the
backward from every mask form, on every kernel path) or raises TypeError/ValueError and leaves
its input untouched. Profiles (tests/conftest.py): HYPOTHESIS_PROFILE=ci (default, 100
examples per test), dev, long (5000 examples: `HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py`).
"""
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cdropout  # noqa: E402
from cdropout import _config  # noqa: E402
import reference  # noqa: E402
from helpers import assert_same_bits, assert_same_mask  # noqa: E402

U64 = 1 << 64
DTYPES = (np.float16, np.float32, np.float64)
ISAS = tuple(cdropout.simd_info()["available"])

# p values that matter: the ends, the smallest subnormal, the largest double below 1, and
# values near the rounding of T.
SPECIAL_P = (0.0, 1.0, 5e-324, 1.0 - 2.0 ** -53, 0.5, 0.1, 0.3, 0.9, 0.99,
             2.0 ** -33, 2.0 ** -32, 1.0 - 2.0 ** -33, 1.0 - 2.0 ** -32, 1e-12, 0.999999)
EDGE_U64 = (0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 61 * 8 - 1, 2 ** 63, U64 - 1)


def _p_from_T(T):
    """A p whose threshold is exactly T (1 - T / 2**32 is exact in float64 for T < 2**32)."""
    p = 1.0 - T / 4294967296.0
    assert reference.threshold(p) == T
    return p


@st.composite
def probabilities(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(SPECIAL_P))
    if kind == 1:
        return draw(st.floats(0.0, 1.0, allow_nan=False))
    # a T with Tlo != 0 (ties are resolved by the secondary draw)
    thi = draw(st.integers(0, 0xFFFF))
    tlo = draw(st.integers(1, 0xFFFF))
    return _p_from_T((thi << 16) | tlo)


@st.composite
def u64s(draw):
    return draw(st.one_of(st.sampled_from(EDGE_U64), st.integers(0, U64 - 1), st.integers(0, 4096)))


@st.composite
def arrays(draw, max_size=3000):
    """(x, description): a float array of any layout the API must accept."""
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 5))
    dim = st.one_of(st.integers(0, 4), st.integers(5, 40)) if ndim <= 2 else st.integers(0, 5)
    shape = tuple(draw(dim) for _ in range(ndim))
    if ndim == 1 and draw(st.booleans()):
        shape = (draw(st.integers(0, max_size)),)
    assume(math.prod(shape) <= max_size)
    layout = draw(st.sampled_from(("C", "F", "reversed", "stepped", "transposed", "broadcast")))
    vseed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(vseed)

    def values(shp):
        n = math.prod(shp)
        v = rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))
        if n:
            special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, 6e-8, 70000.0])
            idx = rng.integers(0, n, min(n, 8))
            v[idx] = special[: len(idx)]
        with np.errstate(over="ignore"):
            return v.astype(dtype).reshape(shp)

    if layout == "C":
        x = values(shape)
    elif layout == "F":
        x = np.array(values(shape), order="F")
    elif layout == "reversed":
        x = values(shape)
        if ndim:
            axes = [a for a in range(ndim) if draw(st.booleans())] or [0]
            x = x[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(ndim))]
    elif layout == "stepped":
        steps = [draw(st.sampled_from((1, 2, 3, -2))) for _ in range(ndim)]
        big = values(tuple(max(1, d) * abs(s) for d, s in zip(shape, steps)))
        x = big[tuple(slice(None, None, s) for s in steps)][tuple(slice(0, d) for d in shape)]
    elif layout == "transposed":
        perm = draw(st.permutations(range(ndim)))
        src = values(tuple(shape[i] for i in np.argsort(perm)))
        x = src.transpose(perm)
    else:  # zero strides: a read-only broadcast view
        small = tuple(d if draw(st.booleans()) else 1 for d in shape)
        x = np.broadcast_to(values(small), shape)
    assert x.shape == shape, (x.shape, shape)
    return x, f"{np.dtype(dtype).name} {shape} {layout} strides={x.strides}"


def _snapshot(a):
    return reference.bits_of(np.array(a, copy=True))


def _expected_keep(shape, p, seed, stream, offset):
    return np.asarray(reference.keep_mask(shape, p, seed, stream, offset))


def _ref_apply(x, keep, p):
    # reference.apply_mask goes through np.ascontiguousarray, which makes a 0-d array 1-d.
    return reference.apply_mask(x, keep, p).reshape(np.shape(x))


@given(data=st.data(), arr=arrays(), p=probabilities(), seed=u64s(), stream=u64s(),
       offset=u64s(), return_mask=st.sampled_from((None, "bool", "bits", "key")),
       out_mode=st.sampled_from(("none", "fresh", "fresh_f", "inplace", "overlap")),
       threads=st.sampled_from((None, 1, 2, 3)), isa=st.sampled_from(ISAS),
       force_tie=st.booleans())
def test_valid_calls_match_reference(data, arr, p, seed, stream, offset, return_mask, out_mode,
                                     threads, isa, force_tie):
    x, desc = arr
    n = x.size
    note(desc)
    offset = min(offset, U64 - n)  # legal offsets only here (the invalid test covers the rest)
    if force_tie and n:
        # Make element 0 a tie (u == Thi) so the secondary draw decides it.
        u, _ = reference.draws(1, seed, stream, offset)
        tlo = data.draw(st.integers(1, 0xFFFF), label="tlo")
        if int(u[0]) > 0:
            p = _p_from_T((int(u[0]) << 16) | tlo)
    x_before = _snapshot(x)
    expected_keep = _expected_keep(x.shape, p, seed, stream, offset)
    expected = _ref_apply(x, expected_keep, p)

    out = None
    if out_mode == "fresh":
        out = np.full(x.shape, 7, x.dtype)
    elif out_mode == "fresh_f":
        out = np.full(x.shape, 7, x.dtype, order="F")
    elif out_mode in ("inplace", "overlap") and x.flags.writeable:
        if out_mode == "inplace":
            out = x
        else:  # x and out in one buffer, out shifted by a few elements
            shift = data.draw(st.integers(1, 9), label="shift")
            base = np.empty(n + shift, x.dtype)
            base[:n] = np.ascontiguousarray(x).ravel()
            x = base[:n].reshape(x.shape)
            out = base[shift:].reshape(x.shape)
    with _config.forced_isa(isa):
        res = cdropout.dropout(x, p, seed=seed, stream=stream, offset=offset, out=out,
                               return_mask=return_mask, num_threads=threads)
    y, mask = (res, None) if return_mask is None else res
    assert_same_bits(y, expected, f"dropout {desc} p={p!r}")
    if out is not None:
        assert y is out
    if out is not x and out_mode != "overlap":
        assert np.array_equal(_snapshot(x), x_before), "input modified"

    keep = expected_keep
    if return_mask == "bool":
        assert_same_mask(mask, keep)
    elif return_mask == "bits":
        assert mask.shape == x.shape and mask.p == p
        assert np.array_equal(mask.data, reference.packbits(keep))
        assert_same_mask(mask.to_bool(), keep)
    elif return_mask == "key":
        assert (mask.seed, mask.stream, mask.offset, mask.p, mask.shape) == (
            seed, stream, offset, p, x.shape)
        assert np.array_equal(mask.to_bits().data, reference.packbits(keep))

    if mask is not None:
        g = np.random.default_rng(seed & 0xFFFF).standard_normal(x.shape).astype(x.dtype)
        g_before = _snapshot(g)
        with _config.forced_isa(isa):
            gi = cdropout.dropout_backward(g, mask, p=p if return_mask == "bool" else None,
                                           num_threads=threads)
        assert_same_bits(gi, _ref_apply(g, keep, p), f"backward from {return_mask}")
        assert np.array_equal(_snapshot(g), g_before), "grad modified"


@given(arr=arrays(max_size=500), p=probabilities(), seed=u64s(), offset=u64s(),
       isa=st.sampled_from(ISAS), return_mask=st.sampled_from((None, "bool", "bits", "key")))
def test_chunks_via_offset_match_whole(arr, p, seed, offset, isa, return_mask):
    """dropout(x.ravel()[a:], offset=o+a) == dropout(x.ravel(), offset=o)[a:] for any split a."""
    x, desc = arr
    flat = np.ascontiguousarray(x).ravel()
    n = flat.size
    offset = min(offset, U64 - n)
    with _config.forced_isa(isa):
        whole = cdropout.dropout(flat, p, seed=seed, offset=offset)
        for a in sorted({0, n // 3, n // 2, max(0, n - 1)}):
            part = cdropout.dropout(flat[a:], p, seed=seed, offset=offset + a)
            assert_same_bits(part, whole[a:], f"chunk at {a} of {desc}")


@given(arr=arrays(max_size=1000), p=probabilities(), seed=u64s(), offset=u64s(), data=st.data(),
       return_mask=st.sampled_from((None, "bool", "bits", "key")), isa=st.sampled_from(ISAS))
def test_noise_shape_matches_reference(arr, p, seed, offset, data, return_mask, isa):
    x, desc = arr
    ns = tuple(d if data.draw(st.booleans(), label="keep dim") else 1 for d in x.shape)
    offset = min(offset, U64 - math.prod(ns))
    keep = _expected_keep(ns, p, seed, 0, offset)
    with _config.forced_isa(isa):
        res = cdropout.dropout(x, p, seed=seed, offset=offset, noise_shape=ns, return_mask=return_mask)
    y, mask = (res, None) if return_mask is None else res
    assert_same_bits(y, _ref_apply(x, keep, p), f"noise_shape={ns} {desc}")
    if mask is not None:
        g = np.ones(x.shape, x.dtype)
        gi = cdropout.dropout_backward(g, mask, p=p if return_mask == "bool" else None)
        assert_same_bits(gi, _ref_apply(g, keep, p), f"backward noise_shape={ns} from {return_mask}")


# ------------------------------------------------------------------------------ invalid calls

BAD_P = (-0.0001, 1.0000001, math.nan, math.inf, -math.inf, -5e-324, 2.0)
BAD_P_TYPE = ("0.5", None, True, 1j, [0.5], np.array([0.5, 0.5]))
BAD_U64 = (-1, U64, 2 ** 100, -(2 ** 64))
BAD_U64_TYPE = (1.5, "1", True, 1j, [1])


@st.composite
def bad_calls(draw):
    """(kwargs of dropout, what is wrong): exactly one argument is wrong."""
    what = draw(st.sampled_from(("p", "p_type", "seed", "seed_type", "stream", "stream_type",
                                 "offset", "offset_type", "offset_past_end", "return_mask",
                                 "threads", "stream_with_generator", "out_shape", "out_dtype",
                                 "out_readonly", "out_type", "noise_shape")))
    kw = {}
    if what == "p":
        kw["p"] = draw(st.sampled_from(BAD_P))
    elif what == "p_type":
        kw["p"] = draw(st.sampled_from(BAD_P_TYPE))
    elif what in ("seed", "stream", "offset"):
        kw[what] = draw(st.sampled_from(BAD_U64))
    elif what in ("seed_type", "stream_type", "offset_type"):
        kw[what[:-5]] = draw(st.sampled_from(BAD_U64_TYPE))
    elif what == "offset_past_end":
        kw["offset"] = "past_end"
    elif what == "return_mask":
        kw["return_mask"] = draw(st.sampled_from(("BOOL", "mask", "", 1, True)))
    elif what == "threads":
        kw["num_threads"] = draw(st.sampled_from((0, -1, 1.5, "2", True)))
    elif what == "stream_with_generator":
        kw["seed"] = cdropout.Generator(1)
        kw["stream"] = 3
    elif what == "noise_shape":
        kw["noise_shape"] = "bad"
    else:
        kw["out"] = what
    return kw, what


@given(arr=arrays(max_size=300), call=bad_calls(), training=st.booleans())
def test_invalid_calls_raise_and_leave_input(arr, call, training):
    x, desc = arr
    kw, what = call
    kw = dict(kw)
    kw.setdefault("p", 0.5)
    if "seed" not in kw:
        kw["seed"] = 1
    if kw.get("offset") == "past_end":
        if x.size == 0:
            kw["offset"] = U64  # still out of range
        else:
            kw["offset"] = U64 - x.size + 1
    out = kw.get("out")
    if out == "out_shape":
        kw["out"] = np.empty(x.shape + (1,), x.dtype)
    elif out == "out_dtype":
        kw["out"] = np.empty(x.shape, np.float64 if x.dtype != np.float64 else np.float32)
    elif out == "out_readonly":
        o = np.empty(x.shape, x.dtype)
        o.flags.writeable = False
        kw["out"] = o
    elif out == "out_type":
        kw["out"] = x.tolist() if x.ndim else [0.0]
    if what == "noise_shape":
        kw["noise_shape"] = tuple(d + 2 for d in x.shape) if x.ndim else (2,)
    note(f"{desc} {what} {kw!r}"[:500])
    before = _snapshot(x)
    try:
        cdropout.dropout(x, training=training, **kw)
    except (TypeError, ValueError):
        pass
    else:
        raise AssertionError(f"{what} was accepted (training={training})")
    assert np.array_equal(_snapshot(x), before), "input modified by a rejected call"


@given(arr=arrays(max_size=300), p=probabilities(), seed=u64s(),
       form=st.sampled_from(("bool", "bits", "key")),
       wrong=st.sampled_from(("shape", "bool_without_p", "p_disagrees", "bits_dtype",
                              "bits_size", "mask_dtype")))
def test_backward_rejects_bad_masks(arr, p, seed, form, wrong):
    x, desc = arr
    g = np.ascontiguousarray(x)
    before = _snapshot(g)
    _, mask = cdropout.dropout(x, p, seed=seed, return_mask=form)
    kw = {"p": p} if form == "bool" else {}
    if wrong == "shape":
        g = np.zeros(g.shape + (2,), g.dtype)
        before = _snapshot(g)
    elif wrong == "bool_without_p":
        if form != "bool":
            return
        kw = {}
    elif wrong == "p_disagrees":
        if form == "bool":
            return
        kw = {"p": 0.25 if p != 0.25 else 0.75}
    elif wrong == "bits_dtype":
        if form != "bits":
            return
        with pytest.raises(TypeError):  # an invalid record cannot be built, so never applied
            cdropout.BitMask(mask.data.astype(np.int16), mask.shape, mask.p)
        return
    elif wrong == "bits_size":
        if form != "bits":
            return
        with pytest.raises(ValueError):
            cdropout.BitMask(np.zeros(mask.data.size + 1, np.uint8), mask.shape, mask.p)
        return
    elif wrong == "mask_dtype":
        if form != "bool":
            return
        mask = mask.astype(np.uint8)
    with pytest.raises((TypeError, ValueError)):
        cdropout.dropout_backward(g, mask, **kw)
    assert np.array_equal(_snapshot(g), before)
