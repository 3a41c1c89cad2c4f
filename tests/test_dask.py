"""cdropout.dask: every chunking, mask form and scheduler gives the in-memory result bit for bit."""
import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import cdropout  # noqa: E402
import cdropout.dask as cdd  # noqa: E402
import helpers  # noqa: E402
import reference  # noqa: E402
from helpers import assert_same_bits, random_data  # noqa: E402

# (shape, chunks): 1-D, 2-D and 3-D, regular and irregular, along one axis and several.
CASES = [
    ((50,), (7,)),
    ((50,), ((3, 20, 1, 26),)),
    ((12, 10), (12, 3)),            # columns only: no chunk is a contiguous run
    ((12, 10), ((5, 7), (4, 6))),
    ((6, 7, 9), ((1, 2, 3), (7,), (2, 2, 5))),
    ((5, 4, 3), (2, 3, 1)),
]
IDS = [f"{s}-{c}" for s, c in CASES]


def _dask(x, chunks):
    return da.from_array(x, chunks=chunks)


def _compute(arr, scheduler="threads"):
    return arr.compute(scheduler=scheduler)


# --------------------------------------------------------------------------------------------
# Threaded scheduler
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,chunks", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_forward_equals_in_memory(shape, chunks, dtype):
    x = random_data(shape, dtype, seed=len(shape))
    y = cdd.dropout(_dask(x, chunks), 0.3, seed=17, stream=4, offset=3)
    assert y.chunks == _dask(x, chunks).chunks
    got = _compute(y)
    assert_same_bits(got, cdropout.dropout(x, 0.3, seed=17, stream=4, offset=3))
    assert_same_bits(got, reference.dropout(x, 0.3, 17, 4, 3))


@pytest.mark.parametrize("shape,chunks", CASES, ids=IDS)
@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_masks_and_backward_equal_in_memory(shape, chunks, form):
    x = random_data(shape, np.float32, seed=1)
    g = random_data(shape, np.float32, seed=2)
    y, mask = cdd.dropout(_dask(x, chunks), 0.45, seed=3, return_mask=form)
    ey, ekeep = cdropout.dropout(x, 0.45, seed=3, return_mask="bool")
    assert_same_bits(_compute(y), ey)
    if form == "key":
        assert isinstance(mask, cdropout.MaskKey)
        assert mask == cdropout.dropout(x, 0.45, seed=3, return_mask="key")[1]  # the whole array's key
        np.testing.assert_array_equal(mask.to_bool(), ekeep)
    elif form == "bits":
        assert isinstance(mask, cdd.BlockBits)
        assert mask.shape == shape and mask.chunks == y.chunks
        np.testing.assert_array_equal(_compute(mask.to_bool()), ekeep)
    else:
        assert mask.dtype == np.bool_ and mask.chunks == y.chunks
        np.testing.assert_array_equal(_compute(mask), ekeep)
    p = 0.45 if form == "bool" else None
    got = _compute(cdd.dropout_backward(_dask(g, chunks), mask, p=p))
    assert_same_bits(got, cdropout.dropout_backward(g, ekeep, p=0.45))
    assert_same_bits(got, reference.apply_mask(g, reference.keep_mask(shape, 0.45, 3), 0.45))


def test_bits_chunks_hold_packed_rows():
    x = np.ones((3, 20), np.float64)
    _, bits = cdd.dropout(_dask(x, (2, (16, 4))), 0.5, seed=8, return_mask="bits")
    assert bits.data.chunks == ((2, 1), (2, 1))
    data = _compute(bits.data)
    keep = reference.keep_mask((3, 20), 0.5, 8)
    expected = np.concatenate([np.packbits(keep[:, :16], axis=-1, bitorder="little"),
                               np.packbits(keep[:, 16:], axis=-1, bitorder="little")], axis=1)
    np.testing.assert_array_equal(data, expected)
    assert bits.nbytes == expected.nbytes
    kept = bits.persist(scheduler="threads")
    assert kept.shape == bits.shape and kept.p == 0.5 and kept.data.name == bits.data.name
    np.testing.assert_array_equal(_compute(kept.to_bool()), keep)


