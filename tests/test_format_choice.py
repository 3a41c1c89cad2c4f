"""Choosing the stream format from Python: format= on every entry point with keep bits, the records'
version, the Generator's format (state, pickling, spawn), the layer, and the one check of a bad
format. Expected masks come from tests/reference.py (format given explicitly), never from cdropout.
"""
import copy
import pickle

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data

FORMATS = [1, 2]
BAD_FORMATS = [(2.0, TypeError), ("2", TypeError), (True, TypeError), (np.bool_(True), TypeError),
               ([2], TypeError), (0, ValueError), (3, ValueError), (-1, ValueError), (2**64, ValueError)]


@pytest.fixture(params=FORMATS, ids=["v1", "v2"])
def fmt(request):
    return request.param


def _keep(shape, p, seed, stream=0, offset=0, fmt=None):
    return reference.keep_mask(shape, p, seed, stream, offset, fmt)


# -- the default and the two streams ------------------------------------------------------------

def test_default_format():
    assert cdropout.FORMAT_VERSION in (1, 2)
    x = random_data((4099,), np.float32, 1)
    assert_same_bits(cdropout.dropout(x, 0.4, seed=5), cdropout.dropout(x, 0.4, seed=5, format=cdropout.FORMAT_VERSION))
    assert_same_bits(cdropout.dropout(x, 0.4, seed=5), reference.dropout(x, 0.4, 5, fmt=cdropout.FORMAT_VERSION))
    _, key = cdropout.dropout(x, 0.4, seed=5, return_mask="key")
    assert key.version == cdropout.FORMAT_VERSION
    assert cdropout.Generator(1).format == cdropout.FORMAT_VERSION
    assert cdropout.MaskKey(1, 0, 0, 0.5, (4,)).version == cdropout.FORMAT_VERSION
    assert cdropout.MaskKey(1, 0, 0, 0.5, (4,), kind="gaussian").version == 1


def test_v1_and_v2_masks_differ():
    x = np.ones(4096, np.float32)
    for seed in (0, 1, 2**64 - 1):
        a = cdropout.dropout(x, 0.5, seed=seed, format=1)
        b = cdropout.dropout(x, 0.5, seed=seed, format=2)
        assert 0.4 < np.mean((a != 0) == (b != 0)) < 0.6  # independent streams agree half the time


@pytest.mark.parametrize("value", [np.int64(2), np.uint8(1), 2, 1])
def test_integer_formats_are_accepted(value):
    x = random_data((100,), np.float64, 2)
    assert_same_bits(cdropout.dropout(x, 0.3, seed=1, format=value), reference.dropout(x, 0.3, 1, fmt=int(value)))


# -- bad formats: one check, naming the argument, nothing written or drawn -----------------------

def _entry_points(x, g):
    x3 = x.reshape(2, 3, -1)
    return {
        "dropout": lambda f: cdropout.dropout(x, 0.5, seed=g, out=x, format=f),
        "dropout eval": lambda f: cdropout.dropout(x, 0.5, seed=g, training=False, format=f),
        "dropout1d": lambda f: cdropout.dropout1d(x3, 0.5, seed=g, out=x3, format=f),
        "dropout2d": lambda f: cdropout.dropout2d(x3[None], 0.5, seed=g, format=f),
        "dropout3d": lambda f: cdropout.dropout3d(x3[None, None], 0.5, seed=g, format=f),
        "variational_dropout": lambda f: cdropout.variational_dropout(x3, 0.5, seed=g, out=x3, format=f),
        "drop_path": lambda f: cdropout.drop_path(x3, 0.5, seed=g, out=x3, format=f),
        "drop_path eval": lambda f: cdropout.drop_path(x3, 0.5, seed=g, training=False, format=f),
        "alpha_dropout": lambda f: cdropout.alpha_dropout(x, 0.5, seed=g, out=x, format=f),
        "feature_alpha_dropout": lambda f: cdropout.feature_alpha_dropout(x3, 0.5, seed=g, out=x3, format=f),
        "Generator.dropout": lambda f: g.dropout(x, 0.5, out=x, format=f),
        "Generator": lambda f: cdropout.Generator(1, format=f),
        "Dropout": lambda f: cdropout.Dropout(0.5, seed=g, format=f),
    }


