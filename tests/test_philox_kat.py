"""Philox4x32 known answers (Random123 kat_vectors): the reference and cdropout.philox4x32."""
import numpy as np
import pytest

import reference
from helpers import scalar_philox
from reference import KAT_VECTORS

ROUNDS = sorted({v[0] for v in KAT_VECTORS})


def _batch(rounds):
    return [v for v in KAT_VECTORS if v[0] == rounds]


def _cd():
    import cdropout
    return cdropout


# ---------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("rounds,ctr,key,expected", KAT_VECTORS)
def test_reference_kat(rounds, ctr, key, expected):
    out = reference.philox4x32(np.array(ctr, np.uint32), key, rounds)
    assert out.dtype == np.uint32
    assert [int(w) for w in out] == list(expected)


@pytest.mark.parametrize("rounds,ctr,key,expected", KAT_VECTORS)
def test_scalar_transcription_kat(rounds, ctr, key, expected):
    assert scalar_philox(ctr, key, rounds) == expected


def test_reference_matches_scalar_on_random_counters():
    rng = np.random.default_rng(1)
    ctr = rng.integers(0, 2**32, (64, 4), dtype=np.uint64).astype(np.uint32)
    for rounds in (7, 10):
        key = tuple(int(k) for k in rng.integers(0, 2**32, 2))
        out = reference.philox4x32(ctr, key, rounds)
        for i in range(len(ctr)):
            assert tuple(int(w) for w in out[i]) == scalar_philox(
                tuple(int(w) for w in ctr[i]), key, rounds)


# ---------------------------------------------------------------- cdropout.philox4x32


@pytest.mark.parametrize("rounds,ctr,key,expected", KAT_VECTORS)
def test_cdropout_philox_kat(rounds, ctr, key, expected):
    cd = _cd()
    out = cd.philox4x32(np.array(ctr, np.uint32), np.array(key, np.uint32), rounds=rounds)
    out = np.asarray(out)
    assert out.dtype == np.uint32
    assert out.shape == (4,)
    assert [int(w) for w in out] == list(expected)


def test_cdropout_philox_default_is_ten_rounds():
    cd = _cd()
    for _, ctr, key, expected in _batch(10):
        out = cd.philox4x32(np.array(ctr, np.uint32), np.array(key, np.uint32))
        assert [int(w) for w in np.asarray(out)] == list(expected)


@pytest.mark.parametrize("rounds", ROUNDS)
def test_cdropout_philox_batched_3x4(rounds):
    """Counters of shape (3, 4), one KAT counter a row, under each KAT key in turn."""
    cd = _cd()
    for _, _, key, _ in _batch(rounds):
        ctrs = np.array([v[1] for v in _batch(rounds)], np.uint32)
        out = np.asarray(cd.philox4x32(ctrs, np.array(key, np.uint32), rounds=rounds))
        assert out.dtype == np.uint32 and out.shape == (3, 4)
        np.testing.assert_array_equal(out, reference.philox4x32(ctrs, key, rounds))
        # the row whose key matches the vector gives the published answer
        for i, (_, _, k, e) in enumerate(_batch(rounds)):
            if k == key:
                assert [int(w) for w in out[i]] == list(e)


@pytest.mark.parametrize("rounds", ROUNDS)
def test_cdropout_philox_batched_2x3x4(rounds):
    cd = _cd()
    vecs = _batch(rounds)
    ctrs = np.array([[v[1] for v in vecs], [v[1] for v in vecs[::-1]]], np.uint32)
    assert ctrs.shape == (2, 3, 4)
    for _, _, key, _ in vecs:
        out = np.asarray(cd.philox4x32(ctrs, np.array(key, np.uint32), rounds=rounds))
        assert out.dtype == np.uint32 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, reference.philox4x32(ctrs, key, rounds))
        for i, (_, _, k, e) in enumerate(vecs):
            if k == key:
                assert [int(w) for w in out[0, i]] == list(e)
                assert [int(w) for w in out[1, len(vecs) - 1 - i]] == list(e)


@pytest.mark.parametrize("rounds", [7, 10])
def test_cdropout_philox_random_counters_match_reference(rounds):
    cd = _cd()
    rng = np.random.default_rng(rounds)
    ctrs = rng.integers(0, 2**32, (1000, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    out = np.asarray(cd.philox4x32(ctrs, key, rounds=rounds))
    np.testing.assert_array_equal(out, reference.philox4x32(ctrs, key, rounds))


def test_cdropout_philox_noncontiguous_counters():
    cd = _cd()
    rng = np.random.default_rng(5)
    big = rng.integers(0, 2**32, (40, 8), dtype=np.uint64).astype(np.uint32)
    ctrs = big[::3, 1:8:2]  # neither rows nor columns contiguous
    key = (0x12345678, 0x9ABCDEF0)
    out = np.asarray(cd.philox4x32(ctrs, np.array(key, np.uint32)))
    np.testing.assert_array_equal(out, reference.philox4x32(ctrs, key, 10))
