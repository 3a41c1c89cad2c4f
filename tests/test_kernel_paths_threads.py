"""Every kernel path this machine can run and thread counts 1, 2, 3, 7 give bitwise the reference,
in both stream formats (v1: Philox4x32-10, v2: ARS-7, given explicitly).

Forward (all dtypes), every mask form, backward; odd sizes, a few large ones, unaligned starts
(slices at +1 element), non-contiguous inputs; the tie side path of the SIMD kernels.
"""
import json
import os
import platform

import numpy as np
import pytest

import cdropout as cd
from cdropout import _config, _core
import reference
import helpers
from helpers import (FLOAT_DTYPES, ODD_SIZES, THREAD_COUNTS, assert_same_bits, assert_same_mask,
                     random_data, tie_probes)

ALL_PATHS = ["portable", "avx2", "avx512"]
AVAILABLE = list(cd.simd_info()["available"])
SIZES = list(ODD_SIZES) + [100_003]


@pytest.fixture(params=AVAILABLE)
def isa(request, small_chunks):
    with cd._config.forced_isa(request.param):
        yield request.param


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fmt(request):
    return request.param


# ------------------------------------------------------------------ simd_info, forcing a path


def test_simd_info_contract():
    info = cd.simd_info()
    assert info["isa"] in ALL_PATHS
    avail = list(info["available"])
    assert avail, "no kernel path available"
    assert avail[0] == "portable"
    assert all(a in ALL_PATHS for a in avail)
    assert avail == sorted(avail, key=ALL_PATHS.index), "available must be listed low to high"
    assert len(set(avail)) == len(avail)
    assert info["isa"] in avail
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["max_threads"], int) and info["max_threads"] >= 1
    assert info["format2_isa"] in avail


def test_format2_path_follows_the_cpus_aes_instructions():
    """Format 2 runs on the path asked for when the CPU has that path's AES instructions (VAES
    for avx512, AES-NI for avx2, read here from /proc/cpuinfo), else on the next lower one."""
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("reads the CPU flags from /proc/cpuinfo: Linux on x86-64 only")
    for name in AVAILABLE:
        with _config.forced_isa(name):
            got = cd.simd_info()["format2_isa"]
        want = name
        if want == "avx512" and "vaes" not in flags:
            want = "avx2"
        if want == "avx2" and "aes" not in flags:
            want = "portable"
        assert got == want, (name, got, want)


def test_core_refuses_an_unknown_format():
    bits = np.full(2, 0xAB, np.uint8)
    x = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="fmt"):
        _core.gen_bits(1, 2, 1 << 31, 0, bits, 8, 1, 1, 0, 3)
    with pytest.raises(ValueError, match="fmt"):
        _core.apply_key(x, x, 2.0, 1, 2, 1 << 31, 0, None, None, 1, 1, 0, fmt=0)
    assert (bits == 0xAB).all() and (x == 1).all()


def test_default_path_is_the_best_available():
    if "CDROPOUT_ISA" in os.environ:
        want = os.environ["CDROPOUT_ISA"]
        assert cd.simd_info()["isa"] == want
    else:
        assert cd.simd_info()["isa"] == AVAILABLE[-1]


def _cpu_flags():
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def test_paths_the_cpu_supports_are_available():
    """On an x86-64 Linux machine, the runtime dispatch offers what the CPU can run
    (so the per-path tests below are not silently testing the portable path only)."""
    flags = _cpu_flags()
    if flags is None:
        assert AVAILABLE[0] == "portable"
        return
    avx2 = {"avx2", "fma", "f16c", "bmi1", "bmi2"}
    if avx2 <= flags:
        assert "avx2" in AVAILABLE
    if avx2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        assert "avx512" in AVAILABLE


def test_format_2_runs_on_the_path_asked_for():
    """Format 2 runs its AES-NI kernels on the AVX2 path and its VAES kernels on the AVX-512 path
    when the CPU has those instructions (so the per-path tests below test them, not a fallback);
    format 1 always runs on the path asked for."""
    flags = _cpu_flags() or set()
    for name in AVAILABLE:
        isa = ALL_PATHS.index(name)
        assert cd._core.isa_for_format(isa, 1) == isa
        got = ALL_PATHS[cd._core.isa_for_format(isa, 2)]
        if name == "portable" or (name == "avx2" and "aes" in flags) or (name == "avx512" and "vaes" in flags):
            assert got == name
        else:
            assert ALL_PATHS.index(got) < isa


@pytest.mark.parametrize("name", AVAILABLE)
def test_forced_isa_switches_and_restores(name):
    before = cd.simd_info()["isa"]
    with cd._config.forced_isa(name):
        assert cd.simd_info()["isa"] == name
    assert cd.simd_info()["isa"] == before