@pytest.mark.parametrize("value,exc", BAD_FORMATS, ids=repr)
def test_bad_format_everywhere(value, exc):
    x = random_data((24,), np.float64, 3)
    before = x.copy()
    g = cdropout.Generator(9)
    state = g.get_state()
    for name, call in _entry_points(x, g).items():
        with pytest.raises(exc, match="format") as info:
            call(value)
        assert "format" in str(info.value), name
        assert_same_bits(x, before, f"x after a failed {name}")
        assert g.get_state() == state, f"{name} drew a stream before failing"


@pytest.mark.parametrize("value,exc", BAD_FORMATS, ids=repr)
def test_bad_format_draws_from_no_seed_source(value, exc):
    """The paths the list above misses (noise shape, index=, alpha dropout at inference and at
    p = 0, the Generator and layer constructors) with each kind of seed: a numpy Generator is not
    drawn from, and no cdropout Generator's stream (nor the default generator's, nor a spawn key
    of it) is taken."""
    x = random_data((2, 3, 8), np.float32, 20)
    before = x.copy()
    rng, g = np.random.default_rng(1), cdropout.Generator(2)
    rng_state, g_state = rng.bit_generator.state, g.get_state()
    dflt_state = cdropout.default_generator().get_state()
    calls = {
        "noise_shape": lambda s, f: cdropout.dropout(x, 0.5, seed=s, out=x, noise_shape=(1, 3, 1), format=f),
        "index": lambda s, f: cdropout.dropout(x, 0.5, seed=s, out=x, index=((4, 3, 8), (1, 0, 0)),
                                               return_mask="bits", format=f),
        "scale=False eval": lambda s, f: cdropout.dropout(x, 0.5, seed=s, out=x, training=False, scale=False,
                                                          format=f),
        "alpha eval": lambda s, f: cdropout.alpha_dropout(x, 0.5, seed=s, out=x, training=False, format=f),
        "alpha p=0": lambda s, f: cdropout.alpha_dropout(x, 0.0, seed=s, out=x, return_mask="key", format=f),
        "feature_alpha p=1": lambda s, f: cdropout.feature_alpha_dropout(x, 1.0, seed=s, out=x, format=f),
        "variational eval": lambda s, f: cdropout.variational_dropout(x, 0.5, seed=s, out=x, training=False,
                                                                      return_mask="key", format=f),
        "Generator": lambda s, f: cdropout.Generator(s, format=f),
        "Dropout": lambda s, f: cdropout.Dropout(0.5, seed=s, format=f),
    }
    for name, call in calls.items():
        for seed in (rng, g, np.random.SeedSequence(3), None):
            if name in ("Generator", "Dropout") and isinstance(seed, cdropout.Generator):
                continue  # (a Generator is not a Generator's seed; the layer's case is above)
            with pytest.raises(exc, match="format"):
                call(seed, value)
            assert_same_bits(x, before, f"x after a failed {name}")
            assert rng.bit_generator.state == rng_state, f"{name} drew from the numpy Generator"
            assert g.get_state() == g_state, f"{name} took a stream"
            assert cdropout.default_generator().get_state() == dflt_state, f"{name} drew from the default"


def test_bad_format_of_the_default_generator_draws_nothing():
    dflt = cdropout.default_generator()
    before = dflt.get_state()
    with pytest.raises(ValueError, match="format"):
        cdropout.dropout(np.ones(8), 0.5, format=7)
    assert dflt.get_state() == before