def test_backward_key_works_on_any_chunking_of_grad():
    x = random_data((9, 8), np.float64, seed=4)
    _, key = cdd.dropout(_dask(x, (3, 4)), 0.6, seed=5, return_mask="key")
    g = random_data((9, 8), np.float64, seed=6)
    expected = cdropout.dropout(g, 0.6, seed=5)
    for chunks in [(9, 8), (2, 3), ((1, 8), (5, 3))]:
        assert_same_bits(_compute(cdd.dropout_backward(_dask(g, chunks), key)), expected)


def test_bool_mask_rechunked_to_grad():
    x = random_data((10, 6), np.float32, seed=1)
    _, keep = cdd.dropout(_dask(x, (5, 3)), 0.5, seed=2, return_mask="bool")
    g = _dask(random_data((10, 6), np.float32, seed=3), (4, 2))
    expected = cdropout.dropout_backward(g.compute(), keep.compute(), p=0.5)
    assert_same_bits(_compute(cdd.dropout_backward(g, keep, p=0.5)), expected)


@pytest.mark.parametrize("form", [None, "key", "bits", "bool"])
def test_structured_variants(form):
    x4 = random_data((3, 4, 5, 6), np.float32, seed=1)
    cases = [
        (cdd.dropout1d, cdropout.dropout1d, random_data((3, 4, 7), np.float32), ((2, 1), (3, 1), (4, 3)), {}),
        (cdd.dropout2d, cdropout.dropout2d, x4, ((1, 2), (4,), (2, 3), (6,)), {}),
        (cdd.dropout2d, cdropout.dropout2d, x4[0], (2, 5, 4), {}),   # unbatched (C, H, W)
        (cdd.dropout3d, cdropout.dropout3d, random_data((2, 3, 2, 3, 4), np.float64), (1, 2, 1, 2, 3), {}),
        (cdd.variational_dropout, cdropout.variational_dropout, x4, (2, 2, 2, 2), {"time_axis": (1, -1)}),
    ]
    for dfun, nfun, x, chunks, kw in cases:
        r = dfun(_dask(x, chunks), 0.5, seed=12, return_mask=form, **kw)
        e = nfun(x, 0.5, seed=12, return_mask=form, **kw)
        y, ey = (r[0], e[0]) if form else (r, e)
        assert_same_bits(_compute(y), ey, dfun.__name__)
        if form is None:
            continue
        ekeep = e[1] if form == "bool" else e[1].to_bool()
        mask = r[1]
        if form == "key":
            assert mask.shape == e[1].shape
        keep = mask.to_bool() if form != "bool" else mask
        np.testing.assert_array_equal(_compute(keep) if form != "key" else keep, ekeep)
        g = random_data(x.shape, x.dtype, seed=9)
        got = cdd.dropout_backward(_dask(g, chunks), mask, p=0.5 if form == "bool" else None)
        assert_same_bits(_compute(got), cdropout.dropout_backward(g, e[1], p=0.5 if form == "bool" else None))


@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_noise_shape_and_no_rescaling(form):
    x = random_data((8, 6, 4), np.float16, seed=2)
    g = random_data((8, 6, 4), np.float16, seed=3)
    y, mask = cdd.dropout(_dask(x, (3, 4, 2)), 0.25, seed=1, noise_shape=(8, 1, 4), scale=False, return_mask=form)
    ey, ekeep = cdropout.dropout(x, 0.25, seed=1, noise_shape=(8, 1, 4), scale=False, return_mask="bool")
    assert_same_bits(_compute(y), ey)
    kw = {"p": 0.25, "scale": False} if form == "bool" else {}
    got = cdd.dropout_backward(_dask(g, (3, 4, 2)), mask, **kw)
    expected = cdropout.dropout_backward(g, ekeep, p=0.25, scale=False)
    assert_same_bits(_compute(got), expected)
    assert_same_bits(expected, reference.apply_mask(g, ekeep, 0.25, scale=False))  # kept values unscaled


