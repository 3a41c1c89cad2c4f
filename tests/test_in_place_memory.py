"""out=x is true in-place dropout: no temporary of the array's size (traced by tracemalloc, which
sees NumPy's data allocations). The issue's figure: at most 4 KiB beyond the output."""
import sys
import tracemalloc

import numpy as np
import pytest

import cdropout as cd
import helpers

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


# Peak RSS sees what tracemalloc cannot (C-level allocations, OpenMP thread stacks growing). It is
# measured in a fresh child so the high-water mark starts from this test's own arrays; pages make
# it coarse, so the bound is 1 MiB against a 256 MiB array: any temporary of the array's size, or
# of its 1-bit mask's (8 MiB), would show.
_RSS_SCRIPT = """
import resource, numpy as np, cdropout as cd
x = np.ones(64 * 2**20, np.float32)                    # 256 MiB, every page touched
g = np.ones_like(x)
cd.dropout(np.ones(2**20, np.float32), 0.5, seed=1)    # start the thread pool, load everything
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y, key = cd.dropout(x, 0.5, seed=2, out=x, return_mask="key")
cd.dropout_backward(g, key, out=g)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_in_place_forward_and_key_backward_peak_rss():
    res = helpers.run_python(["-c", _RSS_SCRIPT], timeout=300)
    assert res.returncode == 0, res.stderr
    grown_kib = int(res.stdout.strip().splitlines()[-1])
    assert grown_kib <= 1024, f"peak RSS grew by {grown_kib} KiB over a 256 MiB in-place call"
