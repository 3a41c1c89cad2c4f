"""The message ``import cdropout`` gives when the compiled extension is missing."""
from __future__ import annotations

import os


def not_built_message(package_dir: str, error: BaseException) -> str:
    """Say why ``cdropout._core`` did not import and what to do about it.

    Importing from the source tree (a checkout with ``setup.py`` next to the package) without an
    in-place build is the usual cause: Python finds the ``cdropout`` folder of the current
    directory before the installed package.
    """
    root = os.path.dirname(os.path.abspath(package_dir))
    if os.path.isfile(os.path.join(root, "setup.py")):
        return (
            f"cdropout's compiled extension (cdropout._core) is not built in {package_dir}.\n"
            f"You are importing cdropout from its source tree ({root}): Python finds that "
            "folder before any installed copy.\n"
            "Either run Python from another directory (after `pip install .`), or build the "
            "extension in place first:\n"
            "    python setup.py build_ext --inplace\n"
            "(needs a C compiler, Cython and NumPy)."
        )
    return (
        f"cdropout's compiled extension (cdropout._core) could not be imported from "
        f"{package_dir}: {error}\n"
        "The installation is incomplete or was built for another Python or platform; "
        "reinstall cdropout (pip install --force-reinstall ...) for this interpreter."
    )