def test_eval_mode():
    a = _dask(random_data((6, 5), np.float32), 3)
    assert cdd.dropout(a, 0.5, seed=0, training=False) is a
    y = cdd.dropout(a, 0.3, seed=0, training=False, scale=False)
    assert_same_bits(_compute(y), cdropout.dropout(a.compute(), 0.3, seed=0, training=False, scale=False))
    y, keep = cdd.dropout(a, 0.5, seed=0, training=False, return_mask="bool")
    assert y is a and bool(_compute(keep).all())


def test_p_zero_and_one():
    x = random_data((7, 9), np.float64, seed=3)
    for p in (0.0, 1.0):
        assert_same_bits(_compute(cdd.dropout(_dask(x, (2, 4)), p, seed=1)), cdropout.dropout(x, p, seed=1))


def test_zero_size_and_0d():
    assert _compute(cdd.dropout(da.ones((0, 5), chunks=2), 0.5, seed=0)).shape == (0, 5)
    x = np.array(3.0)
    y, bits = cdd.dropout(x, 0.5, seed=4, return_mask="bits")
    assert_same_bits(_compute(y), cdropout.dropout(x, 0.5, seed=4))
    assert _compute(bits.to_bool()) == (cdropout.dropout(x, 0.5, seed=4) != 0)
    assert_same_bits(_compute(cdd.dropout_backward(x, bits)), _compute(y))


def test_broadcast_input_chunks():
    # da.ones makes read-only zero-stride chunks; the result is still the in-memory one.
    a = da.ones((40, 30), chunks=(16, 7), dtype=np.float32)
    expected = cdropout.dropout(np.ones((40, 30), np.float32), 0.5, seed=2)
    assert_same_bits(_compute(cdd.dropout(a, 0.5, seed=2)), expected)


# --------------------------------------------------------------------------------------------
# Seeds, names
# --------------------------------------------------------------------------------------------


def test_generator_streams_are_taken_on_the_client():
    gen = cdropout.Generator(21)
    a = _dask(np.ones((10, 10), np.float32), 4)
    y0 = cdd.dropout(a, 0.5, seed=gen)
    y1 = cdd.dropout(a, 0.5, seed=gen)
    assert gen.next_stream == 2          # taken while building, before anything is computed
    first = _compute(y1)
    assert_same_bits(_compute(y1), first)  # computing twice gives the same values
    assert_same_bits(_compute(y0), cdropout.dropout(np.ones((10, 10), np.float32), 0.5, seed=21, stream=0))
    assert_same_bits(first, cdropout.dropout(np.ones((10, 10), np.float32), 0.5, seed=21, stream=1))
    assert gen.next_stream == 2
    assert y0.name != y1.name


def test_default_generator_stream_taken_on_the_client():
    gen = cdropout.default_generator()
    saved = gen.get_state()
    try:
        cdropout.seed(5)
        x = random_data((7, 6), np.float32)
        y = cdd.dropout(_dask(x, (3, 4)), 0.5, seed=None)
        assert gen.next_stream == 1
        assert_same_bits(_compute(y), cdropout.dropout(x, 0.5, seed=gen.seed, stream=0))
        assert gen.next_stream == 1
    finally:
        gen.set_state(saved)


def test_thread_count_changes_neither_result_nor_names(small_chunks):
    x = random_data((64, 700), np.float32, seed=4)
    ys = [cdd.dropout(_dask(x, (40, 300)), 0.5, seed=2, num_threads=n) for n in (1, 2, None)]
    assert len({y.name for y in ys}) == 1
    expected = cdropout.dropout(x, 0.5, seed=2)
    for n, y in zip((1, 2, None), ys):
        assert_same_bits(y.compute(scheduler="sync"), expected, f"num_threads={n}")


