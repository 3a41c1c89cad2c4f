# cython: boundscheck=False, wraparound=False, cdivision=True
"""Thin glue between the Python API and the C core: one C call per operation, the GIL released
while the C code runs. The array checks live here (at C speed: a small array's call cost is
mostly argument handling); everything else is checked once, in cdropout._api."""
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

import numpy as np

cimport numpy as cnp

cnp.import_array()

cdef extern from "cdropout.h" nogil:
    ctypedef struct cd_key:
        pass
    ctypedef struct cd_op:
        int dtype
        int ndim
        const int64_t *shape
        const char *x
        const int64_t *xstrides
        char *y
        const int64_t *ystrides
        double scale
        const cd_key *key
        const uint8_t *bits_in
        uint64_t mbase
        const int64_t *mstrides
        uint8_t *bits_out
    ctypedef struct cd_exec:
        int nthreads
        int64_t min_per_thread
        int isa
    int CD_MAX_DIMS
    cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T, int fmt)
    void cd_ars4x32(int rounds, const uint32_t *ctr, uint32_t *out, int64_t n, const uint32_t key[4])
    int cd_isa_for_format(int isa, int fmt)
    int cd_run(const cd_op *op, const cd_exec *ex)
    void cd_gen_bits(const cd_key *key, uint64_t offset, uint8_t *out, int64_t n, const cd_exec *ex)
    void cd_scale(int dtype, void *y, int64_t n, double s, const cd_exec *ex)
    int cd_best_isa()
    const char *cd_isa_name(int isa)
    int cd_have_openmp()
    int cd_default_threads()
    int cd_thread_limit()
    int cd_last_threads()

cdef extern from "philox.h" nogil:
    ctypedef struct cd_philox_ctr:
        uint32_t v[4]
    cd_philox_ctr cd_philox4x32_R(int rounds, cd_philox_ctr c, uint32_t k0, uint32_t k1)

MAX_DIMS = CD_MAX_DIMS


def operand(x, str name):
    """(array, dtype code) of an array_like of float16/32/64 or bfloat16: 0, 1, 2, 3 as in src_c/kernels.h.

    Other dtypes, byte-swapped data and masked arrays raise TypeError naming `name`; arrays whose
    data is not aligned for their dtype are copied (never written: they are inputs).
    """
    cdef cnp.ndarray a
    cdef int t, code
    if type(x) is not np.ndarray:
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{name} must not be a masked array (its mask would be ignored)")
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array_like of floats: {exc}") from None
    a = x
    t = cnp.PyArray_TYPE(a)
    code = 0 if t == cnp.NPY_FLOAT16 else 1 if t == cnp.NPY_FLOAT else 2 if t == cnp.NPY_DOUBLE else -1
    if code < 0 and t >= 256 and a.dtype.name == "bfloat16" and a.dtype.itemsize == 2:
        code = 3  # ml_dtypes.bfloat16 (a user dtype, >= NPY_USERDEF; found by name, not imported)
    if code < 0:
        raise TypeError(f"{name} must have dtype float16, float32 or float64 (or ml_dtypes.bfloat16), "
                        f"not {a.dtype}")
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} must be in native byte order, not {a.dtype.str}")
    if not cnp.PyArray_ISALIGNED(a):
        a = a.copy()
    return a, code


def check_out(out, cnp.ndarray like, str name="out"):
    """`out` if it can receive a result shaped and typed like `like`; None stays None."""
    cdef cnp.ndarray o
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, not {type(out).__name__}")
    o = out
    if o is not like and (not cnp.PyArray_SAMESHAPE(o, like) or
                          cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(like) or
                          not cnp.PyArray_ISNOTSWAPPED(o)):
        raise ValueError(f"{name} must have shape {(<object>like).shape} and dtype {like.dtype}, "
                         f"got {out.shape} and {out.dtype}")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError(f"{name} is read-only")
    if not cnp.PyArray_ISALIGNED(o):
        raise ValueError(f"{name} is not aligned for its dtype")
    return o


cdef inline int dtype_code(cnp.ndarray a):
    cdef int t = cnp.PyArray_TYPE(a)
    if t >= 256 and (<object>a).dtype.name == "bfloat16" and cnp.PyArray_ITEMSIZE(a) == 2:
        return 3  # ml_dtypes.bfloat16 (a user dtype; found by name, not imported)
    return 0 if t == cnp.NPY_FLOAT16 else 1 if t == cnp.NPY_FLOAT else 2 if t == cnp.NPY_DOUBLE else -1