@pytest.mark.parametrize("name", AVAILABLE)
def test_env_var_forces_the_path_at_import(name, fmt):
    n, p, seed, stream, offset = 4099, 1.0 / 3.0, 99, 5, 3
    script = (
        "import json, numpy as np, cdropout as cd\n"
        f"x = np.ones({n}, np.float32)\n"
        f"y, m = cd.dropout(x, {p!r}, seed={seed}, stream={stream}, offset={offset}, "
        f"return_mask='bits', format={fmt})\n"
        "print(json.dumps({'isa': cd.simd_info()['isa'],"
        " 'bits': np.asarray(m.data).tobytes().hex(), 'y': y.tobytes().hex()}))\n")
    res = helpers.run_python(["-c", script], env={"CDROPOUT_ISA": name})
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["isa"] == name
    keep = reference.keep_flat(n, p, seed, stream, offset, fmt)
    assert got["bits"] == reference.packbits(keep).tobytes().hex()
    assert got["y"] == reference.apply_mask(np.ones(n, np.float32), keep, p).tobytes().hex()


# ------------------------------------------------------------------ the matrix


def _unaligned(n, dtype, seed):
    buf = random_data((n + 1,), dtype, seed)
    return buf[1:]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_paths_threads_forward_masks_backward(isa, threads, dtype, n, fmt):
    p, seed, stream = 0.3, 0xC0FFEE, 1
    # aligned, offset 0
    x = random_data((n,), dtype, 1)
    x0 = x.copy()
    y = cd.dropout(x, p, seed=seed, stream=stream, num_threads=threads, format=fmt)
    assert_same_bits(y, reference.dropout(x0, p, seed, stream, 0, fmt=fmt))
    assert_same_bits(x, x0, "input")
    # unaligned start (+1 element), odd offset; every mask form and the backward from it
    offset = 5
    keep = reference.keep_flat(n, p, seed, stream, offset, fmt)
    xu = _unaligned(n, dtype, 2)
    gu = _unaligned(n, dtype, 3)
    expected_y = reference.apply_mask(xu, keep, p)
    expected_g = reference.apply_mask(gu, keep, p)
    for form in ("bool", "bits", "key"):
        y, mask = cd.dropout(xu, p, seed=seed, stream=stream, offset=offset, return_mask=form,
                             num_threads=threads, format=fmt)
        assert_same_bits(y, expected_y, f"forward with {form} mask")
        if form == "bool":
            assert_same_mask(mask, keep)
            g = cd.dropout_backward(gu, mask, p=p, num_threads=threads)
        else:
            if form == "bits":
                np.testing.assert_array_equal(np.asarray(mask.data), reference.packbits(keep))
            g = cd.dropout_backward(gu, mask, num_threads=threads)
        assert_same_bits(g, expected_g, f"backward from {form} mask")
    # in place on the unaligned slice
    xi = xu.copy()
    xi_u = np.concatenate([xi[:1], xi])[1:]  # again +1 element from an allocation
    cd.dropout(xi_u, p, seed=seed, stream=stream, offset=offset, out=xi_u, num_threads=threads, format=fmt)
    assert_same_bits(xi_u, expected_y, "in place")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_paths_threads_noncontiguous(isa, threads, dtype, fmt):
    p, seed, stream, offset = 0.55, 7, 2**40, 2**32 - 77
    base = random_data((300, 131), dtype, 4)
    views = [
        base[:, 1:130],          # contiguous inner runs of 129, unaligned
        base[::2, :128],         # aligned inner runs, strided rows
        base.T,                  # strided inner dimension
        base[::-1, ::-3],        # negative strides
        base.reshape(-1)[1::2],  # 1-D strided, large
        np.asfortranarray(base[:77]),
    ]
    for v in views:
        v0 = v.copy()
        keep = reference.keep_mask(v.shape, p, seed, stream, offset, fmt)
        y, bits = cd.dropout(v, p, seed=seed, stream=stream, offset=offset, return_mask="bits",
                             num_threads=threads, format=fmt)
        assert_same_bits(y, reference.apply_mask(v0, keep, p), f"forward of view {v.strides}")
        assert_same_bits(v, v0, "input")
        np.testing.assert_array_equal(np.asarray(bits.data), reference.packbits(keep))
        g = cd.dropout_backward(v, bits, num_threads=threads)
        assert_same_bits(g, reference.apply_mask(v0, keep, p), "backward of view")
        out = np.full(v.shape, 3.0, dtype)[..., ::-1] if v.ndim == 2 else np.full(v.shape, 3.0,
                                                                                  dtype)
        cd.dropout(v, p, seed=seed, stream=stream, offset=offset, out=out, num_threads=threads, format=fmt)
        assert_same_bits(out, reference.apply_mask(v0, keep, p), "strided out")


