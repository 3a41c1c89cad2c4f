"""Seeding: int seeds, SeedSequence, cdropout.Generator (streams, pickle, spawn), cdropout.seed."""
import pickle
import threading

import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import assert_same_bits, random_data

N = 4099
P = 0.4


def _x(seed=0):
    return random_data((N,), np.float32, seed)


# ------------------------------------------------------------------ int seeds


@pytest.mark.parametrize("seed", [0, 42, 2**64 - 1])
def test_same_int_seed_same_result_every_call(seed):
    x = _x()
    first = cd.dropout(x, P, seed=seed)
    for _ in range(3):
        assert_same_bits(cd.dropout(x, P, seed=seed), first)
    assert_same_bits(first, reference.dropout(x, P, seed, 0, 0))


def test_int_seed_stream_defaults_to_zero():
    x = _x()
    assert_same_bits(cd.dropout(x, P, seed=7), cd.dropout(x, P, seed=7, stream=0))
    _, key = cd.dropout(x, P, seed=7, return_mask="key")
    assert (key.seed, key.stream, key.offset) == (7, 0, 0)


def test_numpy_integer_seed_same_as_int():
    x = _x()
    for s in (np.uint64(2**64 - 1), np.int64(5), np.uint32(7)):
        assert_same_bits(cd.dropout(x, P, seed=s), reference.dropout(x, P, int(s), 0, 0))


# ------------------------------------------------------------------ SeedSequence


@pytest.mark.parametrize("entropy", [0, 12345, 2**100 + 7])
def test_seedsequence_seed_rule(entropy):
    ss = np.random.SeedSequence(entropy)
    seed = reference.seed_from_seedsequence(ss)
    x = _x()
    y, key = cd.dropout(x, P, seed=ss, return_mask="key")
    assert key.seed == seed
    assert_same_bits(y, reference.dropout(x, P, seed, key.stream, 0))
    # deterministic: the same SeedSequence gives the same result again
    assert_same_bits(cd.dropout(x, P, seed=np.random.SeedSequence(entropy)), y)
    # an explicit stream is honoured
    y5 = cd.dropout(x, P, seed=ss, stream=5)
    assert_same_bits(y5, reference.dropout(x, P, seed, 5, 0))


def test_seedsequence_stream_defaults_to_zero():
    ss = np.random.SeedSequence(2024)
    x = _x()
    y = cd.dropout(x, P, seed=ss)
    assert_same_bits(y, reference.dropout(x, P, reference.seed_from_seedsequence(ss), 0, 0))


def test_spawned_seedsequences_differ():
    children = np.random.SeedSequence(1).spawn(3)
    x = np.ones(N, np.float32)
    ys = [cd.dropout(x, 0.5, seed=c) for c in children]
    for c, y in zip(children, ys):
        assert_same_bits(y, reference.dropout(x, 0.5, reference.seed_from_seedsequence(c), 0, 0))
    assert not np.array_equal(ys[0], ys[1]) and not np.array_equal(ys[1], ys[2])


# ------------------------------------------------------------------ Generator


def test_generator_holds_its_seed():
    assert cd.Generator(7).seed == 7
    assert cd.Generator(2**64 - 1).seed == 2**64 - 1
    g = cd.Generator()
    assert isinstance(g.seed, int) and 0 <= g.seed < 2**64
    assert cd.Generator().seed != g.seed  # OS entropy: equal with probability 2**-64


def test_generator_streams_advance_0_1_2():
    g = cd.Generator(7)
    x = _x()
    for k in range(3):
        y = g.dropout(x, P)
        assert_same_bits(y, reference.dropout(x, P, 7, k, 0), f"call {k}")


def test_generator_keys_report_the_streams():
    g = cd.Generator(123)
    x = _x()
    for k in range(4):
        y, key = g.dropout(x, P, return_mask="key")
        assert (key.seed, key.stream, key.offset) == (123, k, 0)
        assert key.p == P
        assert_same_bits(cd.dropout_backward(x, key), y)


def test_generator_passes_keywords():
    g = cd.Generator(9)
    x = _x()
    y, mask = g.dropout(x, P, offset=5, return_mask="bool")
    keep = reference.keep_mask(x.shape, P, 9, 0, 5)
    np.testing.assert_array_equal(mask, keep)
    out = np.empty_like(x)
    g.dropout(x, P, out=out)
    assert_same_bits(out, reference.dropout(x, P, 9, 1, 0))


