"""Randomness you can show: keep rates, runs, autocorrelation, independence of neighbouring
keys, exact tie handling, and dieharder.

Every statistical test has a fixed seed (so a run is reproducible) and a threshold far in the
tail (|z| < 5 or a chi-square p-value > 1e-6), so a correct generator fails with probability
well below 1e-4 over the whole file. The default run uses about 2**20 elements per test; the
parts marked `stats` (pytest -m stats) repeat them over 2**26 elements and run dieharder.
Every test runs on both stream formats (v1: Philox4x32-10, v2: ARS-7), each named explicitly.
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
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
Z_MAX = 5.0
CHI2_P_MIN = 1e-6
TWO32 = 1 << 32

# p values: round ones, ones near 0 and 1, and ones whose T = (1-p) 2**32 has Tlo != 0.
P_VALUES = (0.5, 0.1, 0.01, 0.001, 0.2, 0.25, 0.3, 0.4, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99,
            0.999, 1 / 3, 2 / 3, 1 / 7, 1e-4, 1 - 1e-4, 0.123456789, 0.87654321,
            1 - 0x12345678 / TWO32, 1 - 0x80000001 / TWO32, 1 - 0x7FFFFFFF / TWO32,
            1 - 0x0000FFFF / TWO32, 1 - 0xFFFF0001 / TWO32)


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fmt(request):
    return request.param


def keep_prob(p):
    T = reference.threshold(p)
    return min(T, TWO32) / TWO32


def mask_of(n, p, seed, stream=0, offset=0, fmt=1):
    """The keep mask (bool, n elements) of format `fmt` straight from the library."""
    return cdropout.MaskKey(seed, stream, offset, p, (n,), version=fmt).to_bool()


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
    """z of the lag-k autocorrelation for each k (known mean q): sqrt(n - k) * r_k."""
    c = mask.astype(np.float64) - q
    var = q * (1 - q)
    out = []
    for k in lags:
        m = mask.size - k
        r = float(np.dot(c[:m], c[k:])) / (m * var)
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
        assert abs(z) < Z_MAX, f"p={p!r}: keep rate {m.mean():.6f} vs {keep_prob(p):.6f}, z={z:.2f}"


def test_keep_rate_z_many_p(fmt):
    _keep_rates(1 << 20, seed=2024, fmt=fmt)


@pytest.mark.parametrize("p", [0.0, 5e-324, 1e-300, 1.0])
def test_keep_rate_exact_at_the_ends(p, fmt):
    m = mask_of(100_003, p, 7, fmt=fmt)
    assert m.all() if reference.threshold(p) >= TWO32 else not m.any()


@pytest.mark.stats
def test_keep_rate_z_many_p_large(fmt):
    _keep_rates(1 << 26, seed=99, fmt=fmt)


# ------------------------------------------------------------------------ runs, autocorrelation


def _runs_and_autocorr(n, seeds, fmt, ps=(0.5, 0.1, 0.9, 0.3, 1 - 0x12345678 / TWO32)):
    lags = range(1, 65)
    for seed in seeds:
        for p in ps:
            m = mask_of(n, p, seed, offset=(seed * 12345) % 2 ** 63, fmt=fmt)
            z = runs_z(m)
            assert abs(z) < Z_MAX, f"runs test p={p} seed={seed}: z={z:.2f}"
            za = autocorr_z(m, keep_prob(p), lags)
            worst = int(np.argmax(np.abs(za)))
            assert abs(za[worst]) < Z_MAX, \
                f"lag {worst + 1} autocorrelation p={p} seed={seed}: z={za[worst]:.2f}"


def test_runs_and_autocorrelation_lags_1_to_64(fmt):
    _runs_and_autocorr(1 << 20, seeds=(1,), fmt=fmt)


@pytest.mark.stats
def test_runs_and_autocorrelation_lags_1_to_64_large(fmt):
    _runs_and_autocorr(1 << 26, seeds=(2, 2 ** 64 - 1), fmt=fmt, ps=(0.5, 0.1, 1 - 0x12345678 / TWO32))


# ------------------------------------------------------------------ independence of neighbours

S, ST, OFF = 0x0123456789ABCDEF, 0x5555, 1 << 20
NEIGHBOURS = {
    # name: ((seed, stream, offset), (seed, stream, offset))
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
}


def _independence(n, p, fmt):
    bad = []
    for name, (ka, kb) in NEIGHBOURS.items():
        a = mask_of(n, p, *ka, fmt=fmt)
        b = mask_of(n, p, *kb, fmt=fmt)
        pv = chi2_2x2_pvalue(a, b)
        if pv < CHI2_P_MIN:
            bad.append(f"{name}: p-value {pv:.2e}")
    assert not bad, f"p={p}: dependent masks: {bad}"


@pytest.mark.parametrize("p", [0.5, 0.1, 1 - 0x12345678 / TWO32])
def test_adjacent_keys_give_independent_masks(p, fmt):
    _independence(1 << 20, p, fmt)


@pytest.mark.stats
@pytest.mark.parametrize("p", [0.5, 0.01, 0.9])
def test_adjacent_keys_give_independent_masks_large(p, fmt):
    _independence(1 << 25, p, fmt)


def _words(ctr, seed, fmt):
    """The format's counter function (Random123 KAT-checked) with the format's key of `seed`."""
    if fmt == 1:
        return cdropout.philox4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32))
    return cdropout.ars4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32, 0, 0))


def test_primary_and_secondary_draws_are_independent(fmt):
    """The tie-breaking half v (secondary counter) is independent of u (primary counter)."""
    nb = 1 << 17
    blocks = np.arange(nb, dtype=np.uint64)
    ctr = np.zeros((nb, 4), np.uint32)
    ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
    ctr[:, 2] = 9
    prim = _words(ctr, 5 | (6 << 32), fmt).view(np.uint16).ravel()
    ctr[:, 1] |= np.uint32(0x80000000)
    sec = _words(ctr, 5 | (6 << 32), fmt).view(np.uint16).ravel()
    for bit in (15, 0, 7):
        pv = chi2_2x2_pvalue((prim >> bit) & 1 == 1, (sec >> bit) & 1 == 1)
        assert pv > CHI2_P_MIN, f"bit {bit}: p-value {pv:.2e}"


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


def _direct_keep(n, p, seed, stream, fmt):
    """Keep flags from the raw counter function (Random123 KAT-checked): u < Thi, or u == Thi and v < Tlo."""
    T = reference.threshold(p)
    thi, tlo = T >> 16, T & 0xFFFF
    nb = (n + 7) // 8
    ctr = np.empty((nb, 4), np.uint32)
    b = np.arange(nb, dtype=np.uint64)
    ctr[:, 0] = b & np.uint64(0xFFFFFFFF)
    ctr[:, 1] = b >> np.uint64(32)
    ctr[:, 2] = stream & 0xFFFFFFFF
    ctr[:, 3] = stream >> 32
    u = _words(ctr, seed, fmt).astype("<u4").view("<u2").ravel()[:n]  # half h = 16-bit word h
    keep = u < thi
    ties = np.flatnonzero(u == thi)
    tc = ctr[ties // 8].copy()
    tc[:, 1] |= np.uint32(0x80000000)
    v = _words(tc, seed, fmt).astype("<u4").view("<u2").reshape(-1, 8)[np.arange(ties.size), ties % 8]
    keep[ties] = v < tlo
    return keep, ties.size, int(np.count_nonzero(v < tlo))


def _tie_check(n, p, seed, stream, isa, fmt):
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
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("p", [1 - 0x00000001 / TWO32, 1 - 0x0001FFFF / TWO32, 1 - 0xFFFFFFFF / TWO32,
                               1 - 0x7FFF8000 / TWO32, 0.3, 0.7])
def test_exact_tie_handling_more_p(p, isa, fmt):
    assert reference.threshold(p) & 0xFFFF != 0  # every p here has ties that need the secondary
    _tie_check(1 << 24, p, seed=2 ** 64 - 1, stream=2 ** 64 - 1, isa=isa, fmt=fmt)


# --------------------------------------------------------------------------------- dieharder


@pytest.mark.stats
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
