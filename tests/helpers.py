"""Helpers shared by the test modules (import as `helpers`; conftest puts tests/ on sys.path)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import cdropout
import reference


def run_python(args, env=None, timeout=120):
    """Run `python *args` in a child on the very cdropout this session imported (installed or
    built in place), from a directory outside the source tree, so the source checkout's unbuilt
    package can't shadow it. Returns the CompletedProcess (text, output captured)."""
    package_parent = str(Path(cdropout.__file__).resolve().parent.parent)
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": package_parent}
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=child_env,
                              capture_output=True, text=True, timeout=timeout)

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
ODD_SIZES = (0, 1, 7, 127, 129, 4097)
THREAD_COUNTS = (1, 2, 3, 7)


def random_data(shape, dtype, seed=0):
    """Finite random values of both signs over a few decades, with +-0.0 and subnormals."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    x = rng.standard_normal(n) * np.exp2(rng.integers(-6, 7, n))
    if n:
        x[:: 97] = 0.0
        x[1:: 101] = -0.0
        # subnormals (a kernel running with flush-to-zero would change them)
        tiny = np.finfo(dtype).smallest_normal.astype(np.float64)
        x[2:: 89] = rng.uniform(-1.0, 1.0, len(x[2:: 89])) * tiny
    return x.astype(dtype).reshape(shape)


def assert_same_bits(actual, expected, what="result"):
    """Bitwise equality (shape, dtype and every bit, so +0.0 != -0.0 and NaN payloads count)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a = reference.bits_of(actual).ravel()
    e = reference.bits_of(expected).ravel()
    bad = np.flatnonzero(a != e)
    if len(bad):
        i = bad[0]
        raise AssertionError(
            f"{what}: {len(bad)} of {a.size} elements differ bitwise; first at flat index {i}: "
            f"got {actual.ravel()[i]!r} (0x{int(a[i]):x}), expected {expected.ravel()[i]!r} "
            f"(0x{int(e[i]):x})")


def assert_same_mask(actual, expected, what="mask"):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.bool_, f"{what}: dtype {actual.dtype}, expected bool"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bad = np.flatnonzero(actual.ravel() != expected.ravel())
    assert not len(bad), (f"{what}: {len(bad)} of {actual.size} flags differ; first at flat "
                          f"index {bad[0]}: got {actual.ravel()[bad[0]]}")


def available_isas():
    """Kernel paths this machine + build can run (collected once, for parametrize)."""
    import cdropout
    return list(cdropout.simd_info()["available"])


def scalar_philox(ctr, key, rounds):
    """Philox4x32-R on Python ints, written straight from the round description."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
            k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c3 ^ k1,
                          p0 & 0xFFFFFFFF)
    return (c0, c1, c2, c3)


def scalar_ars(ctr, key, rounds):
    """ARS-R of one counter on Python ints: the 128-bit counter and key as single integers (word 0
    in the low bits), the Weyl schedule on their 64-bit halves, each round through the
    reference's AES round functions."""
    c = sum(w << (32 * i) for i, w in enumerate(ctr))
    k = sum(w << (32 * i) for i, w in enumerate(key))

    def state(v):
        return np.frombuffer(v.to_bytes(16, "little"), np.uint8)

    v = state(c ^ k)
    lo, hi = k & (2**64 - 1), k >> 64
    for r in range(rounds):
        lo, hi = (lo + 0x9E3779B97F4A7C15) % 2**64, (hi + 0xBB67AE8584CAA73B) % 2**64
        rk = state(lo | (hi << 64))
        v = reference.aesenc(v, rk) if r < rounds - 1 else reference.aesenclast(v, rk)
    out = int.from_bytes(v.tobytes(), "little")
    return tuple((out >> (32 * i)) & 0xFFFFFFFF for i in range(4))


def scalar_keep(e, p, seed, stream, fmt=1):
    """keep(e) of format `fmt` for one element, on Python ints, straight from the spec text."""
    if fmt == 1:
        def words(ctr):
            return scalar_philox(ctr, (seed & 0xFFFFFFFF, seed >> 32), 10)
    else:
        def words(ctr):
            return scalar_ars(ctr, (seed & 0xFFFFFFFF, seed >> 32, 0, 0), 7)
    b, h = e >> 3, e & 7
    ctr = (b & 0xFFFFFFFF, b >> 32, stream & 0xFFFFFFFF, stream >> 32)
    u = (words(ctr)[h >> 1] >> (16 * (h & 1))) & 0xFFFF
    sec = (ctr[0], ctr[1] | (1 << 31), ctr[2], ctr[3])
    v = (words(sec)[h >> 1] >> (16 * (h & 1))) & 0xFFFF
    T = int(np.floor((1.0 - p) * 2.0**32 + 0.5))
    thi, tlo = T >> 16, T & 0xFFFF
    return T >= 2**32 or (T > 0 and (u < thi or (u == thi and v < tlo)))


def check_dropout(cd, x, p, seed, stream=0, offset=0, fmt=None, **kwargs):
    """Call cd.dropout (with format=fmt unless fmt is None) and compare bitwise with the reference
    of that format (None: the default); x must be left untouched."""
    before = np.array(x, copy=True)
    if fmt is not None:
        kwargs["format"] = fmt
    y = cd.dropout(x, p, seed=seed, stream=stream, offset=offset, **kwargs)
    expected = reference.dropout(before, p, seed, stream, offset, fmt=fmt)
    assert_same_bits(y, expected)
    if kwargs.get("out") is not x:
        assert_same_bits(x, before, "input after the call")
    return y


def tie_probes(n, seed, stream, offset, indices, fmt=None):
    """p values that put element i exactly on a tie, and what format `fmt` says about it.

    For element i with primary half u and secondary half v, T = u << 16 | v makes u == Thi and
    v == Tlo (dropped: v < Tlo is false); T + 1 keeps it; (1 - p) 2^32 = T + 0.5 must round up
    to T + 1 (kept) and T - 0.5 up to T (dropped). Returns [(i, p, keep_i), ...]."""
    u, tie_v = reference.draws(n, seed, stream, offset, fmt)
    v = tie_v(np.asarray(indices))
    probes = []
    for i, vi in zip(indices, v):
        t = (int(u[i]) << 16) | int(vi)
        if t == 0:
            continue
        probes += [(i, reference.p_for_threshold(t), False),
                   (i, reference.p_for_threshold(t + 1), True),
                   (i, reference.p_for_threshold(t + 0.5), True),
                   (i, reference.p_for_threshold(t - 0.5), False)]
    return probes
