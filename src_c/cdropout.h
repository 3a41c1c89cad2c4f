/* The C entry points called by cdropout/_core.pyx. Plain C, no Python.h.
 * Arguments are validated by the Python layer; these functions trust them. */
#ifndef CDROPOUT_H
#define CDROPOUT_H

#include <stdint.h>
#include "kernels.h"

#define CD_MAX_DIMS 64

/* One elementwise pass: y = mask ? x * scale : +0 over an n-d array in C order of `shape`.
 * The mask comes from `key` (element i has global index offset + i) or, when key is NULL,
 * from `bits_in` (packed, element i = bit i, LSB first). `bits_out`, with a key, receives
 * the packed mask of the whole array. x == NULL writes only bits_out. x and y share `shape`;
 * strides are in bytes; y may be x (same pointer and strides). */
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
    uint64_t offset;
    const uint8_t *bits_in;
    uint8_t *bits_out;
} cd_op;

/* Build the key of (seed, stream, T), T = round((1 - p) * 2^32) as in docs/stream-format.md. */
cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T);

/* How a call runs: at most nthreads threads (<= 0: the OpenMP default, omp_get_max_threads()),
 * each given at least min_per_thread elements; isa is a CD_ISA_* value the machine supports
 * (see cd_best_isa). */
typedef struct {
    int nthreads;
    int64_t min_per_thread;
    int isa;
} cd_exec;

int cd_run(const cd_op *op, const cd_exec *ex);

/* In-place y *= s over a contiguous array: the memory floor the benchmark compares with. */
void cd_scale(int dtype, void *y, int64_t n, double s, const cd_exec *ex);

/* The highest CD_ISA_* this CPU (and this build) supports. */
int cd_best_isa(void);
const char *cd_isa_name(int isa);
int cd_have_openmp(void);
/* The default thread count of a call: omp_get_max_threads() (OMP_NUM_THREADS, threadpoolctl),
 * clamped as an explicit count is (see src_c/parallel_impl.h). */
int cd_default_threads(void);
/* How many threads the last call made on the calling thread ran on (for tests and benchmarks). */
int cd_last_threads(void);

#endif