def test_failed_call_takes_no_stream():
    gen = cdropout.Generator(1)
    a = _dask(np.ones(8), 3)
    with pytest.raises(ValueError):
        cdd.dropout(a, 1.5, seed=gen)
    with pytest.raises(ValueError):
        cdd.dropout(a, 0.5, seed=gen, stream=3)
    assert gen.next_stream == 0


def test_names_are_deterministic():
    x = random_data((8, 8), np.float32)
    a = _dask(x, 3)
    y1, k1 = cdd.dropout(a, 0.5, seed=5, return_mask="key")
    y2, k2 = cdd.dropout(_dask(x, 3), 0.5, seed=5, return_mask="key")
    assert y1.name == y2.name and k1 == k2
    assert cdd.dropout(a, 0.5, seed=6).name != y1.name
    assert cdd.dropout(a, 0.5, seed=5, stream=1).name != y1.name
    assert cdd.dropout(a, 0.25, seed=5).name != y1.name
    assert cdd.dropout(a, 0.5, seed=5, noise_shape=(8, 1)).name != y1.name
    _, b1 = cdd.dropout(a, 0.5, seed=5, return_mask="bits")
    _, b2 = cdd.dropout(a, 0.5, seed=5, return_mask="bits")
    assert b1.data.name == b2.data.name
    g = _dask(x, 3)
    assert cdd.dropout_backward(g, k1).name == cdd.dropout_backward(g, k2).name
    assert cdd.dropout_backward(g, b1).name == cdd.dropout_backward(g, b2).name
    # one task per chunk, no rechunk: the layer of the result has exactly the input's blocks
    assert len(y1.dask.layers[y1.name]) == a.npartitions
    for arr in (cdd.dropout_backward(g, k1), cdd.dropout_backward(g, b1), b1.data):
        assert len(arr.dask.layers[arr.name]) == a.npartitions


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_input():
    a = _dask(np.ones((4, 4), np.float32), 2)
    with pytest.raises(TypeError, match="a must have dtype"):
        cdd.dropout(da.ones(4, dtype=np.int32), 0.5, seed=0)
    with pytest.raises(ValueError, match="return_mask"):
        cdd.dropout(a, 0.5, seed=0, return_mask="mask")
    with pytest.raises(ValueError, match="noise_shape"):
        cdd.dropout(a, 0.5, seed=0, noise_shape=(2, 4))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        cdd.dropout(a[a[:, 0] > 0], 0.5, seed=0)
    with pytest.raises(ValueError, match="dropout1d"):
        cdd.dropout1d(da.ones((2, 2, 2, 2), chunks=1), 0.5, seed=0)
    _, bits = cdd.dropout(a, 0.5, seed=0, return_mask="bits")
    with pytest.raises(ValueError, match="chunks"):
        cdd.dropout_backward(a.rechunk(4), bits)
    with pytest.raises(ValueError, match="disagrees"):
        cdd.dropout_backward(a, bits, p=0.25)
    with pytest.raises(ValueError, match="disagrees"):
        cdd.dropout_backward(a, bits, scale=False)
    with pytest.raises(ValueError, match="p is required"):
        cdd.dropout_backward(a, a > 0)
    with pytest.raises(TypeError, match="mask must be"):
        cdd.dropout_backward(a, a)
    with pytest.raises(TypeError, match="mask must be"):
        cdd.dropout_backward(a, None)
    _, key = cdd.dropout(a, 0.5, seed=0, return_mask="key")
    with pytest.raises(ValueError):
        cdd.dropout_backward(da.ones((4, 5), chunks=2, dtype=np.float32), key)


def test_import_cdropout_does_not_import_dask():
    code = "import sys, cdropout; assert 'dask' not in sys.modules, 'dask imported'"
    out = helpers.run_python(["-c", code])
    assert out.returncode == 0, out.stderr


