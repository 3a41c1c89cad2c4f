"""The benchmark CLI (cdropout-bench) runs, refuses bad options up front, and its NumPy baseline is
a real dropout."""
from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cdropout
import helpers
from cdropout import bench
from cdropout.bench import NumpyFastDropout, fmt_size, parse_size

TINY = ["--sizes", "1Ki", "--repeat", "1", "--min-time", "0.0005", "--max-time", "0.005", "--no-torch"]


def _cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return helpers.run_python(["-m", "cdropout.bench", *args], timeout=timeout)


@pytest.mark.parametrize("extra", [[], ["--markdown"]], ids=["text", "markdown"])
def test_cli_quick_on_tiny_sizes(extra: list[str]) -> None:
    proc = _cli(["--sizes", "1Ki,4Ki", "--repeat", "1", "--min-time", "0.0005", "--max-time", "0.005",
                 *extra], 300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ("floor: scale_inplace", "cdropout forward, in place", "cdropout forward + bit mask",
                  "cdropout backward from key", "cdropout backward from bit mask",
                  "numpy fastest dropout", "numpy classic recipe", "np.multiply"):
        assert out.count(label) >= 2, (label, out)  # both sizes
    assert "1 Ki" in out and "4 Ki" in out
    assert "ISA path" in out
    # The default output reports measurements only: no verdicts against the project's goals.
    assert "PASS" not in out and "MISS" not in out and "target" not in out


def test_cli_check_targets_reports_verdicts() -> None:
    proc = _cli([*TINY, "--check-targets"], 300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "not measured (size 128 Mi not in this run)" in out
    assert "torch" in out and "case torch not in this run" in out
    # the 1 Ki call-cost targets are measured, and each verdict follows from its printed ratio
    pattern = (r"1 Ki  in-place call / np\.multiply\(x, c, out=x\), (1 thread|all threads) +"
               r"([0-9.]+)x  \(target <= ([0-9.]+)x\)  (PASS|MISS)")
    found = re.findall(pattern, out)
    assert "1 thread" in [f[0] for f in found], out
    for _, ratio, limit, verdict in found:
        ratio, limit = float(ratio), float(limit)
        assert limit == 2.5 and 0 < ratio < 1e4
        if ratio != limit:  # (printed to 3 digits: equal means too close to call)
            assert verdict == ("PASS" if ratio < limit else "MISS"), (ratio, verdict)


def test_help_names_the_command() -> None:
    proc = _cli(["--help"], 60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: cdropout-bench ")
    assert "python -m" not in proc.stdout


@pytest.mark.parametrize("option", ["--min-time", "--max-time", "--budget"])
@pytest.mark.parametrize("value", ["-1", "nan", "NaN", "inf", "-inf", "x"])
def test_timing_options_reject_bad_values(option: str, value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.build_parser().parse_args([option, value])
    assert exc.value.code == 2


def test_timing_options_bad_values_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--budget", "nan"])
    err = capsys.readouterr().err
    assert "usage: cdropout-bench" in err and "--budget" in err and "finite number of seconds" in err
    assert "Traceback" not in err


def test_timing_options_accept_zero_and_time_call_guards() -> None:
    args = bench.build_parser().parse_args(["--min-time", "0", "--max-time", "0", "--budget", "0"])
    assert (args.min_time, args.max_time, args.budget) == (0.0, 0.0, 0.0)
    calls = []
    assert bench.time_call(lambda: calls.append(1), repeat=1, min_time=0, max_time=0, budget=0) >= 0
    assert calls  # ran at least once, and returned
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="min_time"):
            bench.time_call(lambda: None, min_time=bad)


def test_threads_above_the_cap_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    cap = bench.max_threads()
    with pytest.raises(SystemExit) as exc:
        bench.main(["--threads", f"1,{cap + 1}", *TINY])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"at most {cap} threads" in err and str(cap + 1) in err


def test_threads_cap_is_the_librarys() -> None:
    from cdropout import _checks
    assert bench.max_threads() == _checks.MAX_THREADS
    assert _checks.check_threads(bench.max_threads() + 1) == bench.max_threads()  # what a call gets


@pytest.mark.parametrize("make_path", [
    lambda tmp: tmp / "no-such-folder" / "plot.png",
    lambda tmp: tmp / "plot.unknownformat",
    lambda tmp: tmp,
], ids=["missing-folder", "bad-extension", "directory"])
def test_bad_plot_path_fails_before_the_run(tmp_path: Path, make_path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    path = make_path(tmp_path)
    with pytest.raises(SystemExit) as exc:
        bench.main([*TINY, "--plot", str(path)])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "--plot" in captured.err and "Traceback" not in captured.err
    assert "cdropout benchmark" not in captured.out  # nothing ran


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root can write into a read-only folder")
def test_unwritable_plot_folder_fails_before_the_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert bench.check_plot_path(str(folder / "p.png")) is not None
    finally:
        folder.chmod(0o700)


def test_missing_matplotlib_hint_names_pip_install_matplotlib(tmp_path: Path) -> None:
    # A child in which `import matplotlib` fails.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('blocked for the test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(Path(cdropout.__file__).resolve().parent.parent)])}
    proc = subprocess.run([helpers.sys.executable, "-m", "cdropout.bench", *TINY, "--plot", str(tmp_path / "p.png")],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "pip install matplotlib" in proc.stderr
    assert "cdropout[" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_plot_two_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    proc = _cli([*TINY, "--sizes", "1Ki,4Ki", "--threads", "1,2", "--plot", str(path)], 300)
    assert proc.returncode == 0, proc.stderr
    assert path.stat().st_size > 10_000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_axes_and_title(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    results = bench.Results([1024, 4096], [1, 2])
    rows = {"fwd": 1.0, "floor": 0.5, "np_fast": 8.0, "torch": 60.0}
    for key, scale in rows.items():
        case = bench.case_by_key(key)
        for t in ([1, 2] if case.threaded else [1]):
            for n in (1024, 4096):
                results.add(bench.Row(n, case, t, scale * n * 1e-9 / t))
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    bench.plot(results, str(tmp_path / "p.png"), cpu="Test CPU 9000", p=0.25)
    fig = figures[-1]
    title = fig._suptitle.get_text()
    assert "Test CPU 9000" in title and "float32" in title and "p = 0.25" in title
    throughput, *speedups = fig.axes
    assert throughput.get_yscale() == "log" and len(throughput.lines) == 5
    assert len(speedups) == 2 and all(ax.get_yscale() == "linear" for ax in speedups)
    # Bar heights are the speed-ups: NumPy 8x on 1 thread, 16x on 2; PyTorch 60x on both.
    heights = [[round(b.get_height(), 6) for b in ax.patches] for ax in speedups]
    assert heights == [[8.0, 8.0, 16.0, 16.0], [60.0, 60.0, 60.0, 60.0]]


def test_torch_case_restores_thread_count() -> None:
    torch = pytest.importorskip("torch")
    before_torch, before_ours = torch.get_num_threads(), cdropout.simd_info()["max_threads"]
    other = 1 if before_torch != 1 else 2
    results = bench.Results([1024], [other])
    timing = {"repeat": 1, "min_time": 0.0, "max_time": 0.0, "budget": 0.0, "stat": "min"}
    bench.run_size(1024, [bench.case_by_key("torch")], [other], 0.5, timing, results)
    assert results.get(1024, "torch", other) is not None
    assert torch.get_num_threads() == before_torch
    assert cdropout.simd_info()["max_threads"] == before_ours


def test_list_cases_and_unknown_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--list-cases"]) == 0
    out = capsys.readouterr().out
    for case in bench.all_cases():
        assert case.key in out
    with pytest.raises(SystemExit):
        bench.main(["--cases", "fwd,nope"])
    assert "unknown case 'nope'" in capsys.readouterr().err


def test_registered_case_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cdropout import _bench_cases
    monkeypatch.setattr(_bench_cases, "_registered", [])
    calls = []
    bench.register_case(bench.Case("extra", "an extra case", lambda w, t: lambda: calls.append(w.n),
                                   threaded=False, default=False))
    with pytest.raises(ValueError, match="exists already"):
        bench.register_case(bench.Case("fwd", "again", lambda w, t: lambda: None))
    assert "extra" not in [c.key for c in bench.select_cases(None, has_torch=False)]
    assert bench.main([*TINY, "--cases", "extra,fwd"]) == 0
    out = capsys.readouterr().out
    assert "an extra case" in out and "cdropout forward, in place" in out and calls
    assert out.index("an extra case") < out.index("cdropout forward, in place")  # --cases order


def test_cli_rejects_bad_size() -> None:
    proc = _cli(["--sizes", "12XB"], 60)
    assert proc.returncode == 2
    assert "bad size" in proc.stderr


def test_size_parsing() -> None:
    assert parse_size("1Ki") == 1024
    assert parse_size("16mi") == 16 << 20
    assert parse_size("1000") == 1000
    assert fmt_size(128 << 20) == "128 Mi" and fmt_size(1000) == "1000"


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_numpy_fast_baseline_is_a_dropout(p: float) -> None:
    n = 3 * NumpyFastDropout.CHUNK + 12345  # several chunks and a ragged tail
    x = np.random.default_rng(1).standard_normal(n, dtype=np.float32) + np.float32(10)
    drop = NumpyFastDropout(p, seed=7)
    y1 = drop(x.copy())
    y2 = drop(x.copy())
    scaled = x * np.float32(1 / (1 - p))
    for y in (y1, y2):
        kept = y != 0
        assert np.array_equal(y[kept], scaled[kept])          # kept: x * scale, rounded once
        sigma = np.sqrt(n * p * (1 - p))
        assert abs(kept.sum() - n * (1 - p)) < 6 * sigma        # keep rate is 1 - p
    assert not np.array_equal(y1 != 0, y2 != 0)                 # fresh draws on every call


def test_case_module_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A new ``cdropout/_bench_cases_<name>.py`` with ``CASES`` joins the run with no other edit."""
    import sys

    from cdropout import _bench_cases
    (tmp_path / "_bench_cases_zz_test.py").write_text(
        "from cdropout._bench_cases import Case\n"
        "CASES = (Case('zz_copy', 'zz: np.copyto', lambda w, t: lambda: w.x.__setitem__(..., w.g),\n"
        "              threaded=False, default=False),)\n")
    (tmp_path / "_bench_other.py").write_text("raise RuntimeError('not a case module: never imported')\n")
    monkeypatch.setattr(cdropout, "__path__", [*cdropout.__path__, str(tmp_path)])
    monkeypatch.setattr(_bench_cases, "_discovered", None)
    monkeypatch.delitem(sys.modules, "cdropout._bench_cases_zz_test", raising=False)
    try:
        assert "zz_copy" in [c.key for c in bench.all_cases()]
        assert "zz_copy" not in [c.key for c in bench.select_cases(None, has_torch=True)]  # default=False
        assert bench.main([*TINY, "--cases", "zz_copy"]) == 0
        assert "zz: np.copyto" in capsys.readouterr().out
    finally:
        sys.modules.pop("cdropout._bench_cases_zz_test", None)
        _bench_cases._discovered = None
