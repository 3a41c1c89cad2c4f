from typing import Optional, Sequence, Tuple

import numpy as np

MAX_DIMS: int

def run(
    dtype: int,
    x: Optional[np.ndarray],
    y: Optional[np.ndarray],
    scale: float,
    key: Optional[Tuple[int, int, int]],
    offset: int,
    bits_in: Optional[np.ndarray],
    bits_out: Optional[np.ndarray],
    nthreads: int,
    min_per_thread: int,
    isa: int,
    shape: Optional[Sequence[int]] = ...,
) -> None: ...
def scale_inplace(dtype: int, y: np.ndarray, s: float, nthreads: int, min_per_thread: int, isa: int) -> None: ...
def philox(counter: np.ndarray, out: np.ndarray, k0: int, k1: int, rounds: int) -> None: ...
def best_isa() -> int: ...
def isa_name(isa: int) -> str: ...
def have_openmp() -> bool: ...
def default_threads() -> int: ...
