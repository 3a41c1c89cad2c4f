"""Modules with ``torch.nn``'s names, constructors, ``extra_repr`` and state_dict keys.

Each subclasses its ``torch.nn`` counterpart (so ``isinstance(m, torch.nn.Dropout)`` holds and
an ``nn.Dropout`` checkpoint loads strictly: there is no extra state) and only replaces
``forward``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from . import _functional as F

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _Mixin:
    """Stores the optional generator and stream format; ``p`` and ``inplace`` are torch.nn's own
    attributes. Neither is in the state_dict (so ``torch.nn`` checkpoints load strictly)."""

    generator: Optional[F.GeneratorLike]
    format: Optional[int]

    def _init_generator(self, generator: F.GeneratorLike, format: Optional[int] = None) -> None:
        F._check_p(getattr(self, "p"))  # torch.nn lets p = NaN through; refuse it here
        if generator is not None and not isinstance(generator, (torch.Generator, F._CdGenerator)):
            raise TypeError("generator must be a torch.Generator, a cdropout.Generator or None, "
                            f"not {type(generator).__name__}")
        self.format = F._check_format(format)
        # TorchScript's forward (which draws from torch's default generator) needs an int
        self._script_format = F.FORMAT_VERSION if self.format is None else self.format
        self.generator = generator

    def _setstate(self, state: Dict[str, Any]) -> None:
        """Each module's ``__setstate__`` (unpickling): a module pickled by 0.1.x (``torch.save``
        of a whole model) has no stream format; its masks were format 1's, so it keeps drawing
        them, as 0.1.x Generator states load as format 1."""
        if "format" not in state:
            state = dict(state, format=1, _script_format=1)
        torch.nn.Module.__setstate__(self, state)  # type: ignore[arg-type]


class Dropout(torch.nn.Dropout, _Mixin):
    """``torch.nn.Dropout`` with cdropout's exact masks (see :func:`cdropout.torch.dropout`).

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    inplace : bool
        Overwrite the input (nothing is written when PyTorch would refuse the in-place op).
    generator : torch.Generator or cdropout.Generator, optional
        Source of each training forward's key; None draws from torch's default CPU generator,
        so ``torch.manual_seed(n)`` makes a run reproducible. The generator is not part of
        the state_dict (as with ``torch.nn.Dropout``, whose randomness is torch's global state).
    format : {1, 2} or None
        The stream format of the masks (see :func:`cdropout.torch.dropout`); None: a
        cdropout.Generator's own, else ``cdropout.FORMAT_VERSION``. Every module of
        ``cdropout.torch`` takes it.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> m = ct.Dropout(0.25)
    >>> m
    Dropout(p=0.25, inplace=False)
    >>> x = torch.ones(4, 4)
    >>> y = m(x)
    >>> bool(((y == 0) | (y == 4 / 3)).all())
    True
    >>> m.eval()(x) is x
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.scripted(input, self.p, self.training, self.inplace, -1, self._script_format)
        return F.dropout(input, self.p, self.training, self.inplace, generator=self.generator,
                         format=self.format)


class Dropout1d(torch.nn.Dropout1d, _Mixin):
    """``torch.nn.Dropout1d``: zero whole channels of (N, C, L) or (C, L) inputs.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.Dropout1d(0.5)(torch.ones(2, 3, 4))
    >>> bool((y == y[..., :1]).all())
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.scripted(input, self.p, self.training, self.inplace, 1, self._script_format)
        return F.dropout1d(input, self.p, self.training, self.inplace, generator=self.generator,
                           format=self.format)


class Dropout2d(torch.nn.Dropout2d, _Mixin):
    """``torch.nn.Dropout2d``: zero whole channels of (N, C, H, W) inputs.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.Dropout2d(0.5)(torch.ones(2, 3, 4, 4))
    >>> bool((y == y[..., :1, :1]).all())
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.scripted(input, self.p, self.training, self.inplace, 2, self._script_format)
        return F.dropout2d(input, self.p, self.training, self.inplace, generator=self.generator,
                           format=self.format)


class Dropout3d(torch.nn.Dropout3d, _Mixin):
    """``torch.nn.Dropout3d``: zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.Dropout3d(0.5)(torch.ones(2, 3, 2, 2, 2))
    >>> bool((y == y[..., :1, :1, :1]).all())
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return F.scripted(input, self.p, self.training, self.inplace, 3, self._script_format)
        return F.dropout3d(input, self.p, self.training, self.inplace, generator=self.generator,
                           format=self.format)


class AlphaDropout(torch.nn.AlphaDropout, _Mixin):
    """``torch.nn.AlphaDropout`` (SELU networks) with cdropout's masks.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.AlphaDropout(0.2)(torch.zeros(1000))
    >>> len(set(y.tolist()))
    2
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            raise RuntimeError("cdropout.torch's alpha-dropout modules cannot be scripted; use torch.compile")
        return F.alpha_dropout(input, self.p, self.training, self.inplace, generator=self.generator,
                               format=self.format)


class FeatureAlphaDropout(torch.nn.FeatureAlphaDropout, _Mixin):
    """``torch.nn.FeatureAlphaDropout``: alpha dropout of whole channels.

    Examples
    --------
    >>> import torch, cdropout.torch as ct
    >>> y = ct.FeatureAlphaDropout(0.5)(torch.zeros(4, 3, 5))
    >>> bool((y == y[..., :1]).all())
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: F.GeneratorLike = None,
                 format: Optional[int] = None) -> None:
        super().__init__(p, inplace)
        self._init_generator(generator, format)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            raise RuntimeError("cdropout.torch's alpha-dropout modules cannot be scripted; use torch.compile")
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace, generator=self.generator,
                                       format=self.format)


# (assigned, not inherited: _Mixin comes after torch.nn's class in each module's bases)
for _cls in (Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout, FeatureAlphaDropout):
    _cls.__setstate__ = _Mixin._setstate  # type: ignore[assignment]
del _cls
