"""Seeds and streams: the Generator, the module's default generator, seed resolution."""
from __future__ import annotations

import numbers
import os
import threading
import weakref
from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from ._checks import U64, check_u64
from ._formats import FORMAT_VERSION, check_format

__all__ = ["Generator", "default_generator", "seed", "resolve", "resolve_format", "validate", "U64", "check_u64"]


def seed_from_seedsequence(ss: np.random.SeedSequence) -> int:
    """The 64-bit seed a SeedSequence stands for: two uint32 words of generate_state, low first."""
    w = ss.generate_state(2, np.uint32)
    return int(w[0]) | (int(w[1]) << 32)


SeedLike = Union[int, np.integer, np.random.SeedSequence, np.random.Generator, "Generator", None]
_SEED_TYPES = ("an int in [0, 2**64), a numpy.random.SeedSequence, a numpy.random.Generator, "
               "a cdropout.Generator or None")


def seed_from_numpy_generator(rng: np.random.Generator) -> int:
    """The 64-bit seed drawn from a numpy.random.Generator: ``rng.integers(2**64, dtype=uint64)``."""
    return int(rng.integers(0, U64, dtype=np.uint64, endpoint=False))


def _seed_value(seed: Any, name: str = "seed") -> int:
    """An explicit seed (int, SeedSequence or numpy Generator) as a 64-bit int."""
    if isinstance(seed, np.random.SeedSequence):
        return seed_from_seedsequence(seed)
    if isinstance(seed, np.random.Generator):
        return seed_from_numpy_generator(seed)
    _check_explicit(seed, name)
    return int(seed)


def _check_explicit(seed: Any, name: str = "seed") -> None:
    if isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return
    try:
        check_u64(seed, name)
    except TypeError:
        raise TypeError(f"{name} must be {_SEED_TYPES}, not {type(seed).__name__}") from None


