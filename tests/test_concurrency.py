"""Python threads around the OpenMP core: no stream used twice, results equal the serial ones,
no deadlock (every join has a timeout)."""
import threading

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits

N_THREADS = 8
TIMEOUT = 120.0
# Big enough that a default-threads call starts an OpenMP team (CD_PARALLEL_MIN = 2**16 per thread).
BIG = 3 * (1 << 16) + 123


def _run_threads(target, n=N_THREADS):
    """Start n threads on target(i) behind a barrier; re-raise the first error; fail on a hang."""
    barrier = threading.Barrier(n)
    errors = []

    def body(i):
        try:
            barrier.wait(TIMEOUT)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {TIMEOUT}s (deadlock?): {hung}"
    if errors:
        raise errors[0]


def _inputs(dtype):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(BIG + 7 * i).astype(dtype) for i in range(N_THREADS)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [None, 1, 2, 3])
def test_threads_on_separate_arrays_match_serial(dtype, num_threads):
    xs = _inputs(dtype)
    serial = [cdropout.dropout(x, 0.3, seed=100 + i, stream=i, num_threads=1) for i, x in enumerate(xs)]
    results = [None] * N_THREADS

    def work(i):
        for _ in range(3):
            y, bits = cdropout.dropout(xs[i], 0.3, seed=100 + i, stream=i, num_threads=num_threads,
                                       return_mask="bits")
            g = cdropout.dropout_backward(xs[i], bits, num_threads=num_threads)
            assert_same_bits(g, y, f"backward in thread {i}")
            results[i] = y

    _run_threads(work)
    for i in range(N_THREADS):
        assert_same_bits(results[i], serial[i], f"thread {i}")


def test_threads_in_place_on_disjoint_rows_of_one_array():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((N_THREADS, BIG)).astype(np.float32)
    expected = np.stack([cdropout.dropout(base[i], 0.5, seed=7, offset=i * BIG) for i in range(N_THREADS)])
    work_arr = base.copy()

    def work(i):
        row = work_arr[i]
        y = cdropout.dropout(row, 0.5, seed=7, offset=i * BIG, out=row)
        assert y is row

    _run_threads(work)
    assert_same_bits(work_arr, expected)
    # the same as one call over the whole array (offset chunks tile the C order)
    assert_same_bits(work_arr, cdropout.dropout(base, 0.5, seed=7))


def _shared_generator_run(gen_or_none, calls_per_thread, size, num_threads):
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(size + i).astype(np.float32) for i in range(N_THREADS)]
    got = [[] for _ in range(N_THREADS)]

    def work(i):
        for _ in range(calls_per_thread):
            y, key = cdropout.dropout(xs[i], 0.25, seed=gen_or_none, return_mask="key",
                                      num_threads=num_threads)
            got[i].append((key, y))

    _run_threads(work)
    return xs, got


@pytest.mark.parametrize("size,calls,num_threads", [(1000, 200, 1), (BIG, 4, None), (BIG, 4, 2)])
def test_threads_sharing_one_generator(size, calls, num_threads):
    g = cdropout.Generator(2024)
    xs, got = _shared_generator_run(g, calls, size, num_threads)
    streams = [key.stream for per in got for key, _ in per]
    assert len(streams) == len(set(streams)), "a stream was used twice"
    assert sorted(streams) == list(range(N_THREADS * calls)), "streams are not 0..n-1"
    assert g.next_stream == N_THREADS * calls
    for i, per in enumerate(got):
        assert [k.stream for k, _ in per] == sorted(k.stream for k, _ in per), "streams out of order"
        for key, y in per:
            assert key.seed == 2024
            serial = cdropout.dropout(xs[i], 0.25, seed=2024, stream=key.stream, num_threads=1)
            assert_same_bits(y, serial, f"thread {i} stream {key.stream}")


def test_threads_sharing_the_default_generator():
    cdropout.seed(77)
    try:
        xs, got = _shared_generator_run(None, 50, 500, 1)
    finally:
        cdropout.seed(None)
    streams = sorted(key.stream for per in got for key, _ in per)
    assert streams == list(range(N_THREADS * 50))
    for i, per in enumerate(got):
        for key, y in per:
            assert key.seed == 77
            assert_same_bits(y, cdropout.dropout(xs[i], 0.25, seed=77, stream=key.stream))


def test_threads_spawning_from_one_generator():
    parent = cdropout.Generator(5)
    children = [None] * N_THREADS

    def work(i):
        children[i] = [c.seed for c in parent.spawn(10)]

    _run_threads(work)
    seeds = [s for per in children for s in per]
    assert len(set(seeds)) == len(seeds) == 10 * N_THREADS
    assert sorted(seeds) == sorted(c.seed for c in cdropout.Generator(5).spawn(10 * N_THREADS))


@pytest.mark.parametrize("fmt", [1, 2])
def test_threads_sharing_a_generator_of_either_format(fmt):
    """One Generator of format `fmt` shared by 4 threads, every other call overriding the format:
    each call gets its own stream, its key carries the format it drew with, and every mask is
    the reference's of that (format, seed, stream), never cdropout's own output."""
    import reference

    g = cdropout.Generator(31, format=fmt)
    x = np.random.default_rng(4).standard_normal(777).astype(np.float32)
    got = [[] for _ in range(4)]

    def work(i):
        for j in range(40):
            override = None if j % 2 else 3 - fmt
            y, key = g.dropout(x, 0.3, return_mask="key", format=override)
            got[i].append((override or fmt, key, y))

    _run_threads(work, n=4)
    calls = [c for per in got for c in per]
    assert sorted(key.stream for _, key, _ in calls) == list(range(160))
    assert g.get_state() == {"seed": 31, "next_stream": 160, "n_children": 0, "format": fmt}
    for want_fmt, key, y in calls:
        assert key.version == want_fmt and key.seed == 31
        assert_same_bits(y, reference.dropout(x, 0.3, 31, key.stream, fmt=want_fmt), f"stream {key.stream}")
