#!/usr/bin/env bash
# Build the HTML documentation (API reference + user guide) with warnings as errors, then run the
# code of the user guide and the examples of the docstrings as doctests. Needs the `docs` extra
# (sphinx, numpydoc, myst-parser) and cdropout: installed, or built in place
# (`python setup.py build_ext --inplace`).
#   tools/build_docs.sh [OUTDIR]      (default docs/_build)
# Sphinx runs from docs/, so an installed cdropout is not shadowed by the source tree. The API
# pages (docs/generated/) and Sphinx's environment (-E) are made afresh every time, so a changed
# or removed docstring is never hidden by an earlier build.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${1:-docs/_build}"
out=$(cd "${1:-docs/_build}" && pwd)
cd docs
rm -rf generated
python -m sphinx -E -W --keep-going -q -b html . "$out/html"
python -m sphinx -E -W --keep-going -q -b doctest . "$out/doctest"
echo "documentation written to $out/html/index.html"
