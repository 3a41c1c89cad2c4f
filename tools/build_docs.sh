#!/usr/bin/env bash
# Build the HTML documentation (API reference + user guide) with warnings as errors, then run
# the code of the user guide as doctests. Needs the `docs` extra (sphinx, numpydoc, myst-parser)
# and cdropout: installed, or built in place (`python setup.py build_ext --inplace`).
#   tools/build_docs.sh [OUTDIR]      (default docs/_build)
# Sphinx runs from docs/, so an installed cdropout is not shadowed by the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${1:-docs/_build}"
out=$(cd "${1:-docs/_build}" && pwd)
cd docs
python -m sphinx -W --keep-going -q -b html . "$out/html"
python -m sphinx -W --keep-going -q -b doctest . "$out/doctest"
echo "documentation written to $out/html/index.html"
