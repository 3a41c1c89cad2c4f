"""ARS-R (format v2's counter function): the reference's AES against FIPS-197 and Intel's AES-NI
example, its ARS against Random123's kat_vectors, and cdropout.ars4x32 against both.

The reference (tests/reference.py) builds AES from FIPS-197's definitions (the S-box from the
inverse in GF(2^8) and the affine map); the full AES-128 encryptions below prove its round
functions and byte order, the Random123 known answers prove ARS's key schedule and word order.
"""
import numpy as np
import pytest

import cdropout
import reference
from helpers import scalar_ars
from reference import ARS_KAT_VECTORS

U32 = 1 << 32


def _words(out):
    return [int(w) for w in np.asarray(out).ravel()]


# ---------------------------------------------------------------- AES, from FIPS-197


def test_sbox_is_fips197s():
    """FIPS-197 5.1.1's worked example {53} -> {ed}, S(0) = {63}, a permutation with no fixed
    point and no 'opposite' fixed point (S(a) != a ^ {ff}), as the design requires."""
    s = reference.SBOX.astype(int)
    assert s[0x53] == 0xED and s[0x00] == 0x63 and s[0x01] == 0x7C and s[0xFF] == 0x16
    assert sorted(s) == list(range(256))
    assert all(s[a] != a and s[a] != a ^ 0xFF for a in range(256))


def test_gf_arithmetic():
    """FIPS-197 4.2's example {57} * {83} = {c1}, 4.2.1's {57} * {13} = {fe}; inverses."""
    assert reference.gf_mul(0x57, 0x83) == 0xC1
    assert reference.gf_mul(0x57, 0x13) == 0xFE
    assert all(reference.gf_mul(a, reference.gf_inverse(a)) == 1 for a in range(1, 256))


def test_mix_columns_example():
    """A MixColumns column of the FIPS-197 Appendix B trace (round 1: d4 bf 5d 30 -> 04 66 81 e5)."""
    col = np.frombuffer(bytes.fromhex("d4bf5d30" * 4), np.uint8)
    assert reference.mix_columns(col).tobytes().hex()[:8] == "046681e5"


@pytest.mark.parametrize("key,plaintext,ciphertext", [
    # FIPS-197 Appendix C.1 (AES-128)
    ("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff", "69c4e0d86a7b0430d8cdb78070b4c55a"),
    # FIPS-197 Appendix B (the cipher example)
    ("2b7e151628aed2a6abf7158809cf4f3c", "3243f6a8885a308d313198a2e0370734", "3925841d02dc09fbdc118597196a0b32"),
])
def test_aes128_from_the_round_functions(key, plaintext, ciphertext):
    """A full AES-128 from the reference's AESENC/AESENCLAST and FIPS-197's key expansion."""
    got = reference.aes128_encrypt(bytes.fromhex(plaintext), bytes.fromhex(key))
    assert got.hex() == ciphertext


