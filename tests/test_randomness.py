"""Randomness you can show: keep rates, runs, autocorrelation, independence of neighbouring
keys, exact tie handling, and dieharder.

The tests of the mask stream run on both stream formats (`fmt`: 1 = Philox4x32-10, 2 = ARS-7;
docs/stream-format.md), dieharder (tools/dieharder.sh) included.

Every statistical test has a fixed seed (so a run is reproducible) and a threshold far in the
tail (|z| < 5, two-sided probability 5.7e-7, or a chi-square p-value > 1e-6). The default run
takes about 700 z values and 100 p-values (both formats), so a correct generator fails it with
probability about 5e-4 over a choice of seeds; the `stats` run (about 840 and 100) about 6e-4. The default run uses
about 2**20 elements per test; the parts marked `stats` (pytest -m stats) repeat them over
2**25..2**26 elements and run dieharder. test_the_tests_can_fail shows that these thresholds
catch Philox and ARS with too few rounds.
"""
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cdropout
from cdropout import _config
import reference

ISAS = tuple(cdropout.simd_info()["available"])
FORMATS = (1, 2)
by_format = pytest.mark.parametrize("fmt", FORMATS, ids=[f"v{f}" for f in FORMATS])
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
Z_MAX = 5.0
CHI2_P_MIN = 1e-6
TWO32 = 1 << 32

# p values: round ones, ones near 0 and 1, and ones whose T = (1-p) 2**32 has Tlo != 0.
P_VALUES = (0.5, 0.1, 0.01, 0.001, 0.2, 0.25, 0.3, 0.4, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99,
            0.999, 1 / 3, 2 / 3, 1 / 7, 1e-4, 1 - 1e-4, 0.123456789, 0.87654321,
            1 - 0x12345678 / TWO32, 1 - 0x80000001 / TWO32, 1 - 0x7FFFFFFF / TWO32,
            1 - 0x0000FFFF / TWO32, 1 - 0xFFFF0001 / TWO32)


def keep_prob(p):
    T = reference.threshold(p)
    return min(T, TWO32) / TWO32


def mask_of(n, p, seed, stream=0, offset=0, fmt=1):
    """The keep mask (bool, n elements) of stream format `fmt` straight from the library."""
    return cdropout.MaskKey(seed, stream, offset, p, (n,), version=fmt).to_bool()


def raw_words(ctr, seed, fmt, rounds=None):
    """The counter function of format `fmt` (the library's KAT-checked philox4x32 / ars4x32) on
    counters `ctr` (uint32 (..., 4)) with the format's key of `seed`; `rounds` None: the format's."""
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    if fmt == 1:
        return cdropout.philox4x32(ctr, (lo, hi), rounds=10 if rounds is None else rounds)
    return cdropout.ars4x32(ctr, (lo, hi, 0, 0), rounds=7 if rounds is None else rounds)


def z_keep_rate(mask, q):
    n = mask.size
    k = int(np.count_nonzero(mask))
    if q in (0.0, 1.0):
        return 0.0 if k == n * q else math.inf
    return (k - n * q) / math.sqrt(n * q * (1 - q))


def runs_z(mask):
    """Wald-Wolfowitz runs test on a 0/1 sequence: z of the number of runs."""
    n = mask.size
    n1 = int(np.count_nonzero(mask))
    n0 = n - n1
    runs = 1 + int(np.count_nonzero(mask[1:] != mask[:-1]))
    mu = 2.0 * n1 * n0 / n + 1.0
    var = (mu - 1.0) * (mu - 2.0) / (n - 1.0)
    return (runs - mu) / math.sqrt(var)


def autocorr_z(mask, q, lags):
    """z of the lag-k autocorrelation for each k (known mean q): sqrt(n - k) * r_k, where
    (n - k) q (1 - q) r_k = sum_i (x_i - q)(x_(i+k) - q) = N11 - q (A + B) + (n - k) q**2 with the
    exact counts N11 = #(x_i and x_(i+k)), A = #x_i, B = #x_(i+k) (i < n - k): no BLAS dot, which
    multithreaded and next to busy cores ran 25 times slower."""
    mask = np.asarray(mask, dtype=bool)
    var = q * (1 - q)
    total = int(np.count_nonzero(mask))
    out = []
    for k in lags:
        m = mask.size - k
        n11 = int(np.count_nonzero(mask[:m] & mask[k:]))
        a = total - int(np.count_nonzero(mask[m:]))
        b = total - int(np.count_nonzero(mask[:k]))
        r = (n11 - q * (a + b) + m * q * q) / (m * var)
        out.append(r * math.sqrt(m))
    return np.array(out)


