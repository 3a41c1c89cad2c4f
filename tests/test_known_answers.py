"""The frozen known-answer files of tests/data/ (written once by tools/make_known_answers.py from the
independent references), checked on every kernel path and several thread counts.

Any change to format v1's or v2's mask stream, to the Gaussian noise or to alpha dropout's
constants fails here, whatever the reference says: the files are not regenerated. Every call here
names its format (format=1, format=2), so the default format does not matter.
"""
import hashlib
import math
import pathlib

import numpy as np
import pytest

import cdropout
import reference
from helpers import THREAD_COUNTS

DATA = pathlib.Path(__file__).resolve().parent / "data"
U64 = 1 << 64
AVAILABLE = list(cdropout.simd_info()["available"])


def _rows(name):
    lines = [ln for ln in (DATA / name).read_text().splitlines() if ln and not ln.startswith("#")]
    header = lines[0].split(",")
    return [dict(zip(header, ln.split(","))) for ln in lines[1:]]


def _mask_cases(fmt):
    cases = []
    for r in _rows(f"format-v{fmt}-masks.csv"):
        cases.append((int(r["seed"]), int(r["stream"]), int(r["offset"]), float.fromhex(r["p"]),
                      int(r["n"]), r["sha256"], r["bits"]))
    return cases


FORMATS = (1, 2)
MASKS_OF = {fmt: _mask_cases(fmt) for fmt in FORMATS}


@pytest.fixture(params=FORMATS, ids=["v1", "v2"])
def fmt(request):
    return request.param


def _sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def _check(got_bytes, case, what):
    seed, stream, offset, p, n, sha, full = case
    got = bytes(got_bytes)
    if full:
        assert got.hex() == full, f"{what}: mask differs for {case[:5]}"
    assert _sha(got) == sha, f"{what}: mask differs for {case[:5]}"


