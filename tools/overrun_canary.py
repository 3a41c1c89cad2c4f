"""A deliberate out-of-bounds access in cdropout's core, for tools/sanitize.sh: the array views
claim 64 float32 elements over 8-element buffers, so the core reads and writes past them.
Under ASan this must abort; under valgrind memcheck it must report Invalid read/write in the
extension. If neither happens, the checker is not looking at the extension."""
import numpy as np

import cdropout._core as core

x = np.ones(8, np.float32)
y = np.empty(8, np.float32)
a = np.lib.stride_tricks.as_strided(x, shape=(64,), strides=(4,))
b = np.lib.stride_tricks.as_strided(y, shape=(64,), strides=(4,))
# apply_key(x, y, scale, seed, stream, T, mbase, mstrides, bits_out, nthreads, min_per_thread, isa)
core.apply_key(a, b, 2.0, 1, 0, 1 << 31, 0, None, None, 1, 1, 0)