cdef int fill_op(cd_op *op, cnp.ndarray x, cnp.ndarray y, double scale, uint64_t mbase, mstrides,
                 int64_t *dims, int64_t *xs, int64_t *ys, int64_t *ms, int forced_code=-1) except -1:
    """Shape, strides and mask strides of (x, y) into op; checks what C would otherwise trust.

    forced_code 3 reads 2-byte integer arrays as bfloat16 (torch.bfloat16 tensors seen by NumPy)."""
    cdef int d, nd = cnp.PyArray_NDIM(x)
    cdef int code = dtype_code(x)
    if forced_code == 3 and cnp.PyArray_TYPE(x) in (cnp.NPY_INT16, cnp.NPY_UINT16):
        code = 3
    if code < 0 or cnp.PyArray_TYPE(y) != cnp.PyArray_TYPE(x):
        raise TypeError(f"x and y must have one dtype of float16/32/64 or bfloat16, got {(<object>x).dtype} and {(<object>y).dtype}")
    if not cnp.PyArray_SAMESHAPE(x, y):
        raise ValueError(f"x and y must have one shape, got {(<object>x).shape} and {(<object>y).shape}")
    if not cnp.PyArray_ISWRITEABLE(y):
        raise ValueError("y is read-only")
    if not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_ISALIGNED(y):
        raise ValueError("x and y must be aligned for their dtype")
    if nd > CD_MAX_DIMS:
        raise ValueError(f"at most {CD_MAX_DIMS} dimensions")
    for d in range(nd):
        dims[d] = cnp.PyArray_DIM(x, d)
        xs[d] = cnp.PyArray_STRIDE(x, d)
        ys[d] = cnp.PyArray_STRIDE(y, d)
    op.dtype = code
    op.ndim = nd
    op.shape = dims
    op.x = <const char *>cnp.PyArray_DATA(x)
    op.xstrides = xs
    op.y = <char *>cnp.PyArray_DATA(y)
    op.ystrides = ys
    op.scale = scale
    op.key = NULL
    op.bits_in = NULL
    op.bits_out = NULL
    op.mbase = mbase
    if mstrides is None:
        op.mstrides = NULL
    else:
        if len(mstrides) != nd:
            raise ValueError(f"mstrides must have {nd} entries, got {len(mstrides)}")
        for d in range(nd):
            ms[d] = mstrides[d]
        op.mstrides = ms
    return 0


