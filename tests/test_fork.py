"""Fork safety: children of a process that ran a multi-threaded (OpenMP) call do not hang,
get the parent's results, and do not repeat the parent's default-generator streams."""
import multiprocessing as mp
import os
import queue
import sys
import threading
import time

import numpy as np
import pytest

import cdropout
from helpers import assert_same_bits

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in mp.get_all_start_methods(), reason="needs fork()"
)

CHILD_TIMEOUT = 60.0
BIG = 1 << 20  # default threads: far above the per-thread minimum -> a full OpenMP team


def _parent_uses_a_thread_team():
    x = np.ones(BIG, np.float32)
    cdropout.dropout(x, 0.5, seed=1, num_threads=2)  # starts libgomp's pool in the parent
    cdropout.dropout(x, 0.5, seed=1)


def _child_dropout(q, num_threads):
    x = np.arange(BIG, dtype=np.float32)
    y = cdropout.dropout(x, 0.3, seed=9, stream=4, num_threads=num_threads)
    yb, bits = cdropout.dropout(x, 0.3, seed=9, stream=4, num_threads=num_threads, return_mask="bits")
    g = cdropout.dropout_backward(x, bits, num_threads=num_threads)
    q.put((y.tobytes(), yb.tobytes(), g.tobytes()))


def _run_child(target, args, ctx=None):
    """Run target(q, *args) in a fork child; return what it put on q; fail on a hang."""
    ctx = ctx or mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(q,) + tuple(args))
    t0 = time.monotonic()
    p.start()
    result = None
    while time.monotonic() - t0 < CHILD_TIMEOUT:
        try:
            result = q.get(timeout=0.05)
            break
        except queue.Empty:
            if p.exitcode is not None:  # exited: whatever it put is readable now
                try:
                    result = q.get(timeout=1.0)
                except queue.Empty:
                    pass
                break
    p.join(CHILD_TIMEOUT - (time.monotonic() - t0) + 1)
    if p.is_alive():
        p.kill()
        p.join(5)
        pytest.fail(f"fork child still running after {time.monotonic() - t0:.0f}s (OpenMP pool hang?)")
    assert p.exitcode == 0, f"child exit code {p.exitcode}"
    assert result is not None, "child produced no result"
    return result


@pytest.mark.parametrize("num_threads", [None, 1, 2, 3])
def test_child_after_parent_thread_team_does_not_hang(num_threads):
    _parent_uses_a_thread_team()
    x = np.arange(BIG, dtype=np.float32)
    expected = cdropout.dropout(x, 0.3, seed=9, stream=4, num_threads=2)
    y, yb, g = _run_child(_child_dropout, (num_threads,))
    for what, got in (("y", y), ("y with bits", yb), ("backward", g)):
        assert_same_bits(np.frombuffer(got, np.float32), expected, f"child {what}")
    # the parent still runs multi-threaded afterwards
    assert_same_bits(cdropout.dropout(x, 0.3, seed=9, stream=4, num_threads=2), expected)


def _grandchild(q):
    # a fork of a fork child, each having run dropout
    x = np.ones(BIG, np.float32)
    cdropout.dropout(x, 0.5, seed=2, num_threads=2)
    inner = _run_child(_child_dropout, (2,))
    q.put(inner)


def test_grandchild_does_not_hang():
    _parent_uses_a_thread_team()
    x = np.arange(BIG, dtype=np.float32)
    expected = cdropout.dropout(x, 0.3, seed=9, stream=4)
    y, _, _ = _run_child(_grandchild, ())
    assert_same_bits(np.frombuffer(y, np.float32), expected)


def _raw_fork_child_status(num_threads):
    """os.fork directly (no multiprocessing); the child writes 1 byte when done."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            cdropout.dropout(np.ones(BIG, np.float32), 0.5, seed=3, num_threads=num_threads)
            os.write(w, b"1")
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            data = os.read(r, 1)
            os.close(r)
            return data, status
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(r)
    return None, None


def test_raw_os_fork_after_thread_team():
    _parent_uses_a_thread_team()
    data, status = _raw_fork_child_status(2)
    assert data == b"1" and status == 0, "child of os.fork hung or failed"


def _child_masks_from_generator(q, gen, n_calls):
    x = np.ones(4096, np.float32)
    out = []
    for _ in range(n_calls):
        _, key = gen.dropout(x, 0.5, return_mask="key", num_threads=2)
        bits = key.to_bits()
        out.append((key.seed, key.stream, bits.data.tobytes()))
    q.put(out)


def test_spawned_generators_give_distinct_streams_in_workers():
    _parent_uses_a_thread_team()
    root = cdropout.Generator(31337)
    workers = root.spawn(4)
    results = [_run_child(_child_masks_from_generator, (g, 3)) for g in workers]
    seeds = {r[0] for per in results for r in per}
    assert len(seeds) == 4, "spawned generators share a seed"
    pairs = [(s, st) for per in results for s, st, _ in per]
    assert len(set(pairs)) == len(pairs) == 12
    masks = [m for per in results for _, _, m in per]
    assert len(set(masks)) == len(masks), "two workers produced the same mask"
    # each worker's masks are the serial ones of its generator
    for g, per in zip(cdropout.Generator(31337).spawn(4), results):
        for seed, stream, m in per:
            assert seed == g.seed
            ref = cdropout.dropout(np.ones(4096, np.float32), 0.5, seed=seed, stream=stream,
                                   return_mask="bits")[1]
            assert ref.data.tobytes() == m


def _child_default_key(q):
    _, key = cdropout.dropout(np.ones(64, np.float32), 0.5, return_mask="key")
    q.put((key.seed, key.stream))


def test_default_generator_differs_after_fork_and_is_reproducible():
    cdropout.seed(2718)
    try:
        children = [_run_child(_child_default_key, ()) for _ in range(3)]
        _, parent_key = cdropout.dropout(np.ones(64, np.float32), 0.5, return_mask="key")
    finally:
        cdropout.seed(None)
    parent = (parent_key.seed, parent_key.stream)
    assert parent == (2718, 0), "forking changed the parent's own streams"
    keys = children + [parent]
    assert len(set(keys)) == len(keys), f"a fork child repeated the parent's stream: {keys}"
    # child k's default generator is the parent's k-th spawned child: reproducible
    expected = [(g.seed, 0) for g in cdropout.Generator(2718).spawn(3)]
    assert children == expected


def _child_reserve(q, gen):
    q.put(gen.reserve_stream())


def test_generator_lock_held_by_another_thread_at_fork():
    """A lock held by some thread at fork time is not inherited held by the child."""
    gen = cdropout.Generator(1)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with gen._lock:
            holding.set()
            release.wait(CHILD_TIMEOUT)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    holding.wait(CHILD_TIMEOUT)
    try:
        assert _run_child(_child_reserve, (gen,)) == 0
    finally:
        release.set()
        t.join(CHILD_TIMEOUT)