def test_mask_file_covers_the_grid(fmt):
    """The file holds what it promises (a guard against a truncated or edited file)."""
    MASKS = MASKS_OF[fmt]
    assert len(MASKS) >= 150
    ps = {c[3] for c in MASKS}
    assert {0.0, 1.0, 0.5} <= ps
    assert any(reference.threshold(p) & 0xFFFF and 0 < p < 1 for p in ps), "no p with ties"
    assert any(c[4] % 8 for c in MASKS) and any(c[4] > 100_000 for c in MASKS)
    assert any(c[2] < 1 << 32 < c[2] + c[4] for c in MASKS), "no case across element 2**32"
    assert any((c[2] >> 3) < 1 << 32 <= ((c[2] + c[4] - 1) >> 3) for c in MASKS), "no case across block 2**32"
    assert any(c[2] + c[4] == U64 for c in MASKS), "no case ending at the last element"
    assert any(c[2] >= 1 << 61 for c in MASKS), "no high-block case"
    for c in MASKS:
        if c[6]:
            assert _sha(bytes.fromhex(c[6])) == c[5]
            assert len(c[6]) == 2 * ((c[4] + 7) // 8)


def test_reference_agrees_with_the_file(fmt):
    """tests/reference.py still computes the frozen masks (it is the other tests' oracle), and the
    file's cases contain ties (u == Thi) decided both ways."""
    ties = kept = 0
    for case in MASKS_OF[fmt]:
        seed, stream, offset, p, n = case[:5]
        _check(reference.packbits(reference.keep_flat(n, p, seed, stream, offset, fmt)).tobytes(), case,
               "reference")
        t, k = reference.tie_stats(n, p, seed, stream, offset, fmt)
        ties, kept = ties + t, kept + k
    assert 0 < kept < ties


def test_the_formats_files_differ():
    """Same grid, other stream: v1 and v2 agree only where p decides alone (p = 0, p = 1, ...)."""
    v1, v2 = MASKS_OF[1], MASKS_OF[2]
    assert [c[:5] for c in v1] == [c[:5] for c in v2]
    differ = [a[:5] for a, b in zip(v1, v2) if a[5] != b[5]]
    assert len(differ) >= 80 and all(0.0 < p < 1.0 for _, _, _, p, _ in differ)
    # a mask of 64 elements or more at a p far from 0 and 1 agrees by chance with odds < 2**-40
    assert all(c in differ for c in (a[:5] for a in v1) if 0.05 <= c[3] <= 0.95 and c[4] >= 64)


@pytest.fixture(params=AVAILABLE)
def isa(request, small_chunks):
    with cdropout._config.forced_isa(request.param):
        yield request.param


@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_masks_on_every_path_and_thread_count(isa, threads, fmt):
    for case in MASKS_OF[fmt]:
        seed, stream, offset, p, n = case[:5]
        x = np.ones(n, np.float32)
        kw = dict(seed=seed, stream=stream, offset=offset, num_threads=threads, format=fmt)
        y, bits = cdropout.dropout(x, p, return_mask="bits", **kw)
        _check(np.asarray(bits.data), case, f"dropout bits, {isa}, {threads} threads")
        keep = np.unpackbits(np.asarray(bits.data), count=n, bitorder="little").astype(bool)
        assert np.array_equal(y != 0, keep), f"forward output disagrees with its mask {case[:5]}"
        _, keep_bool = cdropout.dropout(x, p, return_mask="bool", **kw)
        _check(np.packbits(keep_bool, bitorder="little"), case, f"dropout bool, {isa}, {threads} threads")
        if n <= 5000:
            # the same mask through a strided input, and broadcast over (H, W) by dropout2d
            xs = np.ones(2 * n, np.float64)[::-2]
            ys, bits = cdropout.dropout(xs, p, return_mask="bits", **kw)
            _check(np.asarray(bits.data), case, f"strided dropout, {isa}, {threads} threads")
            assert np.array_equal(ys != 0, keep)
            x4 = np.ones((1, n, 2, 3), np.float32)
            y4, bits = cdropout.dropout2d(x4, p, return_mask="bits", **kw)
            _check(np.asarray(bits.data), case, f"dropout2d, {isa}, {threads} threads")
            assert np.array_equal(y4 != 0, np.broadcast_to(keep.reshape(1, n, 1, 1), y4.shape))
            # block addressing: the pieces of the global array (n,) reassemble the same mask
            k = n // 3
            for lo, hi in ((0, k), (k, n)):
                yb = cdropout.dropout(np.ones(hi - lo), p, index=((n,), (lo,)), **kw)
                assert np.array_equal(yb != 0, keep[lo:hi]), f"block [{lo}:{hi}] of {case[:5]}"


def test_masks_of_the_other_entry_points(small_chunks, fmt):
    """The bit-mask generator behind alpha dropout, the mask regenerated from a key (by the
    backward, and by MaskKey.to_bits), and a key built by hand with the format as its version."""
    for threads in (1, 3):
        for case in MASKS_OF[fmt]:
            seed, stream, offset, p, n = case[:5]
            x = np.zeros(n, np.float64)
            kw = dict(seed=seed, stream=stream, offset=offset, num_threads=threads, format=fmt)
            _, bits = cdropout.alpha_dropout(x, p, return_mask="bits", **kw)
            _check(np.asarray(bits.data), case, f"alpha_dropout bits, {threads} threads")
            if n <= 5000:
                _, key = cdropout.dropout(x, p, return_mask="key", **kw)
                assert key.version == fmt
                g = cdropout.dropout_backward(np.ones(n), key, num_threads=threads)
                _check(np.packbits(g != 0, bitorder="little"), case, "backward from a key")
                if threads == 1:
                    own = cdropout.MaskKey(seed, stream, offset, p, (n,), version=fmt)
                    _check(np.asarray(own.to_bits().data), case, "MaskKey.to_bits")


# ------------------------------------------------------------------------- Gaussian, alpha

def test_gaussian_noise_known_answers():
    rows = _rows("gaussian-v1.csv")
    assert len(rows) >= 7
    for r in rows:
        seed, stream, offset, n = (int(r[k]) for k in ("seed", "stream", "offset", "n"))
        p = float.fromhex(r["p"])
        m = cdropout.gaussian_noise(n, p, seed=seed, stream=stream, offset=offset, dtype=np.float64)
        got = m.astype("<f8").tobytes()
        if r["noise"]:
            assert [v.hex() for v in m.tolist()] == r["noise"].split(" "), r
        assert _sha(got) == r["sha256"], f"Gaussian noise differs for {r}"
        y = cdropout.gaussian_dropout(np.ones(n), p, seed=seed, stream=stream, offset=offset)
        assert _sha(y.astype("<f8").tobytes()) == r["sha256"], "gaussian_dropout(ones) != its noise"


def test_alpha_constants_known_answers():
    rows = _rows("alpha-constants.csv")
    assert len(rows) >= 20
    x = np.zeros(64)
    for r in rows:
        p = float.fromhex(r["p"])
        a, b, c = (float.fromhex(r[k]) for k in "abc")
        y, keep = cdropout.alpha_dropout(x, p, seed=1, return_mask="bool")
        if p == 0.0:
            assert np.array_equal(y, x)
            continue
        assert np.all(y[keep] == b) and np.all(y[~keep] == c), f"alpha dropout constants differ at p={p!r}"
        if keep.any():
            g = cdropout.alpha_dropout_backward(np.ones(64), keep, p=p)
            assert np.all(g[keep] == a), f"alpha dropout gradient differs at p={p!r}"
        assert math.isfinite(a)
