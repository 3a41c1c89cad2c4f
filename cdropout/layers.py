"""A dropout layer for hand-written training loops: forward, backward, train/eval, resumable."""
from __future__ import annotations

import numbers
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ._api import Mask, dropout, dropout_backward
from ._checks import check_p, check_threads
from ._formats import check_format
from ._seeding import Generator

__all__ = ["Dropout"]

_FORMS = ("key", "bits", "bool")
NoiseShape = Optional[Sequence[Optional[int]]]


class Dropout:
    """Inverted dropout as a layer with its own stream of masks.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    seed : int, numpy.random.SeedSequence, cdropout.Generator or None
        Where the masks come from. An int, SeedSequence or numpy Generator makes a new
        :class:`cdropout.Generator`; None spawns a child of the module's default generator, so
        ``cdropout.seed(n)`` makes unseeded layers reproducible; a cdropout Generator is used as it
        is (shared with whoever else holds it). Each stochastic forward takes that generator's
        next stream.
    mask : {'key', 'bits', 'bool'}
        What the forward keeps for the backward: ``'key'`` a :class:`cdropout.MaskKey` (no bytes;
        the backward regenerates the mask), ``'bits'`` a :class:`cdropout.BitMask` (1 bit per
        mask element), ``'bool'`` a bool array (1 byte per element). The gradients are the same.
    inplace : bool
        Write the forward's result into its input (which must then be a writable ndarray).
    noise_shape : sequence of int or None, optional
        Draw the mask over this shape and broadcast it (TensorFlow semantics: each entry 1 or the
        input's size); ``None`` entries take the input's size, so ``(None, 1, None)`` shares one
        mask over axis 1 whatever the batch size.
    scale : bool
        False: classic dropout (no rescaling at training, ``x * (1-p)`` at inference).
    mc : bool
        Monte Carlo dropout: stay stochastic in eval mode too.
    num_threads : int, optional
        OpenMP threads of each call.
    format : {1, 2} or None
        The stream format of the masks (1: Philox4x32-10, 2: ARS-7; docs/stream-format.md).
        None: the generator's format (a generator the layer makes itself gets
        ``cdropout.FORMAT_VERSION``, or the default generator's for ``seed=None``). Given, it
        is also the format of a generator the layer makes, and it overrides a shared
        generator's format for this layer's calls.

    Attributes
    ----------
    training : bool
        True after :meth:`train` (the initial mode), False after :meth:`eval`.
    generator : cdropout.Generator
        The source of the masks.
    format : int or None
        The `format` argument (None: the generator's).

    Notes
    -----
    A forward in eval mode (without `mc`) returns its input itself, as PyTorch does
    (``x * (1-p)`` with ``scale=False``), draws no stream and forgets the stored mask:
    :meth:`backward` then raises, as it does before any forward. The masks depend only on the generator's seed and stream numbers, so
    :meth:`get_state`/:meth:`set_state` (or pickling the layer) resume a run with the same masks.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> layer = cdropout.Dropout(0.5, seed=0)
    >>> x = np.ones((2, 4), np.float32)
    >>> y = layer(x)                      # training: the mask of stream 0 of seed 0
    >>> g = layer.backward(np.ones_like(y))
    >>> np.array_equal(g, y)              # same mask, same scale
    True
    >>> state = layer.get_state()
    >>> a = layer(x)
    >>> layer.set_state(state)
    >>> np.array_equal(layer(x), a)       # resumed: the same mask again
    True
    >>> layer.eval()(x) is x              # inference: the input itself
    True
    """

    def __init__(
        self,
        p: float = 0.5,
        *,
        seed: Union[int, np.integer, np.random.SeedSequence, Generator, None] = None,
        mask: str = "key",
        inplace: bool = False,
        noise_shape: NoiseShape = None,
        scale: bool = True,
        mc: bool = False,
        num_threads: Optional[int] = None,
        format: Optional[int] = None,
    ) -> None:
        self.p = check_p(p)
        if mask not in _FORMS:
            raise ValueError(f"mask must be one of {_FORMS}, got {mask!r}")
        self.mask = mask
        self.format: Optional[int] = None if format is None else check_format(format)
        if isinstance(seed, Generator):
            self.generator = seed
        else:  # None: the default generator's next spawned child
            self.generator = Generator(seed, format=self.format)
        self.inplace = bool(inplace)
        if noise_shape is not None:
            if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
                raise TypeError(f"noise_shape must be a sequence of ints (or None entries), "
                                f"not {type(noise_shape).__name__}")
            noise_shape = tuple(noise_shape)
            for d in noise_shape:
                if d is not None and (isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral)
                                      or d < 0):
                    raise TypeError(f"noise_shape must be a sequence of ints (or None entries), got {d!r}")
            noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
        self.noise_shape: Optional[Tuple[Optional[int], ...]] = noise_shape
        self.scale = bool(scale)
        self.mc = bool(mc)
        check_threads(num_threads)
        self.num_threads = num_threads
        self.training = True
        self._saved: Optional[Mask] = None
        self._saved_shape: Optional[Tuple[int, ...]] = None
        self._saved_p = self.p
        self._saved_scale = self.scale

    # -- modes ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Dropout":
        """Set training mode (``mode=False`` is :meth:`eval`); returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self) -> "Dropout":
        """Set inference mode; returns the layer."""
        return self.train(False)

    # -- passes --------------------------------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """Apply dropout (training or `mc`) or the inference map, remembering the mask.

        Parameters
        ----------
        x : array_like
            float16/32/64 input; an ndarray when the layer is `inplace`.

        Returns
        -------
        numpy.ndarray
            The output (x itself when `inplace`).
        """
        out = None
        if self.inplace:
            if not isinstance(x, np.ndarray):
                raise TypeError(f"an inplace Dropout needs a numpy.ndarray input, not {type(x).__name__}")
            out = x
        ns = self.noise_shape
        self._saved = self._saved_shape = None
        if not (self.training or self.mc):
            return dropout(x, self.p, training=False, out=out, noise_shape=ns, scale=self.scale)
        y, m = dropout(x, self.p, seed=self.generator, out=out, return_mask=self.mask,
                       noise_shape=ns, scale=self.scale, num_threads=self.num_threads, format=self.format)
        self._saved, self._saved_shape = m, y.shape
        self._saved_p, self._saved_scale = self.p, self.scale
        return y

    def __call__(self, x: Any) -> np.ndarray:
        """``layer(x)`` is ``layer.forward(x)`` (a subclass's forward included)."""
        return self.forward(x)

    def backward(self, grad: Any) -> np.ndarray:
        """Gradient of the last forward with respect to its input.

        Parameters
        ----------
        grad : array_like
            float16/32/64 gradient of the output, of the last forward's input shape.

        Returns
        -------
        numpy.ndarray
            ``grad * keep * s`` with the last forward's mask and scale.

        Raises
        ------
        ValueError
            Without a preceding stochastic (training or `mc`) forward, or if grad's shape is not
            the forward input's.
        """
        if self._saved is None:
            raise ValueError("Dropout.backward() needs a preceding forward() in training mode "
                             "(or with mc=True); there is no mask to differentiate")
        if np.shape(grad) != self._saved_shape:
            raise ValueError(f"grad has shape {np.shape(grad)}, but the forward's input had shape "
                             f"{self._saved_shape}")
        if isinstance(self._saved, np.ndarray):  # a bool mask: the forward's p and scale
            return dropout_backward(grad, self._saved, p=self._saved_p, scale=self._saved_scale,
                                    num_threads=self.num_threads)
        return dropout_backward(grad, self._saved, num_threads=self.num_threads)

    @property
    def saved_mask(self) -> Optional[Mask]:
        """The mask the last stochastic forward stored for the backward (None if there is none)."""
        return self._saved

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> Dict[str, int]:
        """The generator's state (:meth:`cdropout.Generator.get_state`)."""
        return self.generator.get_state()

    def set_state(self, state: Dict[str, int]) -> None:
        """Restore the generator's state: the following forwards repeat the saved run's masks."""
        self.generator.set_state(state)

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # A layer pickled by 0.1.x has no 'format': it follows its generator, whose 0.1.x state
        # loads as format 1, so the resumed run repeats 0.1.x's masks.
        self.__dict__.update(state)
        self.__dict__.setdefault("format", None)

    def __repr__(self) -> str:
        extra = "".join([
            f", mask={self.mask!r}",
            ", inplace=True" if self.inplace else "",
            f", noise_shape={self.noise_shape}" if self.noise_shape is not None else "",
            ", scale=False" if not self.scale else "",
            ", mc=True" if self.mc else "",
            f", format={self.format}" if self.format is not None else "",
        ])
        return f"cdropout.Dropout(p={self.p}{extra}, training={self.training})"
