/* The C entry points called by cdropout/_core.pyx. Plain C, no Python.h.
 * Arguments are validated by the Python layer; these functions trust them. */
#ifndef CDROPOUT_H
#define CDROPOUT_H

#include <stdint.h>
#include "kernels.h"

#define CD_MAX_DIMS 64

/* One elementwise pass over an n-d array: for every multi-index idx of `shape`,
 *   m = mbase + sum_k idx[k] * mstrides[k]      (mod 2^64; mstrides NULL = C order of shape)
 *   y[idx] = keep(m) ? x[idx] * scale : +0.0    (select, not multiply)
 * keep(m) comes from `key` (format v1), or, when key is NULL, from bit m of `bits_in` (LSB first;
 * the caller guarantees every m it reaches is below 8 * its size). Zero mask strides broadcast a
 * mask (noise_shape); a larger array's C-order strides plus the block origin's index address a
 * block of it. x and y share `shape`; their strides are in bytes, any sign; y may be x (same
 * pointer and strides). `bits_out` (key only, mstrides NULL) receives bit i = keep(mbase + i) of
 * every element i in C order, padding bits of the last byte 0. x == NULL (and y == NULL) writes
 * only bits_out. */
typedef struct {
    int dtype;
    int ndim;
    const int64_t *shape;
    const char *x;
    const int64_t *xstrides;
    char *y;
    const int64_t *ystrides;
    double scale;
    const cd_key *key;
    const uint8_t *bits_in;
    uint64_t mbase;
    const int64_t *mstrides;
    uint8_t *bits_out;
} cd_op;

/* Build the key of (seed, stream, T) in stream format fmt (CD_FORMAT_V1 or CD_FORMAT_V2),
 * T = round((1 - p) * 2^32) as in docs/stream-format.md. */
cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T, int fmt);

/* How a call runs: at most nthreads threads (<= 0: the OpenMP default, omp_get_max_threads()),
 * each given at least min_per_thread elements; isa is a CD_ISA_* value the machine supports
 * (see cd_best_isa). */
typedef struct {
    int nthreads;
    int64_t min_per_thread;
    int isa;
} cd_exec;

int cd_run(const cd_op *op, const cd_exec *ex);

/* out[0 .. (n + 7) / 8) = the packed keep bits of mask indices offset .. offset + n - 1 (bit i of
 * the array = keep(offset + i), LSB first), padding bits 0. */
void cd_gen_bits(const cd_key *key, uint64_t offset, uint8_t *out, int64_t n, const cd_exec *ex);

/* In-place y *= s over a contiguous array: the memory floor the benchmark compares with. */
void cd_scale(int dtype, void *y, int64_t n, double s, const cd_exec *ex);

/* The highest CD_ISA_* this CPU (and this build) supports. */
int cd_best_isa(void);
/* The kernel set a call of stream format fmt runs on when isa is asked for: format v2's SIMD
 * generators need VAES (AVX-512 set) or AES-NI (AVX2 set); without them the next lower set runs
 * (bitwise the same result). */
int cd_isa_for_format(int isa, int fmt);
const char *cd_isa_name(int isa);
int cd_have_openmp(void);
/* The default thread count of a call: omp_get_max_threads() (OMP_NUM_THREADS, threadpoolctl),
 * clamped as an explicit count is (see src_c/parallel_impl.h). */
int cd_default_threads(void);
/* The most threads any call runs on (an explicit or default count above it is clamped). */
int cd_thread_limit(void);
/* How many threads the last call made on the calling thread ran on (for tests and benchmarks). */
int cd_last_threads(void);

#endif
