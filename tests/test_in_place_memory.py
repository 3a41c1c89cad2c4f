"""out=x is true in-place dropout: no temporary of the array's size (traced by tracemalloc, which
sees NumPy's data allocations). The issue's figure: at most 4 KiB beyond the output."""
import tracemalloc

import numpy as np
import pytest

import cdropout as cd

LIMIT = 4096


def _peak(fn):
    fn()  # warm up (first-call caches, imports)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("n", [1024, 2**22])
def test_forward_in_place_allocates_no_temporary(n, dtype):
    x = np.ones(n, dtype)
    peak = _peak(lambda: cd.dropout(x, 0.3, seed=1, offset=3, out=x))
    assert peak <= LIMIT, f"in-place dropout of {x.nbytes} bytes traced a peak of {peak} bytes"


def test_forward_in_place_strided_allocates_no_temporary():
    base = np.ones((1024, 2 * 1025), np.float32)
    x = base[:, 1::2]
    peak = _peak(lambda: cd.dropout(x, 0.3, seed=1, out=x))
    assert peak <= LIMIT, peak


@pytest.mark.parametrize("n", [1024, 2**22])
def test_backward_from_key_in_place_allocates_no_temporary(n):
    g = np.ones(n, np.float32)
    _, key = cd.dropout(g, 0.3, seed=1, return_mask="key")
    peak = _peak(lambda: cd.dropout_backward(g, key, out=g))
    assert peak <= LIMIT, f"key backward in place of {g.nbytes} bytes traced a peak of {peak} bytes"
