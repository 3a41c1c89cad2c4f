"""Helpers shared by the test modules (import as `helpers`; conftest puts tests/ on sys.path)."""
import numpy as np

import reference

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
