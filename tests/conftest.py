"""Shared fixtures of the cdropout test suite."""
import os
import sys

# The reference and helpers live next to the tests; make them importable whatever pytest's
# import mode is.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
