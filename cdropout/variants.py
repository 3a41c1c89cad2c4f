"""Structured dropout and dropout variants, by concern:

- :mod:`cdropout._structured`: dropout1d/2d/3d, variational_dropout, drop_path (noise-shaped masks);
- :mod:`cdropout._alpha`: alpha_dropout, feature_alpha_dropout and their backward;
- :mod:`cdropout._gaussian`: gaussian_dropout, gaussian_noise and the backward
  (:mod:`cdropout._normals` holds the machine-independent normals of docs/variants.md).

Every function here is index-addressed like the stream formats (docs/stream-format.md): the random
numbers of element ``i`` of the mask (or noise) shape depend only on (seed, stream, offset + i, p)
and, for the functions with keep bits (all but Gaussian dropout, which has one rule), the format
chosen with ``format=``.
"""
from ._alpha import ALPHA_PRIME, _alpha_coefficients, alpha_dropout, alpha_dropout_backward, feature_alpha_dropout
from ._gaussian import _noise, gaussian_dropout, gaussian_dropout_backward, gaussian_noise
from ._normals import (GAUSSIAN_COUNTER_BIT, _COS_C, _LN2_HI, _LN2_LO, _LOG_Q, _SIN_S, _SQRT2, _horner,
                       _neg_log_u1, _normals_from_words, _sincos_turn, _standard_normals)
from ._structured import drop_path, dropout1d, dropout2d, dropout3d, variational_dropout

__all__ = [
    "ALPHA_PRIME",
    "alpha_dropout",
    "alpha_dropout_backward",
    "drop_path",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "variational_dropout",
]
_private = (_alpha_coefficients, _noise, GAUSSIAN_COUNTER_BIT, _COS_C, _LN2_HI, _LN2_LO, _LOG_Q, _SIN_S, _SQRT2,
            _horner, _neg_log_u1, _normals_from_words, _sincos_turn, _standard_normals)  # used by the tests
