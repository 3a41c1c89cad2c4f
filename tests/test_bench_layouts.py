"""The layouts benchmark runs every layout and reports the contiguous row as 1x (no timing checked)."""
from cdropout import bench_layouts


def test_layouts_benchmark_runs_every_layout():
    rows = bench_layouts.run([1], rounds=1, number=1, n=64)
    names = [name for name, _ in bench_layouts.layouts()]
    assert [r[0] for r in rows] == names
    assert rows[0][0] == "contiguous" and rows[0][4] == 1.0
    assert all(r[1] == 1 and r[2] > 0 and r[3] > 0 and r[4] > 0 for r in rows)
