"""cdropout.torch: a drop-in for ``torch.nn.Dropout`` and friends with cdropout's exact masks.

``import cdropout.torch`` needs PyTorch (``pip install 'cdropout[torch]'``); ``import cdropout``
never imports it.

- Functional forms with ``torch.nn.functional``'s names and signatures: :func:`dropout`,
  :func:`dropout1d`, :func:`dropout2d`, :func:`dropout3d`, :func:`alpha_dropout`,
  :func:`feature_alpha_dropout` ``(input, p=0.5, training=True, inplace=False)``, plus
  keyword-only ``generator``, ``seed``, ``stream``, ``format`` (and ``offset``, ``noise_shape``,
  ``scale`` for :func:`dropout`).
- Modules with ``torch.nn``'s names, constructors, ``extra_repr`` and state_dict keys:
  :class:`Dropout`, :class:`Dropout1d`, :class:`Dropout2d`, :class:`Dropout3d`,
  :class:`AlphaDropout`, :class:`FeatureAlphaDropout` (each subclasses its ``torch.nn`` class;
  each also takes keyword-only ``generator`` and ``format``).
- One operator, ``torch.ops.cdropout.dropout``, registered with ``torch.library`` with a fake
  kernel, an autograd formula (only the 4-integer key [seed, stream, offset, format] is saved;
  the backward regenerates the mask) and a vmap rule, so ``torch.compile(fullgraph=True)``, ``torch.export`` and
  ``torch.vmap`` work.

Seeding rule
------------
With no ``seed`` and no ``generator``, every training call draws its key (64-bit seed and
stream) from torch's default CPU generator: ``torch.manual_seed(n)`` makes a run reproducible,
in eager mode. Under ``torch.compile`` the key is drawn by the compiled graph's own random
number generator (as for ``torch.rand``), which is reproducible under ``torch.manual_seed``
too but gives other keys than eager mode. A ``torch.Generator`` is drawn from in the same way
(eager mode only: torch.compile cannot pass a generator object to ``torch.randint``); a
:class:`cdropout.Generator` gives each call its next stream (eager mode only); an int ``seed``
(with ``stream``) fixes the mask: the same key gives the same mask as :func:`cdropout.dropout`.
The stream format is ``format=`` (1 or 2) when given, else a :class:`cdropout.Generator`'s own,
else ``cdropout.FORMAT_VERSION``; the key carries it to the backward.

torch.vmap
----------
With a key drawn outside vmap (an int seed), ``randomness='error'`` (the default) and ``'same'``
give every sample the same mask, so ``vmap(f)(X)[i] == f(X[i])``; ``'different'`` draws the masks
over the stacked batch (sample i uses mask indices ``offset + i*n`` to ``offset + (i+1)*n - 1``,
as if dropout ran on the stacked tensor). Without a seed the key is drawn by ``torch.randint``
inside vmap, which follows vmap's randomness mode: an error by default, one key for ``'same'``,
one key per sample for ``'different'``. ``torch.func.grad``, ``jacrev`` and ``vmap`` of them
work too (in eager mode the functional forms run the op's kernel through an
``autograd.Function`` twin with the same formulas, which torch.func transforms support and which
costs less per call than the dispatcher; while tracing they call the registered op).

TorchScript
-----------
``Dropout`` and ``Dropout1d/2d/3d`` can be scripted (``torch.jit.script``, deprecated by
PyTorch): their scripted forward draws the key from torch's default generator (the same keys as
eager mode) and calls ``torch.ops.cdropout.dropout``. ``AlphaDropout`` and
``FeatureAlphaDropout`` script, but their scripted forward raises (their constants are computed
in Python); the functional forms are Python functions and are not scriptable. Use
``torch.compile`` or ``torch.export`` instead where you can.

Examples
--------
>>> import torch, cdropout.torch as ct
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), ct.Dropout(0.5), torch.nn.Linear(8, 1))
>>> _ = torch.manual_seed(0)
>>> net(torch.ones(2, 4)).shape
torch.Size([2, 1])
"""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "cdropout.torch needs PyTorch, which is not installed: pip install 'cdropout[torch]' "
        "(or pip install torch). The rest of cdropout works without it."
    ) from _exc

from ._functional import alpha_dropout, dropout, dropout1d, dropout2d, dropout3d, feature_alpha_dropout
from ._modules import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from ._ops import dropout_op

__all__ = [
    "AlphaDropout",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "alpha_dropout",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "dropout_op",
    "feature_alpha_dropout",
]
