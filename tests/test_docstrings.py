"""Every docstring example in cdropout/ runs, as a doctest.

The examples are read from the .py sources (module, class, function and method docstrings, found
with ast), so they run whether the module is imported compiled (setup.py compiles the hot ones
with Cython) or not. Modules of optional extras run only when their dependency is installed.
"""
import ast
import doctest
import importlib
import pathlib

import pytest

import cdropout

PACKAGE = pathlib.Path(cdropout.__file__).resolve().parent
SOURCES = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__main__.py")
OPTIONAL = {"torch.py": "torch", "dask.py": "dask"}


def _docstrings(path):
    """(qualified name, line, docstring) of every docstring in the file."""
    tree = ast.parse(path.read_text())

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child, clean=False)
                if doc:
                    yield name, child.body[0].lineno, doc
                yield from walk(child, name + ".")

    doc = ast.get_docstring(tree, clean=False)
    if doc:
        yield path.stem, 1, doc
    yield from walk(tree, path.stem + ".")


def _examples():
    for path in SOURCES:
        for name, line, doc in _docstrings(path):
            if ">>>" in doc:
                yield pytest.param(path, name, line, doc, id=name)


EXAMPLES = list(_examples())


def test_there_are_examples_everywhere_it_matters():
    names = {p.values[1] for p in EXAMPLES}
    for public in ("_api.dropout", "_api.dropout_backward", "_record.MaskKey", "_record.BitMask",
                   "layers.Dropout", "_seeding.Generator", "_alpha.alpha_dropout", "_gaussian.gaussian_dropout"):
        assert public in names


@pytest.mark.parametrize("path,name,line,doc", EXAMPLES)
def test_docstring_example(path, name, line, doc):
    if path.name in OPTIONAL:
        pytest.importorskip(OPTIONAL[path.name])
    # The module's own names are the globals, as doctest.testmod gives them (a copy).
    module = importlib.import_module(f"cdropout.{path.stem}")
    test = doctest.DocTestParser().get_doctest(doc, dict(vars(module)), name, str(path), line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
    assert runner.tries > 0


@pytest.mark.parametrize("name", ["dropout1d", "dropout2d", "dropout3d"])
def test_rendered_docstring_examples(name):
    doc = getattr(cdropout, name).__doc__
    test = doctest.DocTestParser().get_doctest(doc, {}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0 and runner.tries > 0, "".join(failures)