def test_gaussian_dropout_has_one_rule():
    """Gaussian noise is not keep bits: gaussian_dropout offers no format=, its records are
    version 1, and a format-2 Generator gives it streams exactly as a format-1 one does."""
    x = random_data((1000,), np.float64, 4)
    with pytest.raises(TypeError, match="format"):
        cdropout.gaussian_dropout(x, 0.2, seed=1, format=2)
    with pytest.raises(TypeError, match="format"):
        cdropout.gaussian_noise(10, 0.2, seed=1, format=2)
    y1, k1 = cdropout.gaussian_dropout(x, 0.2, seed=cdropout.Generator(3, format=1), return_mask="key")
    y2, k2 = cdropout.gaussian_dropout(x, 0.2, seed=cdropout.Generator(3, format=2), return_mask="key")
    assert_same_bits(y1, y2)
    assert k1 == k2 and k2.version == 1
    with pytest.raises(ValueError, match="version"):
        cdropout.MaskKey(1, 0, 0, 0.5, (4,), kind="gaussian", version=2)


# -- the variants follow the format ---------------------------------------------------------------

def test_noise_shaped_variants_follow_the_format(fmt):
    p, seed, stream = 0.4, 77, 5
    x = random_data((4, 3, 10), np.float32, 5)
    cases = [
        (cdropout.dropout1d(x, p, seed=seed, stream=stream, format=fmt), (4, 3, 1)),
        (cdropout.dropout2d(x[:, :, None], p, seed=seed, stream=stream, format=fmt)[:, :, 0], (4, 3, 1)),
        (cdropout.dropout3d(x[:, :, None, None], p, seed=seed, stream=stream, format=fmt)[:, :, 0, 0], (4, 3, 1)),
        (cdropout.variational_dropout(x, p, seed=seed, stream=stream, format=fmt), (4, 1, 10)),
        (cdropout.drop_path(x, p, seed=seed, stream=stream, format=fmt), (4, 1, 1)),
        (cdropout.dropout(x, p, seed=seed, stream=stream, noise_shape=(None, 1, None), format=fmt), (4, 1, 10)),
    ]
    for y, ns in cases:
        assert_same_bits(y, reference.apply_mask(x, _keep(ns, p, seed, stream, 0, fmt), p))


def test_alpha_variants_follow_the_format(fmt):
    p, seed = 0.3, 12
    x = random_data((5, 4, 6), np.float64, 6)
    _, bits = cdropout.alpha_dropout(x, p, seed=seed, return_mask="bits", format=fmt)
    assert bits.version == fmt
    np.testing.assert_array_equal(bits.data, reference.packbits(_keep(x.shape, p, seed, fmt=fmt)))
    _, keep = cdropout.feature_alpha_dropout(x, p, seed=seed, stream=2, return_mask="bool", format=fmt)
    np.testing.assert_array_equal(keep, _keep((5, 4, 1), p, seed, 2, fmt=fmt))
    y, key = cdropout.alpha_dropout(x, p, seed=seed, offset=7, return_mask="key", format=fmt)
    g = cdropout.alpha_dropout_backward(np.ones_like(x), key)
    np.testing.assert_array_equal(g != 0, _keep(x.shape, p, seed, 0, 7, fmt))


def test_blocks_of_a_v2_array_reassemble(fmt):
    x = random_data((9, 14), np.float32, 7)
    whole, key = cdropout.dropout(x, 0.5, seed=4, return_mask="key", format=fmt)
    assert_same_bits(whole, reference.dropout(x, 0.5, 4, fmt=fmt))
    for rows, cols in ((slice(0, 4), slice(0, 5)), (slice(4, 9), slice(5, 14))):
        origin = (rows.start, cols.start)
        block = cdropout.dropout(x[rows, cols], 0.5, seed=4, index=(x.shape, origin), format=fmt)
        assert_same_bits(block, whole[rows, cols])
        g = cdropout.dropout_backward(x[rows, cols], key, index=(x.shape, origin))
        assert_same_bits(g, whole[rows, cols])


# -- records carry their version; a backward regenerates with it ---------------------------------

@pytest.mark.parametrize("noise_shape", [None, (1, 13)])
def test_backward_of_a_key_equals_its_forward(fmt, noise_shape):
    x = random_data((6, 13), np.float64, 8)
    g = random_data((6, 13), np.float64, 9)
    y, key = cdropout.dropout(x, 0.35, seed=3, stream=2, offset=11, return_mask="key",
                              noise_shape=noise_shape, format=fmt)
    assert key.version == fmt
    keep = _keep(key.shape, 0.35, 3, 2, 11, fmt)
    assert_same_bits(y, reference.apply_mask(x, keep, 0.35))
    assert_same_bits(cdropout.dropout_backward(g, key), reference.apply_mask(g, keep, 0.35))
    np.testing.assert_array_equal(key.to_bool(), keep)
    bits = key.to_bits()
    assert bits.version == fmt
    np.testing.assert_array_equal(bits.data, reference.packbits(keep))