def chi2_2x2_pvalue(a, b):
    """Pearson chi-square test of independence of two bool arrays (1 df): the p-value."""
    n = a.size
    t = np.array([[np.count_nonzero(~a & ~b), np.count_nonzero(~a & b)],
                  [np.count_nonzero(a & ~b), np.count_nonzero(a & b)]], dtype=np.float64)
    e = t.sum(1, keepdims=True) * t.sum(0, keepdims=True) / n
    if np.any(e == 0):
        return 1.0
    chi2 = float(((t - e) ** 2 / e).sum())
    return math.erfc(math.sqrt(chi2 / 2.0))


# ------------------------------------------------------------------------------ keep rate


def _keep_rates(n, seed, fmt):
    for i, p in enumerate(P_VALUES):
        m = mask_of(n, p, seed, stream=i, fmt=fmt)
        z = z_keep_rate(m, keep_prob(p))
        assert abs(z) < Z_MAX, \
            f"v{fmt} p={p!r}: keep rate {m.mean():.6f} vs {keep_prob(p):.6f}, z={z:.2f}"


@by_format
def test_keep_rate_z_many_p(fmt):
    _keep_rates(1 << 20, seed=2024, fmt=fmt)


@by_format
@pytest.mark.parametrize("p", [0.0, 5e-324, 1e-300, 1.0])
def test_keep_rate_exact_at_the_ends(p, fmt):
    m = mask_of(100_003, p, 7, fmt=fmt)
    assert m.all() if reference.threshold(p) >= TWO32 else not m.any()


@pytest.mark.stats
@by_format
def test_keep_rate_z_many_p_large(fmt):
    _keep_rates(1 << 26, seed=99, fmt=fmt)


# ------------------------------------------------------------------------ runs, autocorrelation


RUNS_PS = (0.5, 0.1, 0.9, 0.3, 1 - 0x12345678 / TWO32)


def _runs_and_autocorr_failures(n, seeds, ps=RUNS_PS, fmt=1, mask=mask_of):
    lags = range(1, 65)
    bad = []
    for seed in seeds:
        for p in ps:
            m = mask(n, p, seed, offset=(seed * 12345) % 2 ** 63, fmt=fmt)
            z = runs_z(m)
            if not abs(z) < Z_MAX:
                bad.append(f"v{fmt} runs test p={p} seed={seed}: z={z:.2f}")
            za = autocorr_z(m, keep_prob(p), lags)
            worst = int(np.argmax(np.abs(za)))
            if not abs(za[worst]) < Z_MAX:
                bad.append(f"v{fmt} lag {worst + 1} autocorrelation p={p} seed={seed}: z={za[worst]:.2f}")
    return bad


@by_format
def test_runs_and_autocorrelation_lags_1_to_64(fmt):
    bad = _runs_and_autocorr_failures(1 << 20, seeds=(1,), fmt=fmt)
    assert not bad, bad


@pytest.mark.stats
@by_format
def test_runs_and_autocorrelation_lags_1_to_64_large(fmt):
    bad = _runs_and_autocorr_failures(1 << 26, seeds=(2, 2 ** 64 - 1),
                                      ps=(0.5, 0.1, 1 - 0x12345678 / TWO32), fmt=fmt)
    assert not bad, bad


# ------------------------------------------------------------------ independence of neighbours

S, ST, OFF = 0x0123456789ABCDEF, 0x5555, 1 << 20
ARS_WEYL_LO = 0x9E3779B97F4A7C15  # added to the low 64 bits of ARS's round key every round


def _philox_key_bump(seed):
    """The seed whose Philox key is `seed`'s bumped once (0x9E3779B9, 0xBB67AE85 word by word)."""
    k0 = ((seed & 0xFFFFFFFF) + reference.PHILOX_W0) & 0xFFFFFFFF
    k1 = ((seed >> 32) + reference.PHILOX_W1) & 0xFFFFFFFF
    return k0 | (k1 << 32)


