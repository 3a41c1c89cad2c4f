"""``import cdropout`` without the compiled extension says what to do (as NumPy's import does)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cdropout

PACKAGE = Path(cdropout.__file__).resolve().parent


def _copy_sources(dest: Path) -> Path:
    """The package's Python files only: no built extension modules."""
    pkg = dest / "cdropout"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    assert not [p for p in pkg.iterdir() if p.suffix in (".so", ".pyd")]
    return pkg


def _import_in(cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -P would keep cwd off sys.path, but only from Python 3.11; "" on sys.path is the default.
    return subprocess.run([sys.executable, "-c", "import cdropout"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_source_tree_without_build(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    (tmp_path / "setup.py").write_text("# a source checkout\n")
    proc = _import_in(tmp_path)
    assert proc.returncode != 0
    err = proc.stderr
    final = err[err.index("ImportError: cdropout's compiled extension (cdropout._core) is not built"):]
    assert "partially initialized module" not in final  # the puzzle this message replaces
    assert "source tree" in final and str(tmp_path.resolve()) in final
    assert "python setup.py build_ext --inplace" in final
    assert "run Python from another directory" in final


def test_broken_install_without_extension(tmp_path: Path) -> None:
    _copy_sources(tmp_path)  # no setup.py next to it: an installed copy missing its extension
    proc = _import_in(tmp_path)
    assert proc.returncode != 0
    assert "could not be imported" in proc.stderr and "reinstall cdropout" in proc.stderr