def test_key_expansion_fips197_a1():
    """FIPS-197 Appendix A.1: the last round key of 2b7e1516... is d014f9a8 c9ee2589 e13f0cc8 b6630ca6."""
    rk = reference.aes128_key_expansion(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
    assert rk[10].tobytes().hex() == "d014f9a8c9ee2589e13f0cc8b6630ca6"


def test_aesenc_instruction_example():
    """The AESENC / AESENCLAST example of Intel's AES-NI white paper (S. Gueron, "Intel Advanced
    Encryption Standard (AES) New Instructions Set"): values written as 128-bit numbers, most
    significant byte first, so the state's byte 0 is the last byte of the hex string."""
    def state(h):
        return np.frombuffer(bytes.fromhex(h)[::-1], np.uint8)

    def number(s):
        return s.tobytes()[::-1].hex()

    v, k = state("7b5b54657374566563746f725d53475d"), state("48692853686179295b477565726f6e5d")
    assert number(reference.aesenc(v, k)) == "a8311c2f9fdba3c58b104b58ded7e595"
    assert number(reference.aesenclast(v, k)) == "c7fb881e938c5964177ec42553fdc611"


def test_word_byte_order():
    """Byte 4i + j of the state is byte j of word i (word 0 the low 32 bits, little-endian)."""
    s = reference.words_to_state(np.array([0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C], np.uint32))
    assert s.tolist() == list(range(16))
    assert _words(reference.state_to_words(s)) == [0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C]


# ---------------------------------------------------------------- ARS, from Random123


@pytest.mark.parametrize("rounds,ctr,key,expected", ARS_KAT_VECTORS)
def test_reference_ars_kat(rounds, ctr, key, expected):
    out = reference.ars4x32(np.array(ctr, np.uint32), key, rounds)
    assert out.dtype == np.uint32
    assert _words(out) == list(expected)


@pytest.mark.parametrize("rounds,ctr,key,expected", ARS_KAT_VECTORS)
def test_scalar_ars_kat(rounds, ctr, key, expected):
    """The one-counter transcription (128-bit Python ints, the key schedule on its halves)."""
    assert scalar_ars(ctr, key, rounds) == expected


def test_reference_ars_matches_scalar_on_random_counters():
    rng = np.random.default_rng(11)
    ctr = rng.integers(0, U32, (24, 4), dtype=np.uint64).astype(np.uint32)
    for rounds in (1, 2, 7, 10):
        key = tuple(int(k) for k in rng.integers(0, U32, 4, dtype=np.uint64))
        out = reference.ars4x32(ctr, key, rounds)
        for i in range(len(ctr)):
            assert tuple(_words(out[i])) == scalar_ars(tuple(int(w) for w in ctr[i]), key, rounds)


def test_weyl_key_schedule_carries_across_words():
    """The key increments are 64-bit adds: a carry from word 0 reaches word 1 (and word 2's into
    word 3), never word 1's into word 2."""
    rk = reference.ars_round_keys((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), 1)
    words = _words(reference.state_to_words(rk[0]))
    lo = (2**64 - 1 + 0x9E3779B97F4A7C15) % 2**64
    hi = (2**64 - 1 + 0xBB67AE8584CAA73B) % 2**64
    assert words == [lo & 0xFFFFFFFF, lo >> 32, hi & 0xFFFFFFFF, hi >> 32]


# ---------------------------------------------------------------- cdropout.ars4x32 (the C)


@pytest.mark.parametrize("rounds,ctr,key,expected", ARS_KAT_VECTORS)
def test_cdropout_ars_kat(rounds, ctr, key, expected):
    out = cdropout.ars4x32(np.array(ctr, np.uint32), np.array(key, np.uint32), rounds=rounds)
    assert out.dtype == np.uint32 and out.shape == (4,)
    assert _words(out) == list(expected)


def test_cdropout_ars_default_is_seven_rounds():
    ctr = np.array([[1, 2, 3, 4], [0xFFFFFFFF, 0, 5, 0x80000000]], np.uint32)
    key = (0xDEADBEEF, 0x01234567, 0, 0)
    np.testing.assert_array_equal(cdropout.ars4x32(ctr, key), reference.ars4x32(ctr, key, 7))


@pytest.mark.parametrize("rounds", range(1, 11))
def test_cdropout_ars_random_counters_and_keys(rounds):
    rng = np.random.default_rng(100 + rounds)
    for _ in range(3):
        ctr = rng.integers(0, U32, (777, 4), dtype=np.uint64).astype(np.uint32)
        key = [int(k) for k in rng.integers(0, U32, 4, dtype=np.uint64)]
        np.testing.assert_array_equal(cdropout.ars4x32(ctr, key, rounds), reference.ars4x32(ctr, key, rounds))


def test_cdropout_ars_shapes_and_layouts():
    rng = np.random.default_rng(5)
    big = rng.integers(0, U32, (40, 8), dtype=np.uint64).astype(np.uint32)
    key = (0x12345678, 0x9ABCDEF0, 0xFFFFFFFF, 1)
    for ctr in (big[::3, 1:8:2], big[:6, :4].reshape(2, 3, 4), big[0, :4], big[:0, :4], big[:, 4:][::-1]):
        out = cdropout.ars4x32(ctr, key)
        assert out.shape == ctr.shape and out.dtype == np.uint32
        np.testing.assert_array_equal(out, reference.ars4x32(ctr, key, 7))
    # other integer dtypes holding 32-bit words
    ctr = big[:5, :4].astype(np.int64)
    np.testing.assert_array_equal(cdropout.ars4x32(ctr, key), reference.ars4x32(big[:5, :4], key, 7))


def test_cdropout_ars_is_format_2s_counter_function():
    """The keep bits of dropout(format=2) follow from ars4x32 of counter (b, stream) and key
    (seed lo, seed hi, 0, 0): u < Thi decides, as the spec says (no tie in this sample)."""
    seed, stream, p = 0x0123456789ABCDEF, 2**40 + 3, 0.5
    n = 8 * 64
    b = np.arange(n // 8, dtype=np.uint64)
    ctr = np.stack([b & np.uint64(0xFFFFFFFF), b >> np.uint64(32), np.full_like(b, stream & 0xFFFFFFFF),
                    np.full_like(b, stream >> 32)], axis=-1).astype(np.uint32)
    words = cdropout.ars4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32, 0, 0))
    u = (words[:, :, None] >> np.array([0, 16], np.uint32)) & np.uint32(0xFFFF)
    _, keep = cdropout.dropout(np.ones(n), p, seed=seed, stream=stream, return_mask="bool", format=2)
    np.testing.assert_array_equal(keep, u.reshape(-1) < (reference.threshold(p) >> 16))


@pytest.mark.parametrize("counter,key,rounds,exc,match", [
    ([0, 0, 0, 0], [0, 0], 7, ValueError, "key"),
    ([0, 0, 0, 0], [0, 0, 0, 0, 0], 7, ValueError, "key"),
    ([0, 0, 0, 0], [0, 0, 0, 2**32], 7, ValueError, "key"),
    ([0, 0, 0, 0], [0, 0, 0, -1], 7, ValueError, "key"),
    ([0, 0, 0, 0], [0, 0, 0, 0.5], 7, TypeError, "key"),
    ([0, 0, 0, 0], None, 7, TypeError, "key"),
    ([0, 0, 0, 0], "abcd", 7, TypeError, "key"),
    ([0, 0, 0], [0, 0, 0, 0], 7, ValueError, "counter"),
    (0, [0, 0, 0, 0], 7, ValueError, "counter"),
    ([0, 0, 0, 2**32], [0, 0, 0, 0], 7, ValueError, "counter"),
    ([0, 0, 0, -1], [0, 0, 0, 0], 7, ValueError, "counter"),
    ([0.0, 0, 0, 0], [0, 0, 0, 0], 7, TypeError, "counter"),
    ([0, 0, 0, 0], [0, 0, 0, 0], 0, ValueError, "rounds"),
    ([0, 0, 0, 0], [0, 0, 0, 0], 11, ValueError, "rounds"),
    ([0, 0, 0, 0], [0, 0, 0, 0], 7.0, TypeError, "rounds"),
    ([0, 0, 0, 0], [0, 0, 0, 0], "7", TypeError, "rounds"),
    ([0, 0, 0, 0], [0, 0, 0, 0], True, TypeError, "rounds"),
])
def test_cdropout_ars_bad_input(counter, key, rounds, exc, match):
    with pytest.raises(exc, match=match):
        cdropout.ars4x32(counter, key, rounds)