cdef cnp.ndarray packed(bits, int64_t n, str name):
    """bits as a C-contiguous writable-or-not uint8 array of at least (n + 7) // 8 bytes."""
    cdef cnp.ndarray b
    if not isinstance(bits, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of uint8")
    b = bits
    if cnp.PyArray_TYPE(b) != cnp.NPY_UINT8 or not cnp.PyArray_IS_C_CONTIGUOUS(b):
        raise TypeError(f"{name} must be a C-contiguous uint8 array")
    if cnp.PyArray_SIZE(b) < (n + 7) // 8:
        raise ValueError(f"{name} must have at least {(n + 7) // 8} bytes, got {b.size}")
    return b


def apply_key(cnp.ndarray x not None, cnp.ndarray y not None, double scale, uint64_t seed, uint64_t stream, uint64_t T,
              uint64_t mbase, mstrides, bits_out, int nthreads, int64_t min_per_thread, int isa, *, int bf16=0,
              int fmt=1):
    """y[idx] = keep(m) ? x[idx] * scale : +0.0 with m = mbase + sum(idx[k] * mstrides[k]).

    keep from stream format fmt (1 or 2) with key (seed, stream, T); mstrides None = C order of x.shape. bits_out:
    None, or (mstrides None only) a C-contiguous uint8 array of (x.size + 7) // 8 bytes that
    receives bit i = keep(mbase + i), padding bits 0. y may be x. bf16=1: int16/uint16 x and y
    hold bfloat16 bits (cdropout.torch's view of torch.bfloat16 tensors).
    """
    cdef cd_op op
    if fmt != 1 and fmt != 2:
        raise ValueError(f"fmt must be 1 or 2, got {fmt}")
    cdef cd_key k = cd_make_key(seed, stream, T, fmt)
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    cdef int64_t dims[64]
    cdef int64_t xs[64]
    cdef int64_t ys[64]
    cdef int64_t ms[64]
    fill_op(&op, x, y, scale, mbase, mstrides, dims, xs, ys, ms, 3 if bf16 else -1)
    op.key = &k
    if bits_out is not None:
        if mstrides is not None:
            raise ValueError("bits_out needs mstrides=None")
        op.bits_out = <uint8_t *>cnp.PyArray_DATA(packed(bits_out, cnp.PyArray_SIZE(x), "bits_out"))
    with nogil:
        cd_run(&op, &ex)


def apply_bits(cnp.ndarray x not None, cnp.ndarray y not None, double scale, bits, uint64_t mbase, mstrides,
               int nthreads, int64_t min_per_thread, int isa, *, int bf16=0):
    """y[idx] = bit m of bits ? x[idx] * scale : +0.0, m as in apply_key (LSB first); bf16 as there.

    Raises ValueError unless every m lies in [0, 8 * bits.size).
    """
    cdef cd_op op
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    cdef int64_t dims[64]
    cdef int64_t xs[64]
    cdef int64_t ys[64]
    cdef int64_t ms[64]
    cdef int d
    cdef cnp.ndarray b
    cdef object lo, hi, c, step
    fill_op(&op, x, y, scale, mbase, mstrides, dims, xs, ys, ms, 3 if bf16 else -1)
    b = packed(bits, 0, "bits")
    if cnp.PyArray_SIZE(x) > 0:
        lo = hi = mbase
        c = 1
        for d in range(op.ndim - 1, -1, -1):
            step = <object>(dims[d] - 1) * (ms[d] if mstrides is not None else c)  # Python ints: no overflow
            c *= dims[d]
            if step < 0:
                lo += step
            else:
                hi += step
        if lo < 0 or hi >= 8 * cnp.PyArray_SIZE(b):
            raise ValueError(f"mask indices {lo}..{hi} are outside bits ({8 * b.size} bits)")
    op.bits_in = <const uint8_t *>cnp.PyArray_DATA(b)
    with nogil:
        cd_run(&op, &ex)


def gen_bits(uint64_t seed, uint64_t stream, uint64_t T, uint64_t offset, bits_out, int64_t n,
             int nthreads, int64_t min_per_thread, int isa, int fmt=1):
    """bits_out[:(n + 7) // 8] = packed keep(offset + i) for i < n (LSB first), padding bits 0;
    keep from stream format fmt (1 or 2)."""
    if fmt != 1 and fmt != 2:
        raise ValueError(f"fmt must be 1 or 2, got {fmt}")
    cdef cd_key k = cd_make_key(seed, stream, T, fmt)
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    cdef uint8_t *out
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = <uint8_t *>cnp.PyArray_DATA(packed(bits_out, n, "bits_out"))
    with nogil:
        cd_gen_bits(&k, offset, out, n, &ex)


def bench_scale(cnp.ndarray y not None, double s, int nthreads, int64_t min_per_thread, int isa):
    """y *= s in place over a C-contiguous float array: the benchmark's memory floor (private)."""
    cdef void *p = cnp.PyArray_DATA(y)
    cdef int64_t n = cnp.PyArray_SIZE(y)
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    cdef int code = dtype_code(y)
    if code < 0 or not cnp.PyArray_IS_C_CONTIGUOUS(y) or not cnp.PyArray_ISWRITEABLE(y):
        raise TypeError("y must be a writable C-contiguous float16/32/64 array")
    with nogil:
        cd_scale(code, p, n, s, &ex)


def philox(cnp.ndarray counter, cnp.ndarray out, uint32_t k0, uint32_t k1, int rounds):
    """Philox4x32-R of every row of a C-contiguous (n, 4) uint32 array, into out."""
    cdef const uint32_t *c = <const uint32_t *>cnp.PyArray_DATA(counter)
    cdef uint32_t *o = <uint32_t *>cnp.PyArray_DATA(out)
    cdef int64_t n = cnp.PyArray_SIZE(counter) // 4
    cdef int64_t i
    cdef int j
    cdef cd_philox_ctr ctr
    with nogil:
        for i in range(n):
            for j in range(4):
                ctr.v[j] = c[4 * i + j]
            ctr = cd_philox4x32_R(rounds, ctr, k0, k1)
            for j in range(4):
                o[4 * i + j] = ctr.v[j]


def ars(cnp.ndarray counter, cnp.ndarray out, uint32_t k0, uint32_t k1, uint32_t k2, uint32_t k3, int rounds):
    """ARS-R (Random123's ars4x32_R) of every row of a C-contiguous (n, 4) uint32 array, into out
    (the same shape). rounds in [1, 10]."""
    cdef uint32_t key[4]
    if not (1 <= rounds <= 10):
        raise ValueError(f"rounds must be in [1, 10], got {rounds}")
    for a in (counter, out):
        if a.dtype != np.uint32 or not a.flags.c_contiguous or a.ndim < 1 or a.shape[a.ndim - 1] != 4:
            raise ValueError("counter and out must be C-contiguous uint32 arrays of shape (..., 4)")
    if cnp.PyArray_SIZE(out) != cnp.PyArray_SIZE(counter):
        raise ValueError("counter and out must have the same size")
    key[0] = k0
    key[1] = k1
    key[2] = k2
    key[3] = k3
    cdef const uint32_t *c = <const uint32_t *>cnp.PyArray_DATA(counter)
    cdef uint32_t *o = <uint32_t *>cnp.PyArray_DATA(out)
    cdef int64_t n = cnp.PyArray_SIZE(counter) // 4
    with nogil:
        cd_ars4x32(rounds, c, o, n, key)


def isa_for_format(int isa, int fmt):
    """The kernel set (CD_ISA_*) a call of stream format fmt runs on when isa is asked for."""
    return cd_isa_for_format(isa, fmt)


def best_isa():
    return cd_best_isa()


def isa_name(int isa):
    return cd_isa_name(isa).decode()


def have_openmp():
    return bool(cd_have_openmp())


def default_threads():
    return cd_default_threads()


def thread_limit():
    """The most threads any call runs on: a larger count is clamped to it."""
    return cd_thread_limit()


def last_threads():
    """Threads the last call made on this thread ran on (1: the calling thread alone)."""
    return cd_last_threads()