TIE_N = 2**20
TIE_P = 1.0 / 3.0  # T & 0xffff != 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_paths_threads_ties(isa, threads, dtype, fmt):
    """A large sample with ties (u == Thi), decided both ways, through the SIMD tie side path."""
    seed, stream, offset = 31337, 0, 11
    assert reference.threshold(TIE_P) & 0xFFFF
    ties, kept = reference.tie_stats(TIE_N, TIE_P, seed, stream, offset, fmt)
    assert 0 < kept < ties
    x = random_data((TIE_N,), dtype, 5)
    keep = reference.keep_flat(TIE_N, TIE_P, seed, stream, offset, fmt)
    y, mask = cd.dropout(x, TIE_P, seed=seed, stream=stream, offset=offset, return_mask="bool",
                         num_threads=threads, format=fmt)
    assert_same_mask(mask, keep)
    assert_same_bits(y, reference.apply_mask(x, keep, TIE_P))
    g = cd.dropout_backward(x, mask, p=TIE_P, num_threads=threads)
    assert_same_bits(g, reference.apply_mask(x, keep, TIE_P), "backward")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("threads", [1, 3])
def test_paths_threads_targeted_ties(isa, threads, dtype, fmt):
    """Elements in every lane position put exactly on a tie (see tie_probes)."""
    n, seed, stream, offset = 1000, 5, 2**64 - 2, 1
    x = random_data((n,), dtype, 8)
    indices = list(range(0, 24)) + [127, 128, 129, 255, 256, 511, 999]
    for i, p, keep_i in tie_probes(n, seed, stream, offset, indices, fmt):
        keep = reference.keep_flat(n, p, seed, stream, offset, fmt)
        y, bits = cd.dropout(x, p, seed=seed, stream=stream, offset=offset, return_mask="bits",
                             num_threads=threads, format=fmt)
        assert bool(bits.to_bool()[i]) == keep_i, (i, p)
        np.testing.assert_array_equal(np.asarray(bits.data), reference.packbits(keep))
        assert_same_bits(y, reference.apply_mask(x, keep, p), f"element {i} on a tie")


@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_paths_threads_end_of_index_range(isa, threads, fmt):
    n = 100_003
    offset = 2**64 - n
    x = random_data((n,), np.float32, 6)
    keep = reference.keep_flat(n, 0.2, 2**64 - 1, 2**64 - 1, offset, fmt)
    y, key = cd.dropout(x, 0.2, seed=2**64 - 1, stream=2**64 - 1, offset=offset,
                        return_mask="key", num_threads=threads, format=fmt)
    assert_same_bits(y, reference.apply_mask(x, keep, 0.2))
    assert_same_bits(cd.dropout_backward(x, key, num_threads=threads),
                     reference.apply_mask(x, keep, 0.2), "backward from key")


@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_threads_default_equals_explicit(threads, small_chunks):
    x = random_data((50_001,), np.float32, 7)
    a = cd.dropout(x, 0.5, seed=3, offset=1)
    b = cd.dropout(x, 0.5, seed=3, offset=1, num_threads=threads)
    assert_same_bits(b, a)


def test_concurrent_python_threads(small_chunks):
    """Dropouts running at once in several Python threads (the GIL is released in the kernels)
    each give exactly their own reference result."""
    import threading

    n = 60_001
    jobs = [(seed, stream, offset, p, dtype, nt, fmt)
            for seed, stream, offset, p, dtype, nt, fmt in zip(
                range(1, 13), [0, 5, 2**63] * 4, [0, 3, 2**40 + 1, 7] * 3,
                [0.1, 1.0 / 3.0, 0.5, 0.9] * 3, list(FLOAT_DTYPES) * 4, [1, 2, 3, 7] * 3, [1, 2] * 6)]
    data = {dt: random_data((n,), dt, 9) for dt in FLOAT_DTYPES}
    results = [None] * len(jobs)
    errors = []

    def work(k):
        try:
            seed, stream, offset, p, dtype, nt, fmt = jobs[k]
            out = []
            for _ in range(5):
                y, bits = cd.dropout(data[dtype], p, seed=seed, stream=stream, offset=offset,
                                     return_mask="bits", num_threads=nt, format=fmt)
                g = cd.dropout_backward(data[dtype], bits, num_threads=nt)
                out.append((y, np.asarray(bits.data).copy(), g))
            results[k] = out
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (seed, stream, offset, p, dtype, _, fmt), out in zip(jobs, results):
        keep = reference.keep_flat(n, p, seed, stream, offset, fmt)
        want = reference.apply_mask(data[dtype], keep, p)
        for y, bits, g in out:
            assert_same_bits(y, want)
            np.testing.assert_array_equal(bits, reference.packbits(keep))
            assert_same_bits(g, want, "backward")


def test_threadpoolctl_limits_are_seen():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not cd.simd_info()["openmp"]:
        pytest.skip("built without OpenMP: there is no thread pool to limit")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert cd.simd_info()["max_threads"] == 1
        # and a call under the limit gives the same bits (it runs on one thread)
        x = np.arange(3 * 2**17, dtype=np.float32)
        limited = cd.dropout(x, 0.5, seed=4)
    assert_same_bits(limited, cd.dropout(x, 0.5, seed=4, num_threads=2))
