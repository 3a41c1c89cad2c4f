/* A/B of the AVX-512 fused forward kernels of two source trees, out of cache (float32).
 * Built and run by tools/fused_ab.sh; not part of the package.
 *
 * Every round times, interleaved: the in-place x *= c floor, then for each kernel set A and B the
 * fused pass in place, in place writing the bit mask, and out of place into a second array. The
 * minimum over rounds is kept. One thread: CPU time of the thread (not inflated by preemption on
 * a shared machine); more threads: wall time, each thread on its own 1024-aligned part. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdropout.h"
#include "kernels.h"

extern const cd_kernels AB_A, AB_B;
static const cd_kernels *set[2] = {&AB_A, &AB_B};
static int cpu_clock;

static double now(void)
{
    struct timespec t;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PARTS(stmt)                                                                                \
    do {                                                                                           \
        _Pragma("omp parallel num_threads(nt)")                                                    \
        {                                                                                          \
            int64_t T_ = omp_get_num_threads(), t_ = omp_get_thread_num();                         \
            int64_t lo = n / 1024 * t_ / T_ * 1024, hi = t_ == T_ - 1 ? n : n / 1024 * (t_ + 1) / T_ * 1024; \
            stmt;                                                                                  \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : (int64_t)64 << 20;
    int rounds = argc > 2 ? atoi(argv[2]) : 8, nt = argc > 3 ? atoi(argv[3]) : 1;
    cpu_clock = nt == 1;
    float *x = aligned_alloc(64, (size_t)n * 4), *y = aligned_alloc(64, (size_t)n * 4);
    uint8_t *bits = aligned_alloc(64, (size_t)n / 8 + 64);
    for (int64_t i = 0; i < n; i++)
        x[i] = y[i] = 1.0f;
    cd_key k = cd_make_key(1, 2, (uint64_t)1 << 31, CD_FORMAT_V1);
    double floor_ = 1e30, best[2][3];
    for (int v = 0; v < 2; v++)
        for (int c = 0; c < 3; c++)
            best[v][c] = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        PARTS(set[0]->scale[CD_F32](x + lo, hi - lo, 1.0));
        double t = now() - t0;
        floor_ = t < floor_ ? t : floor_;
        for (int v = 0; v < 2; v++)
            for (int c = 0; c < 3; c++) {
                cd_fused_fn f = set[v]->fused[CD_F32];
                t0 = now();
                PARTS(f(&k, (uint64_t)lo, x + lo, (c == 2 ? y : x) + lo, hi - lo, 1.0, c == 1 ? bits + lo / 8 : NULL));
                t = now() - t0;
                best[v][c] = t < best[v][c] ? t : best[v][c];
            }
    }
    printf("%lld float32, %d thread(s), %s, min of %d rounds: floor %.2f ms\n", (long long)n, nt,
           cpu_clock ? "CPU time" : "wall time", rounds, 1e3 * floor_);
    const char *name[3] = {"in place", "in place + bits", "out of place"};
    for (int c = 0; c < 3; c++)
        printf("  %-16s A %.3fx  B %.3fx  (of the floor)\n", name[c], best[0][c] / floor_, best[1][c] / floor_);
    return 0;
}