def test_generator_as_seed_argument_takes_its_next_stream():
    g = cd.Generator(11)
    x = _x()
    assert_same_bits(cd.dropout(x, P, seed=g), reference.dropout(x, P, 11, 0, 0))
    assert_same_bits(g.dropout(x, P), reference.dropout(x, P, 11, 1, 0))
    assert_same_bits(cd.dropout(x, P, seed=g), reference.dropout(x, P, 11, 2, 0))


def test_generator_dropout_backward():
    g = cd.Generator(5)
    x = _x()
    grad = _x(1)
    y, key = g.dropout(x, P, return_mask="key")
    _, bits = g.dropout(x, P, return_mask="bits")
    _, boolm = g.dropout(x, P, return_mask="bool")
    assert_same_bits(g.dropout_backward(grad, key), cd.dropout_backward(grad, key))
    assert_same_bits(g.dropout_backward(grad, bits), cd.dropout_backward(grad, bits))
    assert_same_bits(g.dropout_backward(grad, boolm, p=P), cd.dropout_backward(grad, boolm, p=P))
    assert_same_bits(g.dropout_backward(grad, key),
                     reference.apply_mask(grad, reference.keep_mask(x.shape, P, 5, 0, 0), P))


def test_generator_pickle_round_trip_continues_the_streams():
    g = cd.Generator(2024)
    x = _x()
    g.dropout(x, P)
    g.dropout(x, P)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2.seed == g.seed
    a = g.dropout(x, P)
    b = g2.dropout(x, P)
    assert_same_bits(a, reference.dropout(x, P, 2024, 2, 0))
    assert_same_bits(b, a)
    assert_same_bits(g2.dropout(x, P), reference.dropout(x, P, 2024, 3, 0))


def test_generator_pickle_of_fresh_generator():
    g = cd.Generator(3)
    g2 = pickle.loads(pickle.dumps(g))
    x = _x()
    assert_same_bits(g2.dropout(x, P), reference.dropout(x, P, 3, 0, 0))


def test_spawn_gives_distinct_seeds():
    g = cd.Generator(99)
    kids = g.spawn(4)
    assert len(kids) == 4
    assert all(isinstance(k, cd.Generator) for k in kids)
    seeds = [k.seed for k in kids]
    assert len(set(seeds + [g.seed])) == 5
    more = g.spawn(2)  # spawning again gives new children, like SeedSequence.spawn
    assert len(set(seeds + [k.seed for k in more] + [g.seed])) == 7
    # deterministic for a given parent seed
    assert [k.seed for k in cd.Generator(99).spawn(4)] == seeds
    # children produce different masks
    x = np.ones(N, np.float32)
    a, b = kids[0].dropout(x, 0.5), kids[1].dropout(x, 0.5)
    assert 0.4 < np.mean(a != b) < 0.6


def test_spawned_generators_start_at_stream_zero():
    kid = cd.Generator(99).spawn(1)[0]
    x = _x()
    assert_same_bits(kid.dropout(x, P), reference.dropout(x, P, kid.seed, 0, 0))


def test_stream_reservation_is_thread_safe():
    g = cd.Generator(1)
    x = np.ones(64, np.float32)
    streams = []
    lock = threading.Lock()

    def work():
        local = []
        for _ in range(100):
            _, key = g.dropout(x, 0.5, return_mask="key")
            local.append(key.stream)
        with lock:
            streams.extend(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(streams) == list(range(400))


# ------------------------------------------------------------------ module default generator


def test_module_seed_makes_default_generator_reproducible():
    x = _x()
    cd.seed(1234)
    a1, a2 = cd.dropout(x, P), cd.dropout(x, P)
    cd.seed(1234)
    b1, b2 = cd.dropout(x, P), cd.dropout(x, P)
    assert_same_bits(b1, a1)
    assert_same_bits(b2, a2)
    assert not np.array_equal(a1, a2), "successive default calls must use new streams"


def test_module_seed_equals_a_fresh_generator():
    x = _x()
    cd.seed(555)
    g = cd.Generator(555)
    for _ in range(3):
        assert_same_bits(cd.dropout(x, P), g.dropout(x, P))
    cd.seed(555)
    assert_same_bits(cd.dropout(x, P, seed=None), reference.dropout(x, P, 555, 0, 0))


def test_default_generator_keys_are_reproducible():
    x = _x()
    y, key = cd.dropout(x, P, return_mask="key")
    again = cd.dropout(x, P, seed=key.seed, stream=key.stream, offset=key.offset)
    assert_same_bits(again, y)
    _, key2 = cd.dropout(x, P, return_mask="key")
    assert (key2.seed, key2.stream) != (key.seed, key.stream)