class Generator:
    """A seed, the next stream number and a stream format: every dropout call through it gets a
    fresh stream.

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        An int in [0, 2**64) is used as the seed itself; a SeedSequence gives 64 bits from
        ``generate_state(2, np.uint32)``; a numpy Generator gives one draw of
        ``integers(2**64, dtype=np.uint64)``; None spawns a child of the module's default
        generator (so ``cdropout.seed(n)`` makes it reproducible).
    format : {1, 2} or None
        The stream format of the masks drawn through this generator (docs/stream-format.md):
        1 is Philox4x32-10, 2 is ARS-7. None: ``cdropout.FORMAT_VERSION`` (for ``seed=None``,
        the default generator's format, as for any spawned child). Like the bit generator of a
        ``numpy.random.Generator``, it is fixed when the generator is made; a call's own
        ``format=`` overrides it for that call.

    Notes
    -----
    Masks depend only on (format, seed, stream, element index, p), so a Generator's calls are
    reproducible for any thread count or machine. Reserving a stream is thread-safe.
    The state (seed, next stream, spawned children, format) is saved by pickling or
    ``get_state``; children made by :meth:`spawn` inherit the format.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> g = cdropout.Generator(42)
    >>> y1 = g.dropout(np.ones(8, np.float32), 0.5)          # stream 0
    >>> y2 = g.dropout(np.ones(8, np.float32), 0.5)          # stream 1
    >>> np.array_equal(y1, cdropout.dropout(np.ones(8, np.float32), 0.5, seed=42, stream=0))
    True
    >>> g2 = cdropout.Generator(42, format=2)                # ARS-7 masks
    >>> _, key = g2.dropout(np.ones(8, np.float32), 0.5, return_mask="key")
    >>> key.version
    2
    """

    def __init__(self, seed: Optional[Union[int, np.integer, np.random.SeedSequence, np.random.Generator]] = None,
                 *, format: Optional[int] = None):
        if isinstance(seed, Generator):
            raise TypeError("seed must be an int, a SeedSequence, a numpy.random.Generator or None, "
                            "not a cdropout.Generator")
        fmt: int
        if format is not None:
            fmt = check_format(format)
        elif seed is None:
            fmt = _default._format  # a spawned child of the default generator inherits its format
        else:
            fmt = FORMAT_VERSION
        self._seed = _default._child_seed() if seed is None else _seed_value(seed)
        self._next_stream = 0
        self._n_children = 0
        self._format: int = fmt
        self._lock = threading.Lock()
        _live.add(self)

    @property
    def seed(self) -> int:
        """The 64-bit seed."""
        return self._seed

    @property
    def format(self) -> int:
        """The stream format (1 or 2) of this generator's masks."""
        return self._format

    @property
    def next_stream(self) -> int:
        """The stream the next call will use."""
        return self._next_stream

    def reserve_stream(self) -> int:
        """Take the next stream number (thread-safe); every call gets a different one."""
        return self._take()[1]

    def _take(self) -> tuple[int, int]:
        """(seed, next stream), the stream taken under the lock: one call's key."""
        lock = self._lock
        lock.acquire()  # not `with`: this is every call's hot path, and `with` costs more here
        try:
            stream = self._next_stream
            seed = self._seed
            if stream < U64:  # (checked under the lock: a concurrent set_state is never undone)
                self._next_stream = stream + 1
        finally:
            lock.release()
        if stream >= U64:
            raise ValueError("this Generator has used all 2**64 streams")
        return seed, stream

    def spawn(self, n: int) -> list["Generator"]:
        """`n` independent generators, seeded like ``SeedSequence(seed).spawn(n)``.

        Examples
        --------
        >>> import cdropout
        >>> a, b = cdropout.Generator(1).spawn(2)
        >>> a.seed != b.seed
        True
        """
        n = check_u64(n, "n")
        with self._lock:
            first, seed, fmt = self._n_children, self._seed, self._format  # one consistent state
            if n > U64 - first:  # keys 0 .. 2**64-1: the counter stays picklable (<= 2**64)
                raise ValueError(f"spawn(n): this Generator has {U64 - first} spawn keys left, "
                                 f"n={n} is too many")
            self._n_children = first + n
        return [
            Generator(np.random.SeedSequence(seed, spawn_key=(first + i,)), format=fmt) for i in range(n)
        ]

    def _child_seed(self) -> int:
        """The seed of the next spawned child (what ``spawn(1)[0].seed`` would be)."""
        with self._lock:
            key, seed = self._n_children, self._seed
            if key >= U64:
                raise ValueError("this Generator has used all 2**64 spawn keys")
            self._n_children = key + 1
        return seed_from_seedsequence(np.random.SeedSequence(seed, spawn_key=(key,)))

    def get_state(self) -> dict[str, int]:
        """The state as a dict: seed, next_stream, n_children, format."""
        with self._lock:
            return {"seed": self._seed, "next_stream": self._next_stream, "n_children": self._n_children,
                    "format": self._format}

    def set_state(self, state: dict[str, int]) -> None:
        """Restore a state from :meth:`get_state`.

        `state` must have the keys 'seed' (an int in [0, 2**64)), 'next_stream' (an int in
        [0, 2**64]; 2**64 means every stream is used) and optionally 'n_children' (an int in
        [0, 2**64], default 0) and 'format' (1 or 2; default 1, the only format of the releases
        whose states have no 'format'), and no others. Anything else is a TypeError or
        ValueError that names the field, and the generator is left as it was.
        """
        seed, stream, children, fmt = _checked_state(state)
        with self._lock:
            self._seed, self._next_stream, self._n_children, self._format = seed, stream, children, fmt

    def __getstate__(self) -> dict[str, int]:
        return self.get_state()

    def __setstate__(self, state: dict[str, int]) -> None:
        self._lock = threading.Lock()
        _live.add(self)
        self.set_state(state)

    def __repr__(self) -> str:
        return f"cdropout.Generator(seed={self._seed}, next_stream={self._next_stream}, format={self._format})"

    def dropout(self, x: Any, p: float = 0.5, **kwargs: Any) -> Any:
        """:func:`cdropout.dropout` with this generator's next stream."""
        return _front["dropout"](x, p, seed=self, **kwargs)

    def dropout_backward(self, grad: Any, mask: Any, **kwargs: Any) -> Any:
        """:func:`cdropout.dropout_backward` (the mask carries its own seed and stream)."""
        return _front["dropout_backward"](grad, mask, **kwargs)


#: The front end's functions, registered by cdropout._api when it loads: _api imports this
#: module, so this module must not import _api (no import cycle).
_front: Dict[str, Callable[..., Any]] = {}
_STATE_KEYS = ("seed", "next_stream", "n_children", "format")


def _state_counter(state: Mapping[str, Any], key: str) -> int:
    """state[key] as an int in [0, 2**64] (2**64: exhausted), naming the field on failure."""
    value = state[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"state[{key!r}] must be an integer, not {type(value).__name__}")
    value = int(value)
    if not 0 <= value <= U64:
        raise ValueError(f"state[{key!r}] must be in [0, 2**64], got {value}")
    return value


