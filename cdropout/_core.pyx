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
        uint64_t offset
        const uint8_t *bits_in
        uint8_t *bits_out
    ctypedef struct cd_exec:
        int nthreads
        int64_t min_per_thread
        int isa
    int CD_MAX_DIMS
    cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T)
    int cd_run(const cd_op *op, const cd_exec *ex)
    void cd_scale(int dtype, void *y, int64_t n, double s, const cd_exec *ex)
    int cd_best_isa()
    const char *cd_isa_name(int isa)
    int cd_have_openmp()
    int cd_default_threads()
    int cd_last_threads()

cdef extern from "philox.h" nogil:
    ctypedef struct cd_philox_ctr:
        uint32_t v[4]
    cd_philox_ctr cd_philox4x32_R(int rounds, cd_philox_ctr c, uint32_t k0, uint32_t k1)

MAX_DIMS = CD_MAX_DIMS


def operand(x, str name):
    """(array, dtype code) of an array_like of float16/32/64: 0, 1, 2 as in src_c/kernels.h.

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
    if code < 0:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, not {a.dtype}")
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


def run(int dtype, cnp.ndarray x, cnp.ndarray y, double scale, key, uint64_t offset,
        cnp.ndarray bits_in, cnp.ndarray bits_out, int nthreads, int64_t min_per_thread, int isa,
        shape=None):
    """One elementwise pass (see cd_op in src_c/cdropout.h).

    x, y: arrays of one shape, or x and y None with `shape` given (bits only). key: None (mask
    from bits_in) or (seed, stream, T). bits_in/bits_out: C-contiguous uint8 arrays or None.
    """
    cdef cd_op op
    cdef cd_key k
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    cdef int64_t dims[64]
    cdef int64_t xs[64]
    cdef int64_t ys[64]
    cdef int d, nd
    cdef cnp.ndarray ref = y if y is not None else x
    if ref is not None:
        nd = cnp.PyArray_NDIM(ref)
        for d in range(nd):
            dims[d] = cnp.PyArray_DIM(ref, d)
            ys[d] = cnp.PyArray_STRIDE(y, d) if y is not None else 0
            xs[d] = cnp.PyArray_STRIDE(x, d) if x is not None else 0
    else:
        nd = len(shape)
        for d in range(nd):
            dims[d] = shape[d]
            xs[d] = ys[d] = 0
    op.dtype = dtype
    op.ndim = nd
    op.shape = dims
    op.x = <const char *>cnp.PyArray_DATA(x) if x is not None else NULL
    op.xstrides = xs
    op.y = <char *>cnp.PyArray_DATA(y) if y is not None else NULL
    op.ystrides = ys
    op.scale = scale
    op.offset = offset
    op.bits_in = <const uint8_t *>cnp.PyArray_DATA(bits_in) if bits_in is not None else NULL
    op.bits_out = <uint8_t *>cnp.PyArray_DATA(bits_out) if bits_out is not None else NULL
    if key is None:
        op.key = NULL
    else:
        k = cd_make_key(key[0], key[1], key[2])
        op.key = &k
    with nogil:
        cd_run(&op, &ex)


def scale_inplace(int dtype, cnp.ndarray y, double s, int nthreads, int64_t min_per_thread, int isa):
    """y *= s over a C-contiguous array (the benchmark's memory floor)."""
    cdef void *p = cnp.PyArray_DATA(y)
    cdef int64_t n = cnp.PyArray_SIZE(y)
    cdef cd_exec ex = cd_exec(nthreads, min_per_thread, isa)
    with nogil:
        cd_scale(dtype, p, n, s, &ex)


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


def best_isa():
    return cd_best_isa()


def isa_name(int isa):
    return cd_isa_name(isa).decode()


def have_openmp():
    return bool(cd_have_openmp())


def default_threads():
    return cd_default_threads()


def last_threads():
    """Threads the last call made on this thread ran on (1: the calling thread alone)."""
    return cd_last_threads()