def test_a_v2_record_works_by_its_own_version():
    """Where the caller's format is 1 (a format-1 generator, a format-1 layer, format=1 given),
    a version-2 record still regenerates format 2's mask, and a version-1 record format 1's."""
    x = random_data((300,), np.float32, 10)
    for made, other in ((2, 1), (1, 2)):
        _, key = cdropout.dropout(x, 0.5, seed=6, return_mask="key", format=made)
        want = reference.apply_mask(x, _keep(x.shape, 0.5, 6, fmt=made), 0.5)
        assert_same_bits(cdropout.Generator(0, format=other).dropout_backward(x, key), want)
        assert_same_bits(cdropout.dropout_backward(x, key), want)
        hand = cdropout.MaskKey(6, 0, 0, 0.5, x.shape, version=made)
        assert_same_bits(cdropout.dropout_backward(x, hand), want)


def test_bit_masks_carry_the_version(fmt):
    x = random_data((5, 7), np.float32, 11)
    y, bits = cdropout.dropout(x, 0.5, seed=2, return_mask="bits", format=fmt)
    assert bits.version == fmt
    assert "version=%d" % fmt in repr(bits)
    assert_same_bits(cdropout.dropout_backward(x, bits), y)
    own = cdropout.BitMask(bits.data, bits.shape, 0.5, version=fmt)
    assert own.version == fmt
    _, ev = cdropout.dropout(x, 0.5, training=False, return_mask="bits", format=fmt)
    assert ev.version == fmt


@pytest.mark.parametrize("value,exc", BAD_FORMATS, ids=repr)
def test_bad_record_versions(value, exc):
    with pytest.raises(exc, match="version"):
        cdropout.MaskKey(1, 0, 0, 0.5, (4,), version=value)
    with pytest.raises(exc, match="version"):
        cdropout.BitMask(np.zeros(1, np.uint8), (4,), 0.5, version=value)


def test_v2_records_pickle(fmt):
    x = random_data((50,), np.float64, 12)
    for form in ("key", "bits"):
        y, rec = cdropout.dropout(x, 0.5, seed=8, stream=3, return_mask=form, format=fmt)
        back = pickle.loads(pickle.dumps(rec))
        assert back.version == fmt and type(back) is type(rec)
        assert_same_bits(cdropout.dropout_backward(x, back), y)
    _, key = cdropout.dropout(x, 0.5, seed=8, return_mask="key", format=fmt)
    assert pickle.loads(pickle.dumps(key)) == key
    assert key != cdropout.MaskKey(8, 0, 0, 0.5, (50,), version=3 - fmt)


# Pickles written by the release before format v2 (cdropout 4b72241): a key and a bit mask of
# dropout(ones(20), 0.3, seed=12345, stream=6, offset=3) and Generator(777) after one stream
# and one spawn.
OLD_KEY = ("80049552000000000000008c106364726f706f75742e5f7265636f7264948c105f6b65795f66726f6d5f6669656c647394"
           "9394284d39304b064b03473fd33333333333334b148594888c096265726e6f756c6c69944b014e749452942e")
OLD_BITS = ("800495d8000000000000008c106364726f706f75742e5f7265636f7264948c115f626974735f66726f6d5f6669656c6473"
            "949394288c166e756d70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e"
            "756d7079948c076e6461727261799493944b0085944301629487945294284b014b03859468068c0564747970659493948c"
            "02753194898887945294284b038c017c944e4e4e4affffffff4affffffff4b00749462894303bf7b0f947494624b148594"
            "473fd3333333333333888c096265726e6f756c6c69944b014b03749452942e")
