from typing import Optional, Sequence, Tuple

import numpy as np

MAX_DIMS: int

def operand(x: object, name: str) -> Tuple[np.ndarray, int]: ...
def check_out(out: Optional[np.ndarray], like: np.ndarray, name: str = ...) -> Optional[np.ndarray]: ...

def apply_key(
    x: np.ndarray,
    y: np.ndarray,
    scale: float,
    seed: int,
    stream: int,
    T: int,
    mbase: int,
    mstrides: Optional[Sequence[int]],
    bits_out: Optional[np.ndarray],
    nthreads: int,
    min_per_thread: int,
    isa: int,
    *,
    bf16: int = ...,
    fmt: int = ...,
) -> None: ...
def apply_bits(
    x: np.ndarray,
    y: np.ndarray,
    scale: float,
    bits: np.ndarray,
    mbase: int,
    mstrides: Optional[Sequence[int]],
    nthreads: int,
    min_per_thread: int,
    isa: int,
    *,
    bf16: int = ...,
) -> None: ...
def gen_bits(
    seed: int, stream: int, T: int, offset: int, bits_out: np.ndarray, n: int, nthreads: int,
    min_per_thread: int, isa: int, fmt: int = ...,
) -> None: ...
def bench_scale(y: np.ndarray, s: float, nthreads: int, min_per_thread: int, isa: int) -> None: ...
def philox(counter: np.ndarray, out: np.ndarray, k0: int, k1: int, rounds: int) -> None: ...
def ars(counter: np.ndarray, out: np.ndarray, k0: int, k1: int, k2: int, k3: int, rounds: int) -> None: ...
def isa_for_format(isa: int, fmt: int) -> int: ...
def best_isa() -> int: ...
def isa_name(isa: int) -> str: ...
def have_openmp() -> bool: ...
def default_threads() -> int: ...
def thread_limit() -> int: ...
def last_threads() -> int: ...