# Both formats take every pair. The key of either is (seed lo, seed hi[, 0, 0]), the counter
# (block lo, block hi, stream lo, stream hi). The last rows aim at ARS (format 2):
# - seed s and s + W_lo: the low 64 bits of the round keys of s + W_lo are those of s one round
#   on (K + (i+1) W); the high 64 bits are not (always i W_hi: format 2's key high half is 0),
#   so this is the nearest to a related-key (slid) pair that format 2's keys allow;
# - seed s ^ d at block b ^ d: ARS starts with C xor K, so the two inputs of the first AES round
#   are equal and only the round keys differ (by d at most, plus carries). A third element x
#   pairs element i of the first mask with the element of block b ^ x of the second.
# The Philox analogue of the related-key pair: the key bumped once (its round keys shifted).
NEIGHBOURS = {
    # name: ((seed, stream, offset), (seed, stream, offset)[, block xor])
    "seed+1": ((S, ST, OFF), (S + 1, ST, OFF)),
    "seed bit 32 (key word 1)": ((S, ST, OFF), (S ^ (1 << 32), ST, OFF)),
    "seed 0 vs 1": ((0, 0, 0), (1, 0, 0)),
    "seed top": ((2 ** 64 - 1, 0, 0), (2 ** 64 - 2, 0, 0)),
    "stream+1": ((S, ST, OFF), (S, ST + 1, OFF)),
    "stream bit 32 (counter word 3)": ((S, ST, OFF), (S, ST ^ (1 << 32), OFF)),
    "stream 0 vs 1": ((0, 0, 0), (0, 1, 0)),
    "offset+1": ((S, ST, OFF), (S, ST, OFF + 1)),
    "offset+8 (next block)": ((S, ST, OFF), (S, ST, OFF + 8)),
    "offset+2**35 (counter word 1)": ((S, ST, OFF), (S, ST, OFF + 2 ** 35)),
    "seed and stream swapped": ((1, 2, 0), (2, 1, 0)),
    "seed + W_lo (ARS related key)": ((S, ST, OFF), (S + ARS_WEYL_LO, ST, OFF)),
    "seed 0 vs W_lo (ARS related key)": ((0, 0, 0), (ARS_WEYL_LO, 0, 0)),
    "seed ^ 1 at block ^ 1 (same C xor K)": ((S, ST, OFF), (S ^ 1, ST, OFF), 1),
    "seed ^ 2**32 at block + 2**32 (same C xor K)": ((S, ST, OFF), (S ^ (1 << 32), ST, OFF + 2 ** 35)),
    "Philox key bumped once (related key)": ((S, ST, OFF), (_philox_key_bump(S), ST, OFF)),
}


def _pair_blocks(m, x):
    """Element i of the result is the element of `m` at the same half of block b ^ x, b being
    element i's block (the masks start at a multiple of 16 x elements and have a multiple of 16 x)."""
    return m.reshape(-1, 2, x, 8)[:, ::-1].reshape(-1)


def neighbour_masks(n, p, pair, fmt=1, mask=mask_of):
    """The two masks of a NEIGHBOURS entry, element i of each at the same position."""
    ka, kb, x = pair if len(pair) == 3 else pair + (0,)
    a = mask(n, p, *ka, fmt=fmt)
    b = mask(n, p, *kb, fmt=fmt)
    if x:
        assert ka[2] % (16 * x) == 0 and n % (16 * x) == 0
        b = _pair_blocks(b, x)
    return a, b


def _independence_failures(n, p, fmt=1, mask=mask_of):
    bad = []
    for name, pair in NEIGHBOURS.items():
        pv = chi2_2x2_pvalue(*neighbour_masks(n, p, pair, fmt, mask))
        if pv < CHI2_P_MIN:
            bad.append(f"{name}: p-value {pv:.2e}")
    return bad


@by_format
@pytest.mark.parametrize("p", [0.5, 0.1, 1 - 0x12345678 / TWO32])
def test_adjacent_keys_give_independent_masks(p, fmt):
    bad = _independence_failures(1 << 20, p, fmt)
    assert not bad, f"v{fmt} p={p}: dependent masks: {bad}"