def _checked_state(state: Any) -> tuple[int, int, int, int]:
    """(seed, next_stream, n_children, format) of a Generator state dict, validated."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict from Generator.get_state(), not {type(state).__name__}")
    missing = [k for k in _STATE_KEYS[:2] if k not in state]
    if missing:
        raise ValueError(f"state is missing {', '.join(map(repr, missing))} "
                         f"(expected the keys {', '.join(map(repr, _STATE_KEYS))})")
    unknown = sorted(map(repr, set(state) - set(_STATE_KEYS)))
    if unknown:
        raise ValueError(f"state has unknown keys {', '.join(unknown)} "
                         f"(expected {', '.join(map(repr, _STATE_KEYS))})")
    seed = check_u64(state["seed"], "state['seed']")
    stream = _state_counter(state, "next_stream")
    children = _state_counter(state, "n_children") if "n_children" in state else 0
    # A state without 'format' comes from a release that only knew format 1.
    fmt = check_format(state["format"], "state['format']") if "format" in state else 1
    return seed, stream, children, fmt


_live: "weakref.WeakSet[Generator]" = weakref.WeakSet()  # for the fork handler below
_default = Generator(np.random.SeedSequence())  # OS entropy, until cdropout.seed(n)


# After fork() parent and child would draw the same streams of the default generator (the
# NumPy legacy global's well-known pitfall). So the child's default generator becomes the
# parent's next spawned child: distinct from the parent and every sibling, and still
# reproducible after cdropout.seed(n) (the k-th fork child gets spawn key k, like spawn()).
# Locks that another thread held at fork time are replaced in the child.
def _before_fork() -> None:
    _default._lock.acquire()


def _after_fork_in_parent() -> None:
    if _default._n_children < U64:  # (all 2**64 spawn keys used: children draw OS entropy)
        _default._n_children += 1
    _default._lock.release()


def _after_fork_in_child() -> None:
    for gen in list(_live):
        gen._lock = threading.Lock()
    key = _default._n_children
    ss = np.random.SeedSequence(_default._seed, spawn_key=(key,)) if key < U64 else None
    _default._seed = seed_from_seedsequence(np.random.SeedSequence() if ss is None else ss)
    _default._next_stream = 0
    _default._n_children = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


def default_generator() -> Generator:
    """The module's generator, used when a call passes ``seed=None``."""
    return _default


def seed(value: Optional[Union[int, np.random.SeedSequence, np.random.Generator]] = None) -> None:
    """Reseed the module's default generator (None: from OS entropy).

    After ``cdropout.seed(n)`` everything unseeded in the library is reproducible: calls with
    ``seed=None`` take the default generator's next stream, and objects made without a seed
    (``cdropout.Generator()``, ``cdropout.Dropout()``) get a spawned child of it. The default
    generator keeps its stream format (``cdropout.FORMAT_VERSION`` unless set with
    ``default_generator().set_state``).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> cdropout.seed(0); a = cdropout.dropout(np.ones(16, np.float32))
    >>> cdropout.seed(0); b = cdropout.dropout(np.ones(16, np.float32))
    >>> np.array_equal(a, b)
    True
    """
    if value is not None and not isinstance(value, (np.random.SeedSequence, np.random.Generator)):
        try:
            check_u64(value, "seed")
        except TypeError:
            raise TypeError("cdropout.seed takes an int in [0, 2**64), a numpy.random.SeedSequence, "
                            f"a numpy.random.Generator or None, not {type(value).__name__}") from None
    value_ = seed_from_seedsequence(np.random.SeedSequence()) if value is None else _seed_value(value)
    _default.set_state({"seed": value_, "next_stream": 0, "n_children": 0, "format": _default._format})


def validate(seed: SeedLike, stream: Optional[int]) -> None:
    """Check seed and stream as :func:`resolve` does, without taking a stream."""
    if seed is None or isinstance(seed, Generator):
        if stream is not None:
            raise ValueError("stream= needs an explicit seed (int, SeedSequence or numpy Generator), "
                             "not a cdropout.Generator or None")
        return
    _check_explicit(seed)
    if stream is not None:
        check_u64(stream, "stream")


def resolve_format(seed: SeedLike, fmt: Any) -> int:
    """The stream format of one call: `fmt` when given (checked: TypeError/ValueError naming
    `format`), else the format of the cdropout Generator `seed` (None: the default generator's),
    else ``FORMAT_VERSION``. Takes no stream."""
    if fmt is None:
        if type(seed) is Generator or isinstance(seed, Generator):
            return seed._format
        return _default._format if seed is None else FORMAT_VERSION
    return check_format(fmt)


def resolve(seed: SeedLike, stream: Optional[int]) -> tuple[int, int]:
    """(seed, stream) of one call; a Generator (or None: the default one) gives its next stream."""
    if type(seed) is int and stream is None and 0 <= seed < U64:  # the common cases first
        return seed, 0
    if type(seed) is Generator and stream is None:
        return seed._take()
    validate(seed, stream)
    if seed is None or isinstance(seed, Generator):
        return (_default if seed is None else seed)._take()
    return _seed_value(seed), 0 if stream is None else int(stream)