def test_without_dask_the_import_error_says_what_to_install():
    code = ("import sys; sys.modules['dask'] = None\n"
            "try:\n    import cdropout.dask\nexcept ImportError as e:\n    print(e)")
    proc = helpers.run_python(["-c", code])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "pip install 'cdropout[dask]'" in out


# --------------------------------------------------------------------------------------------
# A real cluster: 2 worker processes
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.CRITICAL) as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


def test_cluster_equals_in_memory(client):
    x = random_data((9, 10, 11), np.float32, seed=5)
    g = random_data((9, 10, 11), np.float32, seed=6)
    chunks = ((4, 5), (3, 7), (6, 5))
    ey, ekeep = cdropout.dropout(x, 0.35, seed=13, stream=2, return_mask="bool")
    eg = cdropout.dropout_backward(g, ekeep, p=0.35)
    for form in ("key", "bits", "bool"):
        y, mask = cdd.dropout(_dask(x, chunks), 0.35, seed=13, stream=2, return_mask=form)
        gr = cdd.dropout_backward(_dask(g, chunks), mask, p=0.35 if form == "bool" else None)
        got_y, got_g = client.compute([y, gr], sync=True)
        assert_same_bits(got_y, ey, form)
        assert_same_bits(got_g, eg, form)


def test_cluster_every_case(client):
    # 1-D, 2-D and 3-D, regular and irregular chunks: forward, and backward from 1-bit chunks
    arrays = []
    expected = []
    for i, (shape, chunks) in enumerate(CASES):
        x = random_data(shape, np.float64, seed=i)
        y, bits = cdd.dropout(_dask(x, chunks), 0.6, seed=i, return_mask="bits")
        arrays += [y, cdd.dropout_backward(_dask(x, chunks), bits)]
        expected += [cdropout.dropout(x, 0.6, seed=i)] * 2
    for got, want in zip(client.compute(arrays, sync=True), expected):
        assert_same_bits(got, want)


def test_cluster_generator_recompute(client):
    gen = cdropout.Generator(3)
    a = _dask(random_data((12, 8), np.float64), (5, 3))
    y = cdd.dropout2d(a.reshape(3, 4, 2, 4).rechunk((2, 3, 1, 4)), 0.5, seed=gen)
    first = client.compute(y, sync=True)
    assert_same_bits(client.compute(y, sync=True), first)
    expected = cdropout.dropout2d(a.compute().reshape(3, 4, 2, 4), 0.5, seed=3, stream=0)
    assert_same_bits(first, expected)


def _fails_once(marker, kill):
    """A block function that, on its first call anywhere, kills its worker process (or raises)."""
    def first_call_fails(x):
        import os

        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return x
        os.close(fd)
        if kill:
            os._exit(1)  # the worker process dies mid-computation; the nanny restarts it
        raise RuntimeError("transient failure")

    return first_call_fails


@pytest.mark.parametrize("kill", [False, True], ids=["task-retried", "worker-killed"])
def test_cluster_faults_give_the_same_result(client, tmp_path, kill):
    x = random_data((16, 12), np.float32, seed=8)
    marker = str(tmp_path / "failed-once")
    # meta= keeps dask from calling the function on the client to infer it
    a = _dask(x, (4, 5)).map_blocks(_fails_once(marker, kill), dtype=np.float32, meta=np.empty((0, 0), np.float32))
    y, key = cdd.dropout(a, 0.5, seed=99, return_mask="key")
    g = cdd.dropout_backward(a, key)
    got_y, got_g = client.compute([y, g], sync=True, retries=1)
    assert os.path.exists(marker)  # the failure did happen
    expected = cdropout.dropout(x, 0.5, seed=99)
    assert_same_bits(got_y, expected)
    assert_same_bits(got_g, expected)
    client.wait_for_workers(2, timeout=60)
