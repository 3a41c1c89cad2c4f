"""Keep fractions are within 5 sigma of 1 - p."""
import math

import numpy as np
import pytest

import cdropout as cd
import reference

N = 2**20
PS = [0.01, 0.1, 0.5, 0.9, 0.99]


def _within(count, n, q, sigmas=5.0):
    sd = math.sqrt(n * q * (1.0 - q))
    return abs(count - n * q) <= sigmas * sd, (count, n * q, sd)


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", [0, 2**63 + 12345])
def test_keep_fraction(p, seed):
    x = np.ones(N, np.float32)
    y, mask = cd.dropout(x, p, seed=seed, stream=1, return_mask="bool")
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


@pytest.mark.parametrize("p", PS)
def test_keep_fraction_default_generator(p, default_generator_state):
    """Unseeded calls draw from the default generator: after cdropout.seed(s) the k-th call is
    format v1's mask of (s, stream k); the keep fraction of both calls is 1 - p."""
    s = 4242 + int(p * 1000)
    cd.seed(s)
    x = np.ones(N, np.float32)
    for stream in (0, 1):
        _, mask = cd.dropout(x, p, return_mask="bool")
        np.testing.assert_array_equal(mask, reference.keep_flat(N, p, s, stream, 0))
        ok, info = _within(int(np.count_nonzero(mask)), N, 1.0 - p)
        assert ok, info


@pytest.mark.parametrize("p", PS)
def test_reference_keep_fraction(p):
    """The reference itself is unbiased (a check of the reference, not of cdropout)."""
    keep = reference.keep_flat(N, p, 99, 0, 0)
    ok, info = _within(int(np.count_nonzero(keep)), N, 1.0 - p)
    assert ok, info


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_fraction_per_position_in_block(p):
    """Each of the 8 halves of a block (h = e & 7) is kept with probability 1 - p."""
    x = np.ones(N, np.float32)
    _, mask = cd.dropout(x, p, seed=2024, return_mask="bool")
    per_h = mask.reshape(-1, 8).sum(axis=0)
    for h in range(8):
        ok, info = _within(int(per_h[h]), N // 8, 1.0 - p)
        assert ok, (h, info)


def test_neighbours_are_uncorrelated():
    """P(keep[i] and keep[i+k]) = q^2 for k = 1 (same block) and k = 8 (next block)."""
    q = 0.5
    x = np.ones(N, np.float32)
    _, m = cd.dropout(x, 1.0 - q, seed=77, stream=3, return_mask="bool")
    for k in (1, 4, 8, 64):
        both = int(np.count_nonzero(m[:-k] & m[k:]))
        ok, info = _within(both, N - k, q * q)
        assert ok, (k, info)
