"""Shared fixtures of the cdropout test suite."""
import os
import sys

import pytest

# The reference and helpers live next to the tests; make them importable whatever pytest's
# import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture
def small_chunks():
    """Let every thread take chunks down to one tile, so that num_threads=k really splits the
    test-sized arrays over k threads (by default small arrays stay on the calling thread)."""
    import cdropout

    with cdropout._config.forced_min_per_thread(1):
        yield