@pytest.mark.stats
@by_format
@pytest.mark.parametrize("p", [0.5, 0.01, 0.9])
def test_adjacent_keys_give_independent_masks_large(p, fmt):
    bad = _independence_failures(1 << 25, p, fmt)
    assert not bad, f"v{fmt} p={p}: dependent masks: {bad}"


@by_format
def test_primary_and_secondary_draws_are_independent(fmt):
    """The tie-breaking half v (secondary counter) is independent of u (primary counter)."""
    nb = 1 << 17
    blocks = np.arange(nb, dtype=np.uint64)
    ctr = np.zeros((nb, 4), np.uint32)
    ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
    ctr[:, 2] = 9
    seed = 5 | (6 << 32)
    prim = raw_words(ctr, seed, fmt).view(np.uint16).ravel()
    ctr[:, 1] |= np.uint32(0x80000000)
    sec = raw_words(ctr, seed, fmt).view(np.uint16).ravel()
    for bit in (15, 0, 7):
        pv = chi2_2x2_pvalue((prim >> bit) & 1 == 1, (sec >> bit) & 1 == 1)
        assert pv > CHI2_P_MIN, f"v{fmt} bit {bit}: p-value {pv:.2e}"


@by_format
def test_masks_are_nested_in_p(fmt):
    """One draw decides every p: a kept element at p stays kept at every smaller p."""
    ps = sorted((0.9, 0.5, 0.3, 0.1, 1 - 0x80000001 / TWO32, 1 - 0x7FFFFFFF / TWO32), reverse=True)
    prev = None
    for p in ps:
        m = mask_of(1 << 18, p, 3, fmt=fmt)
        if prev is not None:
            assert not np.any(prev & ~m), f"kept at a larger p but dropped at p={p}"
        prev = m


# ------------------------------------------------------------------------- exact tie handling


