"""Sphinx configuration: API reference from the numpydoc docstrings, user guide in Markdown.

Build (warnings are errors, as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

cdropout is imported as installed; when it is not installed, from the source tree one level
up, whose extension must then be built in place (``python setup.py build_ext --inplace``).
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import cdropout
except ImportError:  # not installed: the source tree, built in place
    sys.path.insert(0, ROOT)
    import cdropout

project = "cdropout"
author = "the cdropout authors"
copyright = "the cdropout authors"
release = cdropout.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

# Optional submodules: each has a page api-<name>.rst, left out when the module cannot be imported
# (its dependency is not installed), and then skipped by the guide's doctests too.
OPTIONAL_MODULES = ("cdropout.torch", "cdropout.dask")


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


HAVE = {module: _importable(module) for module in OPTIONAL_MODULES}

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"] + [
    f"api-{module.split('.')[1]}.rst" for module, ok in HAVE.items() if not ok]
templates_path = ["_templates"]

# API reference: one page per public name, generated at build time (docs/generated/ is not
# committed). numpydoc renders the docstrings; class members are listed by the class template.
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"          # the numpydoc "Parameters" sections carry the types
autodoc_inherit_docstrings = False  # torch base classes carry docstrings with torch-only references
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()

# Markdown pages (user guide, stream format, variants, reliability).
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Code in the user guide is run by `python -m sphinx -b doctest docs docs/_build/doctest`.
doctest_global_setup = """
import numpy as np
import cdropout
try:
    import torch
except ImportError:
    torch = None
"""

html_theme = "alabaster"
html_title = f"cdropout {release}"
html_static_path: list = []


def _listed_names() -> dict:
    """{module: names listed under its ``.. currentmodule::`` in api.rst and api-*.rst}."""
    import glob

    listed: dict = {}
    for path in [os.path.join(HERE, "api.rst"), *sorted(glob.glob(os.path.join(HERE, "api-*.rst")))]:
        if os.path.basename(path) in exclude_patterns:
            continue
        module = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(".. currentmodule::"):
                    module = line.split("::", 1)[1].strip()
                elif module and line.startswith("   ") and line.strip() and not line.strip().startswith(":"):
                    listed.setdefault(module, set()).add(line.strip())
    return listed


def _check_api_complete(app) -> None:
    """Every public name of cdropout (and of its importable optional modules) must be in api.rst.

    A missing one is a warning, so the ``-W`` build fails until the reference lists it.
    """
    import importlib

    from sphinx.util import logging

    log = logging.getLogger(__name__)
    listed = _listed_names()
    for module in ("cdropout", *OPTIONAL_MODULES):
        if not HAVE.get(module, True):
            continue
        mod = importlib.import_module(module)
        names = getattr(mod, "__all__", None)
        if names is None:
            log.warning("%s has no __all__", module)
            continue
        missing = sorted(set(names) - listed.get(module, set()))
        if missing:
            log.warning("docs/api*.rst do not list these public names of %s: %s",
                        module, ", ".join(missing))


def setup(app):
    app.connect("builder-inited", _check_api_complete)

# cdropout.dropout and cdropout.Dropout would be one file on a case-insensitive file system.
autosummary_filename_map = {
    "cdropout.Dropout": "cdropout.Dropout-class",
    "cdropout.torch.Dropout": "cdropout.torch.Dropout-class",
}
