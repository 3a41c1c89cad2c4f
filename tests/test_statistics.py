"""Keep fractions are within 5 sigma of 1 - p, in both stream formats (1: Philox4x32-10, 2: ARS-7)."""
import math

import numpy as np
import pytest

import cdropout as cd
import reference

N = 2**20
PS = [0.01, 0.1, 0.5, 0.9, 0.99]
by_format = pytest.mark.parametrize("fmt", [1, 2], ids=["v1", "v2"])


def _within(count, n, q, sigmas=5.0):
    sd = math.sqrt(n * q * (1.0 - q))
    return abs(count - n * q) <= sigmas * sd, (count, n * q, sd)


@by_format
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", [0, 2**63 + 12345])
def test_keep_fraction(p, seed, fmt):
    x = np.ones(N, np.float32)
    y, mask = cd.dropout(x, p, seed=seed, stream=1, return_mask="bool", format=fmt)
    kept = int(np.count_nonzero(mask))
    ok, info = _within(kept, N, 1.0 - p)
    assert ok, info
    assert int(np.count_nonzero(y)) == kept
    assert np.all(y[mask] == np.float32(1.0 / (1.0 - p)))


@pytest.fixture
def default_generator_state():
    """Restore the module's default generator after the test."""
    saved = cd.default_generator().get_state()
    yield
    cd.default_generator().set_state(saved)


@by_format
@pytest.mark.parametrize("p", PS)
def test_keep_fraction_default_generator(p, fmt, default_generator_state):
    """Unseeded calls draw from the default generator: after cdropout.seed(s) the k-th call is
    the mask of (s, stream k) in the generator's format; the keep fraction of both calls is 1 - p."""
    s = 4242 + int(p * 1000)
    cd.default_generator().set_state({"seed": 0, "next_stream": 0, "n_children": 0, "format": fmt})
    cd.seed(s)  # keeps the default generator's format
    assert cd.default_generator().format == fmt
    x = np.ones(N, np.float32)
    for stream in (0, 1):
        _, mask = cd.dropout(x, p, return_mask="bool")
        np.testing.assert_array_equal(mask, reference.keep_flat(N, p, s, stream, 0, fmt=fmt))
        ok, info = _within(int(np.count_nonzero(mask)), N, 1.0 - p)
        assert ok, info


@by_format
@pytest.mark.parametrize("p", PS)
def test_reference_keep_fraction(p, fmt):
    """The reference itself is unbiased (a check of the reference, not of cdropout)."""
    keep = reference.keep_flat(N, p, 99, 0, 0, fmt=fmt)
    ok, info = _within(int(np.count_nonzero(keep)), N, 1.0 - p)
    assert ok, info


@by_format
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_fraction_per_position_in_block(p, fmt):
    """Each of the 8 halves of a block (h = e & 7) is kept with probability 1 - p."""
    x = np.ones(N, np.float32)
    _, mask = cd.dropout(x, p, seed=2024, return_mask="bool", format=fmt)
    per_h = mask.reshape(-1, 8).sum(axis=0)
    for h in range(8):
        ok, info = _within(int(per_h[h]), N // 8, 1.0 - p)
        assert ok, (h, info)


@by_format
def test_neighbours_are_uncorrelated(fmt):
    """P(keep[i] and keep[i+k]) = q^2 for k = 1 (same block) and k = 8 (next block)."""
    q = 0.5
    x = np.ones(N, np.float32)
    _, m = cd.dropout(x, 1.0 - q, seed=77, stream=3, return_mask="bool", format=fmt)
    for k in (1, 4, 8, 64):
        both = int(np.count_nonzero(m[:-k] & m[k:]))
        ok, info = _within(both, N - k, q * q)
        assert ok, (k, info)
