"""Property test: random shapes, strides, offsets, seeds, streams, p, dtypes, mask forms and
thread counts, all bitwise against the reference."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdropout as cd
import reference
from helpers import FLOAT_DTYPES, THREAD_COUNTS, assert_same_bits, assert_same_mask, random_data

U64 = st.integers(0, 2**64 - 1)
EDGE_U64 = st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]) | U64


@st.composite
def strided_arrays(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 40), min_size=ndim, max_size=ndim)))
    steps = tuple(draw(st.sampled_from([1, 2, 3, -1, -2])) for _ in range(ndim))
    starts = tuple(draw(st.integers(0, 1)) for _ in range(ndim))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    order = draw(st.sampled_from("CF"))
    base_shape = tuple(st_ + abs(sp) * max(d, 1) for d, sp, st_ in zip(shape, steps, starts))
    base = np.asarray(random_data(base_shape, dtype, draw(st.integers(0, 10))), order=order)
    index = tuple(slice(0, 0) if d == 0 else
                  slice(s0, s0 + abs(sp) * d, sp) if sp > 0 else
                  slice(s0 + abs(sp) * (d - 1), s0 - 1 if s0 else None, sp)
                  for d, sp, s0 in zip(shape, steps, starts))
    x = base[index + (Ellipsis,)]  # (the Ellipsis keeps a 0-d result an array, not a scalar)
    assert x.shape == shape, (x.shape, shape)
    return x


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=strided_arrays(), seed=EDGE_U64, stream=EDGE_U64, offset=EDGE_U64,
       p=st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 0.5, 1.5 * 2.0**-32, 1.0 - 2.0**-33]),
       form=st.sampled_from([None, "bool", "bits", "key"]),
       threads=st.sampled_from((None,) + THREAD_COUNTS), in_place=st.booleans())
def test_random_arguments_bitwise(x, seed, stream, offset, p, form, threads, in_place):
    with cd._config.forced_min_per_thread(1):
        _check_random_arguments(x, seed, stream, offset, p, form, threads, in_place)


def _check_random_arguments(x, seed, stream, offset, p, form, threads, in_place):
    offset = min(offset, 2**64 - x.size)
    x0 = x.copy()
    keep = reference.keep_mask(x.shape, p, seed, stream, offset)
    want = reference.apply_mask(x0, keep, p)
    kwargs = dict(seed=seed, stream=stream, offset=offset, return_mask=form, num_threads=threads)
    if in_place:
        kwargs["out"] = x
    r = cd.dropout(x, p, **kwargs)
    y = r if form is None else r[0]
    assert_same_bits(y, want)
    assert_same_bits(x, want if in_place else x0, "x after the call")
    if form is not None:
        mask = r[1]
        assert_same_mask(mask if form == "bool" else mask.to_bool(), keep)
        g = random_data(x.shape, x.dtype, 3)
        extra = {"p": p} if form == "bool" else {}
        assert_same_bits(cd.dropout_backward(g, mask, num_threads=threads, **extra),
                         reference.apply_mask(g, keep, p), "backward")
