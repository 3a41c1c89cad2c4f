"""How many threads a call runs on: explicit counts, OMP_NUM_THREADS, threadpoolctl and the clamp.

The count is read back from the extension (``_core.last_threads()``: the size of the OpenMP team
of the calling thread's last call), not inferred from timings. Results never depend on it.
"""
import json
import os

import helpers
import numpy as np
import pytest

import cdropout as cd
from cdropout import _config, _core

OPENMP = cd.simd_info()["openmp"]
needs_openmp = pytest.mark.skipif(not OPENMP, reason="built without OpenMP")


def _procs():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _limit():
    """The clamp the C side applies to every count: 4 per processor, at least 64."""
    p = _procs()
    return 4 * p if p > 16 else 64


CHILD = r"""
import json, sys
import numpy as np
import cdropout as cd
from cdropout import _config, _core
x = np.arange(1 << 20, dtype=np.float32)
with _config.forced_min_per_thread(1024):   # 1024 chunks possible: the clamp decides
    y_default = cd.dropout(x, 0.5, seed=3, stream=1)
    used_default = _core.last_threads()
    y_explicit = cd.dropout(x, 0.5, seed=3, stream=1, num_threads=100000)
    used_explicit = _core.last_threads()
y_one = cd.dropout(x, 0.5, seed=3, stream=1, num_threads=1)
json.dump({"max_threads": cd.simd_info()["max_threads"], "default": used_default,
           "explicit": used_explicit,
           "same": y_default.tobytes() == y_one.tobytes() == y_explicit.tobytes()}, sys.stdout)
"""


@needs_openmp
def test_huge_omp_num_threads_is_clamped_like_an_explicit_count():
    env = dict(os.environ, OMP_NUM_THREADS="100000")
    out = helpers.run_python(["-c", CHILD], env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["max_threads"] == _limit()
    assert got["default"] == _limit(), "the default call did not run on the clamped count"
    assert got["explicit"] == _limit()
    assert got["same"]


@needs_openmp
def test_small_omp_num_threads_is_the_default():
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = helpers.run_python(["-c", CHILD], env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["max_threads"] == 3
    assert got["default"] == 3  # the first default call of a thread tries the whole team
    assert got["explicit"] == _limit()
    assert got["same"]


@needs_openmp
@pytest.mark.parametrize("k", [1, 2, 3])
def test_explicit_count_is_obeyed(k):
    x = np.ones(1 << 16, np.float32)
    with _config.forced_min_per_thread(1024):
        for _ in range(3):  # an explicit count is never adapted
            cd.dropout(x, 0.5, seed=1, num_threads=k)
            assert _core.last_threads() == k


@needs_openmp
def test_threadpoolctl_limit_is_honoured():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = np.ones(1 << 20, np.float32)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cd.simd_info()["max_threads"] == 1
        cd.dropout(x, 0.5, seed=1)
        assert _core.last_threads() == 1


def test_small_arrays_stay_on_the_calling_thread():
    cd.dropout(np.ones(1000, np.float32), 0.5, seed=1, num_threads=2)
    assert _core.last_threads() == 1


@pytest.mark.parametrize("n", [1, 1023, 1024, 8191, 8192 + 7, 50_000, 1 << 18])
def test_any_thread_count_gives_the_same_result(n, small_chunks):
    """The guided split hands out chunks by who asks first: results must not depend on it."""
    x = np.linspace(-3, 3, n, dtype=np.float32)
    ref, ref_bits = cd.dropout(x, 0.3, seed=5, stream=2, offset=3, num_threads=1, return_mask="bits")
    for k in (2, 3, 8, None):
        for _ in range(3):
            y, bits = cd.dropout(x, 0.3, seed=5, stream=2, offset=3, num_threads=k, return_mask="bits")
            assert y.tobytes() == ref.tobytes()
            assert np.array_equal(bits.to_bool(), ref_bits.to_bool())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0, 1, 5])
def test_large_out_of_place_equals_in_place(dtype, shift):
    """Out of place, runs of 16 MiB and more are written with non-temporal stores on AVX-512;
    the result must be bitwise the in-place one (ordinary stores), at any alignment of out."""
    n = (16 << 20) // np.dtype(dtype).itemsize + 3
    x = np.linspace(-2, 2, n).astype(dtype)
    inplace = x.copy()
    _, bits_ref = cd.dropout(inplace, 0.4, seed=11, stream=3, out=inplace, num_threads=1,
                             return_mask="bits")
    buf = np.full(n + 8, 7, dtype)
    out = buf[shift:shift + n]
    y, bits = cd.dropout(x, 0.4, seed=11, stream=3, out=out, num_threads=1, return_mask="bits")
    assert y is out
    assert out.tobytes() == inplace.tobytes()
    assert (buf[:shift] == 7).all() and (buf[shift + n:] == 7).all()
    assert np.array_equal(bits.to_bool(), bits_ref.to_bool())


ONE_CPU_CHILD = r"""
import json, os, sys
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})   # before libgomp starts
import numpy as np
import cdropout as cd
from cdropout import _core
x = np.ones(1 << 20, np.float32)
used = []
for i in range(200):
    cd.dropout(x, 0.5, seed=1, stream=i, out=x)
    used.append(_core.last_threads())
forced = []
for i in range(5):
    cd.dropout(x, 0.5, seed=1, stream=i, out=x, num_threads=2)
    forced.append(_core.last_threads())
json.dump({"used": used, "forced": forced}, sys.stdout)
"""


@needs_openmp
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_default_leaves_a_team_that_cannot_gain():
    """Two threads on one CPU never beat one: after its first tries, the default must run calls on
    the calling thread, while an explicit num_threads=2 still gets its team."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = helpers.run_python(["-c", ONE_CPU_CHILD], env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["used"][0] == 2, "the first default call tries the team"
    # Each of the policy's 4 kinds of call (after a team call or after other work, short or long)
    # tries the team until it has lost, then once per back-off (after 32, 64, 128 calls). With
    # format 2 a team call on one CPU costs only about 1.08x one thread (1 Mi float32: 165 against
    # 153 us), within what the policy's per-call estimate can resolve, so a kind's first tries can
    # count as gains for a while: 11-26 team calls among the first 200 in six runs here (format 1's
    # heavier calls lost at once: at most 16). The bound on the first 200 allows that; once the
    # back-off has started (the last 100 calls) at most 2 tries per kind remain, as designed.
    assert sum(t > 1 for t in got["used"][1:]) <= 40, got["used"]
    assert sum(t > 1 for t in got["used"][100:]) <= 8, got["used"]
    assert got["forced"] == [2] * 5
