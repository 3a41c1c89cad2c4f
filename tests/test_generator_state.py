"""Generator.set_state / pickling / spawn validate every field and leave the state unchanged on failure."""
import copy
import multiprocessing as mp
import pickle
import sys

import numpy as np
import pytest

import cdropout
import reference

U64 = 1 << 64


def _gen():
    g = cdropout.Generator(77)
    g.reserve_stream()
    g.spawn(2)
    return g


def _check_unchanged(g, before):
    assert g.get_state() == before
    assert g.reserve_stream() == before["next_stream"], "a failed set_state moved the stream"


BAD_COUNTERS = [
    (1.5, TypeError), (True, TypeError), (False, TypeError), ("3", TypeError), (None, TypeError),
    (np.float64(3.0), TypeError), (np.bool_(True), TypeError), (3 + 0j, TypeError), ([3], TypeError),
    (-1, ValueError), (U64 + 1, ValueError), (np.int64(-5), ValueError),
]


@pytest.mark.parametrize("field", ["next_stream", "n_children"])
@pytest.mark.parametrize("value, exc", BAD_COUNTERS, ids=repr)
def test_set_state_rejects_bad_counters(field, value, exc):
    g = _gen()
    before = g.get_state()
    state = dict(before, **{field: value})
    with pytest.raises(exc, match=f"state\\['{field}'\\]"):
        g.set_state(state)
    _check_unchanged(g, before)


@pytest.mark.parametrize("value, exc", [(1.0, TypeError), (True, TypeError), ("1", TypeError),
                                        (None, TypeError), (-1, ValueError), (U64, ValueError)],
                         ids=repr)
def test_set_state_rejects_bad_seeds(value, exc):
    g = _gen()
    before = g.get_state()
    with pytest.raises(exc, match=r"state\['seed'\]"):
        g.set_state(dict(before, seed=value))
    _check_unchanged(g, before)


@pytest.mark.parametrize("missing", ["seed", "next_stream"])
def test_set_state_missing_key_is_a_value_error_naming_it(missing):
    g = _gen()
    before = g.get_state()
    state = dict(before)
    del state[missing]
    with pytest.raises(ValueError, match=f"missing '{missing}'"):
        g.set_state(state)
    _check_unchanged(g, before)


def test_set_state_rejects_unknown_keys_and_non_mappings():
    g = _gen()
    before = g.get_state()
    with pytest.raises(ValueError, match="unknown keys 'next_steam'"):
        g.set_state({"seed": 1, "next_stream": 0, "next_steam": 5})
    for bad in (None, [1, 2, 3], (1, 2), 5, "seed"):
        with pytest.raises(TypeError, match="state must be a dict"):
            g.set_state(bad)
    _check_unchanged(g, before)


def test_set_state_accepts_every_valid_state():
    g = cdropout.Generator(1)
    # n_children: default 0; no 'format' (a state of a release before format 2): format 1
    g.set_state({"seed": np.uint64(U64 - 1), "next_stream": np.int64(5)})
    assert g.get_state() == {"seed": U64 - 1, "next_stream": 5, "n_children": 0, "format": 1}
    assert all(type(v) is int for v in g.get_state().values())
    x = np.ones(100, np.float32)
    np.testing.assert_array_equal(g.dropout(x, 0.4), reference.dropout(x, 0.4, U64 - 1, 5, fmt=1))
    g.set_state({"seed": 3, "next_stream": U64, "n_children": U64})          # both exhausted
    with pytest.raises(ValueError, match="all 2\\*\\*64 streams"):
        g.reserve_stream()
    with pytest.raises(ValueError, match="spawn"):
        g.spawn(1)
    assert g.spawn(0) == []
    g2 = pickle.loads(pickle.dumps(g))
    assert g2.get_state() == {"seed": 3, "next_stream": U64, "n_children": U64, "format": 1}


def test_failed_unpickle_names_the_field():
    g = cdropout.Generator(5)
    data = pickle.dumps(g).replace(b"next_stream", b"next_streaX")
    with pytest.raises(ValueError, match="missing 'next_stream'"):
        pickle.loads(data)


def test_layer_set_state_validates_too():
    layer = cdropout.Dropout(0.5, seed=3)
    before = layer.get_state()
    with pytest.raises(TypeError, match="next_stream"):
        layer.set_state(dict(before, next_stream=True))
    assert layer.get_state() == before


# ------------------------------------------------------------------------------------- spawn

def test_spawn_up_to_the_last_key_then_refuse():
    g = cdropout.Generator(11)
    g.set_state({"seed": 11, "next_stream": 0, "n_children": U64 - 3})
    kids = g.spawn(2)
    want = [reference.seed_from_seedsequence(np.random.SeedSequence(11, spawn_key=(k,)))
            for k in (U64 - 3, U64 - 2)]
    assert [k.seed for k in kids] == want
    before = g.get_state()
    with pytest.raises(ValueError, match="1 spawn keys left"):
        g.spawn(2)
    assert g.get_state() == before, "a refused spawn moved the counter"
    last = g.spawn(1)[0]
    assert last.seed == reference.seed_from_seedsequence(np.random.SeedSequence(11, spawn_key=(U64 - 1,)))
    assert g.get_state()["n_children"] == U64
    for _ in range(2):
        with pytest.raises(ValueError, match="0 spawn keys left"):
            g.spawn(1)
    g2 = pickle.loads(pickle.dumps(g))           # still picklable at the end of the key range
    assert g2.get_state() == g.get_state()
    assert copy.deepcopy(g).get_state() == g.get_state()