def _direct_keep(n, p, seed, stream, fmt=1, offset=0, rounds=None):
    """Keep flags from the raw philox4x32 / ars4x32 (Random123 KAT-checked) of format `fmt`:
    u < Thi, or u == Thi and v < Tlo; `rounds` None: the format's. Returns (keep, ties, kept ties)."""
    T = reference.threshold(p)
    if T >= TWO32 or T == 0:
        return np.full(n, T > 0), 0, 0
    thi, tlo = T >> 16, T & 0xFFFF
    first = offset >> 3
    nb = ((offset + n + 7) >> 3) - first
    ctr = np.empty((nb, 4), np.uint32)
    b = np.arange(first, first + nb, dtype=np.uint64)
    ctr[:, 0] = b & np.uint64(0xFFFFFFFF)
    ctr[:, 1] = b >> np.uint64(32)
    ctr[:, 2] = stream & 0xFFFFFFFF
    ctr[:, 3] = stream >> 32
    h0 = offset & 7
    # half h = 16-bit word h of the output (little-endian), element i = half h0 + i of the blocks
    u = raw_words(ctr, seed, fmt, rounds).astype("<u4").view("<u2").ravel()[h0:h0 + n]
    keep = u < thi
    ties = np.flatnonzero(u == thi)
    tc = ctr[(ties + h0) // 8].copy()
    tc[:, 1] |= np.uint32(0x80000000)
    v = raw_words(tc, seed, fmt, rounds).astype("<u4").view("<u2").reshape(-1, 8)[
        np.arange(ties.size), (ties + h0) % 8]
    keep[ties] = v < tlo
    return keep, ties.size, int(np.count_nonzero(v < tlo))


def _tie_check(n, p, seed, stream, isa, fmt=1):
    T = reference.threshold(p)
    assert T & 0xFFFF, "this p must have Tlo != 0"
    direct, n_ties, n_tie_kept = _direct_keep(n, p, seed, stream, fmt)
    with _config.forced_isa(isa):
        _, bits = cdropout.dropout(np.zeros(n, np.float16), p, seed=seed, stream=stream,
                                   return_mask="bits", num_threads=2, format=fmt)
    got = bits.to_bool()
    assert int(np.count_nonzero(got)) == int(np.count_nonzero(direct)), "keep counts differ"
    bad = np.flatnonzero(got != direct)
    assert bad.size == 0, f"{bad.size} flags differ, first at {bad[0]}"
    # about n / 65536 ties, about a fraction Tlo / 65536 of them kept
    assert n_ties > 0
    return n_ties, n_tie_kept


@by_format
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("p", [1 - 0x12345678 / TWO32, 1 - 0x8000FFFF / TWO32])
def test_exact_tie_handling_2_24_elements(p, isa, fmt):
    n_ties, kept = _tie_check(1 << 24, p, seed=0xDEADBEEF, stream=3, isa=isa, fmt=fmt)
    T = reference.threshold(p)
    # 2**24 / 2**16 = 256 ties expected; the kept fraction is Tlo / 2**16
    assert 150 < n_ties < 400
    frac = (T & 0xFFFF) / 65536
    assert abs(kept - n_ties * frac) < 5 * math.sqrt(n_ties * frac * (1 - frac)) + 1


@pytest.mark.stats
@by_format
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("p", [1 - 0x00000001 / TWO32, 1 - 0x0001FFFF / TWO32, 1 - 0xFFFFFFFF / TWO32,
                               1 - 0x7FFF8000 / TWO32, 0.3, 0.7])
def test_exact_tie_handling_more_p(p, isa, fmt):
    assert reference.threshold(p) & 0xFFFF != 0  # every p here has ties that need the secondary
    _tie_check(1 << 24, p, seed=2 ** 64 - 1, stream=2 ** 64 - 1, isa=isa, fmt=fmt)


# ------------------------------------------------------------------------- the tests can fail


def reduced_rounds_mask(rounds):
    """mask_of, computed from the raw counter function with `rounds` rounds (None: the format's)."""
    def mask(n, p, seed, stream=0, offset=0, fmt=1):
        return _direct_keep(n, p, seed, stream, fmt, offset, rounds)[0]
    return mask


@by_format
def test_direct_masks_are_the_librarys(fmt):
    """The masks test_the_tests_can_fail builds are the library's when the rounds are the format's."""
    for name, pair in NEIGHBOURS.items():
        for got, want in zip(neighbour_masks(1 << 12, 1 - 0x12345678 / TWO32, pair, fmt,
                                             reduced_rounds_mask(None)),
                             neighbour_masks(1 << 12, 1 - 0x12345678 / TWO32, pair, fmt)):
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("fmt, rounds, check", [
    (1, 3, "runs"), (1, 5, "neighbours"),   # Philox4x32-10 (format 1) with 3 or 5 rounds
    (2, 2, "runs"), (2, 3, "neighbours"),   # ARS-7 (format 2) with 2 or 3 rounds
])
def test_the_tests_can_fail(fmt, rounds, check):
    """The checks above, with their thresholds, on 2**16 elements of a counter function with too
    few rounds: they find it dependent (so they are not assertions that hold whatever the bits)."""
    mask = reduced_rounds_mask(rounds)
    if check == "runs":
        bad = _runs_and_autocorr_failures(1 << 16, seeds=(1,), ps=(0.5,), fmt=fmt, mask=mask)
    else:
        bad = _independence_failures(1 << 16, 0.5, fmt, mask)
    assert bad, f"v{fmt} with {rounds} rounds passed the {check} checks"


# --------------------------------------------------------------------------------- dieharder


@pytest.mark.stats
@by_format
@pytest.mark.parametrize("kind", ["raw", "mask"])
def test_dieharder_bounded_selection(kind, fmt):
    if shutil.which("dieharder") is None:
        pytest.skip("dieharder is not installed (Debian: apt-get install -y dieharder)")
    env = dict(os.environ)
    root = os.path.dirname(TOOLS)
    env["PYTHONPATH"] = root + os.pathsep + os.path.dirname(os.path.dirname(cdropout.__file__)) + \
        (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = subprocess.run(["bash", os.path.join(TOOLS, "dieharder.sh"), kind, "quick", "20261124", str(fmt)],
                         capture_output=True, text=True, env=env, timeout=1200)
    summary = [line for line in res.stdout.splitlines() if line.startswith("## summary")]
    sys.stdout.write(res.stdout[-3000:])
    assert summary, f"no summary from tools/dieharder.sh: {res.stderr[-2000:]}"
    assert res.returncode == 0 and " 0 FAILED" in summary[0], summary[0]
