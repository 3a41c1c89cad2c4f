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


# Hypothesis profiles (tests/test_fuzz.py): HYPOTHESIS_PROFILE=ci (default), dev or long.
try:
    from hypothesis import HealthCheck, settings

    _SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=_SLOW_OK,
                              print_blob=True)
    settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=_SLOW_OK)
    settings.register_profile("valgrind", max_examples=10, deadline=None, suppress_health_check=_SLOW_OK)
    settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=_SLOW_OK)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is in the test extras; without it test_fuzz.py skips
    pass