OLD_GEN = ("80049554000000000000008c116364726f706f75742e5f73656564696e67948c0947656e657261746f729493942981947d"
           "94288c0473656564944d09038c0b6e6578745f73747265616d944b018c0a6e5f6368696c6472656e944b0175622e")


# A Dropout(0.5, seed=3) layer after one forward of np.ones(4), pickled as the release before
# format v2 writes it: the layer's attributes without 'format' (it had none), its Generator's
# state without 'format', its saved key of version 1.
OLD_LAYER = ("80049573010000000000008c0f6364726f706f75742e6c6179657273948c0744726f706f75749493942981947d94288c01709447"
             "3fe00000000000008c046d61736b948c036b6579948c0967656e657261746f72948c116364726f706f75742e5f73656564696e67"
             "948c0947656e657261746f729493942981947d94288c0473656564944b038c0b6e6578745f73747265616d944b018c0a6e5f6368"
             "696c6472656e944b0075628c07696e706c61636594898c0b6e6f6973655f7368617065944e8c057363616c6594888c026d639489"
             "8c0b6e756d5f74687265616473944e8c08747261696e696e6794888c065f7361766564948c106364726f706f75742e5f7265636f"
             "7264948c105f6b65795f66726f6d5f6669656c6473949394284b034b004b00473fe00000000000004b048594888c096265726e6f"
             "756c6c69944b014e749452948c0c5f73617665645f7368617065944b0485948c085f73617665645f7094473fe00000000000008c"
             "0c5f73617665645f7363616c65948875622e")


def test_pickles_of_the_previous_release_load_as_format_1():
    key = pickle.loads(bytes.fromhex(OLD_KEY))
    assert (key.seed, key.stream, key.offset, key.p, key.shape, key.version) == (12345, 6, 3, 0.3, (20,), 1)
    keep = _keep((20,), 0.3, 12345, 6, 3, fmt=1)
    np.testing.assert_array_equal(key.to_bool(), keep)
    bits = pickle.loads(bytes.fromhex(OLD_BITS))
    assert bits.version == 1 and bits.shape == (20,)
    np.testing.assert_array_equal(bits.to_bool(), keep)
    g = pickle.loads(bytes.fromhex(OLD_GEN))
    assert g.get_state() == {"seed": 777, "next_stream": 1, "n_children": 1, "format": 1}
    x = np.ones(64)
    assert_same_bits(g.dropout(x, 0.5), reference.dropout(x, 0.5, 777, 1, fmt=1))


def test_a_layer_pickled_by_the_previous_release_resumes_its_run():
    """The layer follows its generator, whose old state is format 1: the resumed run repeats the
    previous release's masks (it used to fail with AttributeError: no attribute 'format')."""
    layer = pickle.loads(bytes.fromhex(OLD_LAYER))
    assert layer.format is None and layer.generator.format == 1
    assert "format" not in repr(layer)
    x = random_data((64,), np.float64, 19)
    assert_same_bits(layer.backward(np.ones(4)), reference.dropout(np.ones(4), 0.5, 3, 0, fmt=1))
    assert_same_bits(layer(x), reference.dropout(x, 0.5, 3, 1, fmt=1))
    assert layer.saved_mask.version == 1
    assert_same_bits(layer.backward(x), reference.dropout(x, 0.5, 3, 1, fmt=1))
    twin = pickle.loads(pickle.dumps(layer))  # and it pickles again as a layer of this release
    assert twin.format is None and twin.generator.format == 1
    assert_same_bits(twin(x), reference.dropout(x, 0.5, 3, 2, fmt=1))


# -- the Generator's format -----------------------------------------------------------------------

def test_generator_format_draws_and_is_overridden_per_call(fmt):
    g = cdropout.Generator(42, format=fmt)
    assert g.format == fmt and f"format={fmt}" in repr(g)
    x = random_data((1000,), np.float32, 13)
    assert_same_bits(g.dropout(x, 0.3), reference.dropout(x, 0.3, 42, 0, fmt=fmt))
    assert_same_bits(cdropout.dropout(x, 0.3, seed=g), reference.dropout(x, 0.3, 42, 1, fmt=fmt))
    other = 3 - fmt
    y, key = g.dropout(x, 0.3, format=other, return_mask="key")  # the call's format wins
    assert key.version == other and key.stream == 2
    assert_same_bits(y, reference.dropout(x, 0.3, 42, 2, fmt=other))
    _, bits = cdropout.alpha_dropout(x, 0.3, seed=g, return_mask="bits")
    assert bits.version == fmt


