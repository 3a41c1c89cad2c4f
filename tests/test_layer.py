"""cdropout.Dropout: the layer of custom training loops."""
import pickle

import numpy as np
import pytest

import cdropout
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, random_data


def expected_forward(x, p, seed, stream, noise_shape=None, scale=True):
    return reference.dropout(x, p, seed, stream, noise_shape=noise_shape, scale=scale)


@pytest.mark.parametrize("form", ["key", "bits", "bool"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_forward_backward_take_consecutive_streams(form, dtype):
    layer = cdropout.Dropout(0.3, seed=42, mask=form)
    x = random_data((17, 9), dtype, seed=1)
    g = random_data((17, 9), dtype, seed=2)
    for stream in range(3):
        y = layer(x)
        assert_same_bits(y, expected_forward(x, 0.3, 42, stream), f"forward {stream}")
        keep = reference.keep_mask(x.shape, 0.3, 42, stream)
        assert_same_bits(layer.backward(g), reference.apply_mask(g, keep, 0.3), f"backward {stream}")
    assert layer.generator.next_stream == 3


def test_saved_mask_forms():
    x = np.ones((10, 10), np.float32)
    kinds = {"key": cdropout.MaskKey, "bits": cdropout.BitMask, "bool": np.ndarray}
    for form, kind in kinds.items():
        layer = cdropout.Dropout(0.5, seed=1, mask=form)
        assert layer.saved_mask is None
        layer(x)
        assert isinstance(layer.saved_mask, kind)
    bits = cdropout.Dropout(0.5, seed=1, mask="bits")
    bits(x)
    assert bits.saved_mask.nbytes == 13  # 100 bits


def test_eval_is_identity_and_draws_no_stream():
    layer = cdropout.Dropout(0.5, seed=3)
    x = random_data((8, 8), np.float64, seed=3)
    assert layer.eval() is layer and layer.training is False
    y = layer(x)
    assert_same_bits(y, x)
    assert y is x  # eval returns the input itself, as PyTorch does
    assert layer.generator.next_stream == 0
    assert layer.train() is layer and layer.training is True
    assert_same_bits(layer(x), expected_forward(x, 0.5, 3, 0))
    assert layer.train(False).training is False


def test_classic_dropout_layer():
    layer = cdropout.Dropout(0.25, seed=4, scale=False)
    x = random_data((50,), np.float32, seed=4)
    assert_same_bits(layer(x), expected_forward(x, 0.25, 4, 0, scale=False))
    keep = reference.keep_mask(x.shape, 0.25, 4, 0)
    assert_same_bits(layer.backward(np.ones_like(x)), keep.astype(np.float32))
    assert_same_bits(layer.eval()(x), x * np.float32(0.75))


def test_monte_carlo_dropout_stays_stochastic_in_eval():
    layer = cdropout.Dropout(0.5, seed=5, mc=True).eval()
    plain = cdropout.Dropout(0.5, seed=5).eval()
    x = np.ones(64)
    a, b = layer(x), layer(x)
    assert_same_bits(a, expected_forward(x, 0.5, 5, 0))
    assert_same_bits(b, expected_forward(x, 0.5, 5, 1))
    assert not np.array_equal(a, b)
    assert_same_bits(layer.backward(np.ones_like(x)), b)
    assert_same_bits(plain(x), x)


def test_backward_errors():
    layer = cdropout.Dropout(0.5, seed=6)
    with pytest.raises(ValueError, match="preceding forward"):
        layer.backward(np.ones(3))
    layer(np.ones((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        layer.backward(np.ones((3, 4)))
    layer.eval()(np.ones((4, 3)))  # a deterministic forward forgets the mask
    with pytest.raises(ValueError, match="preceding forward"):
        layer.backward(np.ones((4, 3)))
    # a noise-shaped mask would broadcast to another shape: the layer still refuses it
    ns = cdropout.Dropout(0.5, seed=6, noise_shape=(4, 1))
    ns(np.ones((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        ns.backward(np.ones((4, 5)))


def test_inplace_layer():
    layer = cdropout.Dropout(0.5, seed=7, inplace=True)
    x = random_data((33,), np.float32, seed=7)
    x0 = x.copy()
    y = layer(x)
    assert y is x
    assert_same_bits(x, expected_forward(x0, 0.5, 7, 0))
    assert_same_bits(layer.backward(np.ones_like(x)), expected_forward(np.ones_like(x), 0.5, 7, 0))
    with pytest.raises(TypeError, match="ndarray"):
        layer([1.0, 2.0])
    ro = np.ones(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        layer(ro)


def test_noise_shape_with_free_entries():
    layer = cdropout.Dropout(0.5, seed=8, noise_shape=(None, 1, None))
    for batch in (3, 5):
        x = random_data((batch, 4, 6), np.float64, seed=batch)
        stream = layer.generator.next_stream
        y = layer(x)
        assert_same_bits(y, expected_forward(x, 0.5, 8, stream, noise_shape=(batch, 1, 6)))
        g = np.ones_like(x)
        assert_same_bits(layer.backward(g), expected_forward(g, 0.5, 8, stream, noise_shape=(batch, 1, 6)))
    with pytest.raises(ValueError, match="does not broadcast"):
        layer(np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        cdropout.Dropout(0.5, noise_shape=(2, 1))(np.ones((3, 4)))


def test_state_resume_gives_the_same_masks():
    x = np.ones((20, 20), np.float32)
    layer = cdropout.Dropout(0.4, seed=123)
    for _ in range(3):
        layer(x)
    state = layer.get_state()
    assert state["seed"] == 123 and state["next_stream"] == 3
    later = [layer(x) for _ in range(2)]
    resumed = cdropout.Dropout(0.4, seed=0)  # another seed: set_state replaces it
    resumed.set_state(state)
    for expected in later:
        assert_same_bits(resumed(x), expected)


def test_pickle_round_trip():
    x = np.ones((7, 7))
    layer = cdropout.Dropout(0.3, seed=9, mask="bits", noise_shape=(7, 1))
    layer(x)
    clone = pickle.loads(pickle.dumps(layer))
    assert repr(clone) == repr(layer)
    assert_same_bits(clone.backward(np.ones_like(x)), layer.backward(np.ones_like(x)))
    for _ in range(3):
        assert_same_bits(clone(x), layer(x))


def test_seed_forms():
    x = np.ones(256)
    ss = np.random.SeedSequence(2024)
    a = cdropout.Dropout(0.5, seed=ss)
    assert a.generator.seed == reference.seed_from_seedsequence(ss)
    shared = cdropout.Generator(11)
    l1, l2 = cdropout.Dropout(0.5, seed=shared), cdropout.Dropout(0.5, seed=shared)
    assert l1.generator is shared
    assert_same_bits(l1(x), expected_forward(x, 0.5, 11, 0))
    assert_same_bits(l2(x), expected_forward(x, 0.5, 11, 1))
    fresh1, fresh2 = cdropout.Dropout(0.5), cdropout.Dropout(0.5)  # OS entropy
    assert fresh1.generator.seed != fresh2.generator.seed


def test_bad_arguments():
    for p in (-0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            cdropout.Dropout(p)
    with pytest.raises(TypeError):
        cdropout.Dropout("0.5")
    with pytest.raises(ValueError, match="mask must be one of"):
        cdropout.Dropout(0.5, mask="bytes")
    with pytest.raises(TypeError, match="noise_shape"):
        cdropout.Dropout(0.5, noise_shape=3)
    with pytest.raises(ValueError, match="num_threads"):
        cdropout.Dropout(0.5, num_threads=0)
    with pytest.raises(ValueError, match="seed"):
        cdropout.Dropout(0.5, seed=-1)
    with pytest.raises(TypeError):
        cdropout.Dropout(0.5, seed=1)(np.ones(3, np.int64))


def test_a_tiny_training_step():
    """The layer inside a two-layer regression: gradients agree with finite differences."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5))
    w = rng.standard_normal((5, 1))
    t = rng.standard_normal((16, 1))
    layer = cdropout.Dropout(0.3, seed=10)

    def loss(w_, stream):
        h = cdropout.dropout(x, 0.3, seed=10, stream=stream)
        return 0.5 * np.sum((h @ w_ - t) ** 2)

    h = layer(x)
    r = h @ w - t
    grad_w = h.T @ r
    grad_x = layer.backward(r @ w.T)
    eps = 1e-6
    for i in range(5):
        d = np.zeros_like(w)
        d[i] = eps
        assert np.isclose((loss(w + d, 0) - loss(w - d, 0)) / (2 * eps), grad_w[i, 0], rtol=1e-6)
    assert_same_bits(grad_x, reference.apply_mask(r @ w.T, reference.keep_mask(x.shape, 0.3, 10), 0.3))


def test_docstring_examples():
    import doctest

    import cdropout.layers

    result = doctest.testmod(cdropout.layers, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
