# cython: boundscheck=False, wraparound=False, cdivision=True
"""Thin glue between the Python API and the C core: no argument checks (cdropout._api does
them once), one C call per operation, the GIL released while the C code runs."""
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

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

cdef extern from "philox.h" nogil:
    ctypedef struct cd_philox_ctr:
        uint32_t v[4]
    cd_philox_ctr cd_philox4x32_R(int rounds, cd_philox_ctr c, uint32_t k0, uint32_t k1)

MAX_DIMS = CD_MAX_DIMS


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