def test_generator_state_pickle_copy_and_spawn(fmt):
    g = cdropout.Generator(5, format=fmt)
    g.reserve_stream()
    state = g.get_state()
    assert state["format"] == fmt
    x = random_data((256,), np.float64, 14)
    for twin in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert twin.get_state() == state
        assert_same_bits(twin.dropout(x, 0.5), reference.dropout(x, 0.5, 5, 1, fmt=fmt))
    h = cdropout.Generator(99, format=3 - fmt)
    h.set_state(state)
    assert h.format == fmt and h.get_state() == state
    children = g.spawn(2)
    assert [c.format for c in children] == [fmt, fmt]
    seed0 = reference.seed_from_seedsequence(np.random.SeedSequence(5, spawn_key=(0,)))
    assert_same_bits(children[0].dropout(x, 0.5), reference.dropout(x, 0.5, seed0, 0, fmt=fmt))


@pytest.mark.parametrize("value,exc", BAD_FORMATS, ids=repr)
def test_generator_set_state_rejects_bad_formats(value, exc):
    g = cdropout.Generator(5, format=2)
    before = g.get_state()
    with pytest.raises(exc, match=r"state\['format'\]"):
        g.set_state(dict(before, format=value))
    assert g.get_state() == before


def test_default_generator_and_unseeded_objects(fmt):
    dflt = cdropout.default_generator()
    saved = dflt.get_state()
    try:
        dflt.set_state({"seed": 11, "next_stream": 0, "n_children": 0, "format": fmt})
        x = random_data((512,), np.float32, 15)
        assert_same_bits(cdropout.dropout(x, 0.5), reference.dropout(x, 0.5, 11, 0, fmt=fmt))
        cdropout.seed(11)  # reseeding keeps the default generator's format
        assert dflt.format == fmt
        assert_same_bits(cdropout.dropout(x, 0.5), reference.dropout(x, 0.5, 11, 0, fmt=fmt))
        assert cdropout.Generator().format == fmt          # a spawned child inherits it
        assert cdropout.Generator(format=3 - fmt).format == 3 - fmt
        assert cdropout.Dropout(0.5).generator.format == fmt
    finally:
        dflt.set_state(saved)


# -- the layer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_layer_format(fmt, form):
    layer = cdropout.Dropout(0.4, seed=3, mask=form, format=fmt)
    assert layer.format == fmt and layer.generator.format == fmt and f"format={fmt}" in repr(layer)
    x = random_data((7, 9), np.float32, 16)
    g = random_data((7, 9), np.float32, 17)
    state = layer.get_state()
    y = layer(x)
    keep = _keep(x.shape, 0.4, 3, 0, fmt=fmt)
    assert_same_bits(y, reference.apply_mask(x, keep, 0.4))
    assert_same_bits(layer.backward(g), reference.apply_mask(g, keep, 0.4))
    twin = pickle.loads(pickle.dumps(layer))
    layer.set_state(state)
    assert_same_bits(layer(x), y)
    assert_same_bits(twin(x), reference.apply_mask(x, _keep(x.shape, 0.4, 3, 1, fmt=fmt), 0.4))


def test_layer_with_a_shared_generator():
    g = cdropout.Generator(8, format=2)
    x = random_data((300,), np.float64, 18)
    assert cdropout.Dropout(0.5, seed=g).format is None
    assert_same_bits(cdropout.Dropout(0.5, seed=g)(x), reference.dropout(x, 0.5, 8, 0, fmt=2))  # the generator's
    assert_same_bits(cdropout.Dropout(0.5, seed=g, format=1)(x), reference.dropout(x, 0.5, 8, 1, fmt=1))
    assert g.format == 2