@pytest.mark.parametrize("n, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                    ("2", TypeError), (U64, ValueError)], ids=repr)
def test_spawn_rejects_bad_n(n, exc):
    g = _gen()
    before = g.get_state()
    with pytest.raises(exc, match="n"):
        g.spawn(n)
    assert g.get_state() == before


def _child_seed(q):
    q.put((cdropout.default_generator().seed, cdropout.default_generator().get_state()["n_children"]))


@pytest.mark.skipif(sys.platform == "win32" or "fork" not in mp.get_all_start_methods(),
                    reason="needs fork()")
def test_fork_with_every_spawn_key_used():
    """The fork handler does not push the default generator's child counter past 2**64: the
    parent stays picklable, and its children (no key left) draw distinct seeds from OS entropy."""
    dflt = cdropout.default_generator()
    saved = dflt.get_state()
    ctx = mp.get_context("fork")
    try:
        dflt.set_state({"seed": 5, "next_stream": 0, "n_children": U64})
        seeds = []
        for _ in range(2):
            q = ctx.Queue()
            proc = ctx.Process(target=_child_seed, args=(q,))
            proc.start()
            seeds.append(q.get(timeout=60))
            proc.join(60)
            assert proc.exitcode == 0
        assert dflt.get_state() == {"seed": 5, "next_stream": 0, "n_children": U64, "format": 1}
        pickle.loads(pickle.dumps(dflt))
    finally:
        dflt.set_state(saved)
    (s1, c1), (s2, c2) = seeds
    assert c1 == c2 == 0 and s1 != s2 and 5 not in (s1, s2)


def test_spawn_uses_one_consistent_seed_when_the_state_changes_meanwhile(monkeypatch):
    """spawn() derives all its children from the seed its keys were reserved under, even when
    another thread restores another state while the children are being built."""
    import cdropout._seeding as seeding
    parent = cdropout.Generator(1)
    real_live = seeding._live
    calls = []

    class Hook:  # runs "another thread's" set_state right after the first child is built
        def add(self, gen):
            real_live.add(gen)
            calls.append(gen)
            if len(calls) == 1:
                parent.set_state({"seed": 2, "next_stream": 0, "n_children": 0})

    monkeypatch.setattr(seeding, "_live", Hook())
    kids = parent.spawn(3)
    assert len(calls) == 3, "the hook did not run: Generator.__init__ no longer registers in _live"
    want = [reference.seed_from_seedsequence(np.random.SeedSequence(1, spawn_key=(k,))) for k in range(3)]
    assert [k.seed for k in kids] == want


def test_exhausted_generator_never_shows_a_state_out_of_range():
    """A call on an exhausted generator never leaves next_stream above 2**64 (a state that
    set_state and unpickling reject), not even for an instant after it releases the lock, when
    another thread may pickle the generator."""
    import threading
    g = cdropout.Generator(9)
    g.set_state({"seed": 9, "next_stream": U64, "n_children": 0})
    seen = []

    class WatchedLock:  # what another thread could read right after each release
        def __init__(self):
            self._real = threading.Lock()

        def acquire(self, *args):
            return self._real.acquire(*args)

        def release(self):
            self._real.release()
            seen.append({"seed": g._seed, "next_stream": g._next_stream, "n_children": g._n_children})

        __enter__ = acquire

        def __exit__(self, *exc):
            self.release()

    g._lock = WatchedLock()
    for _ in range(3):
        with pytest.raises(ValueError, match="all 2\\*\\*64 streams"):
            g.reserve_stream()
    assert len(seen) >= 3, "the lock was not used"
    for state in seen:
        assert state["next_stream"] == U64, state
        pickle.loads(pickle.dumps(state))
        cdropout.Generator(0).set_state(state)


@pytest.mark.parametrize("bad, exc", [(True, TypeError), (1.5, TypeError), ("3", TypeError),
                                      (cdropout.Generator(1), TypeError), ([1], TypeError),
                                      (-1, ValueError), (U64, ValueError)], ids=repr)
def test_module_seed_rejects_bad_values_and_keeps_the_state(bad, exc):
    """cdropout.seed names what it accepts (a cdropout.Generator is not a seed) and changes
    nothing on failure."""
    dflt = cdropout.default_generator()
    before = dflt.get_state()
    with pytest.raises(exc) as info:
        cdropout.seed(bad)
    if exc is TypeError:
        msg = str(info.value)
        assert "numpy.random.SeedSequence" in msg and "cdropout.Generator" not in msg.split("not ")[0], msg
    assert dflt.get_state() == before
