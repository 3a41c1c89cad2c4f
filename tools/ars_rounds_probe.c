/* How many ARS rounds cost what: a tight AVX-512 + VAES loop that applies an ARS-R mask in place
 * (16-bit halves compared with Thi, the tie compare live, keep bits applied straight from the
 * compare), against a tight in-place x *= c over the same array. Not part of the package: the
 * measurement behind format v2's choice of 7 rounds (BENCHMARKS.md, "Stream format v2").
 *
 *   gcc -O2 -mavx512f -mavx512bw -mvaes -DROUNDS=7 tools/ars_rounds_probe.c -o probe && ./probe 65536
 *
 * Prints ns per element of both loops (minimum of 7 interleaved rounds) and their ratio. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef ROUNDS
#define ROUNDS 7
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((noinline, noclone)) void scale(float *x, long n, float s)
{
    const __m512 v = _mm512_set1_ps(s);
    for (long j = 0; j < n; j += 16)
        _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), v));
}

static long ties;

__attribute__((noinline, noclone)) void drop(float *x, long n, float s, uint64_t seed, uint64_t b0, uint16_t thi)
{
    const __m512 v = _mm512_set1_ps(s);
    const __m512i w = _mm512_set_epi64(0xBB67AE8584CAA73BLL, 0x9E3779B97F4A7C15LL, 0xBB67AE8584CAA73BLL,
                                       0x9E3779B97F4A7C15LL, 0xBB67AE8584CAA73BLL, 0x9E3779B97F4A7C15LL,
                                       0xBB67AE8584CAA73BLL, 0x9E3779B97F4A7C15LL);
    __m512i k[ROUNDS + 1];
    k[0] = _mm512_set_epi64(0, (long long)seed, 0, (long long)seed, 0, (long long)seed, 0, (long long)seed);
    for (int r = 1; r <= ROUNDS; r++)
        k[r] = _mm512_add_epi64(k[r - 1], w);
    const __m512i t = _mm512_set1_epi16((short)thi), four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    __m512i ctr = _mm512_set_epi64(0, (long long)b0 + 3, 0, (long long)b0 + 2, 0, (long long)b0 + 1, 0, (long long)b0);
    long tie = 0;
    for (long j = 0; j < n; j += 64) {
        __m512i c0 = ctr, c1 = _mm512_add_epi64(ctr, four);
        ctr = _mm512_add_epi64(c1, four);
        __m512i a = _mm512_xor_si512(c0, k[0]), b = _mm512_xor_si512(c1, k[0]);
        for (int r = 1; r < ROUNDS; r++) {
            a = _mm512_aesenc_epi128(a, k[r]);
            b = _mm512_aesenc_epi128(b, k[r]);
        }
        a = _mm512_aesenclast_epi128(a, k[ROUNDS]);
        b = _mm512_aesenclast_epi128(b, k[ROUNDS]);
        const __mmask32 ma = _mm512_cmplt_epu16_mask(a, t), mb = _mm512_cmplt_epu16_mask(b, t);
        if (__builtin_expect((_mm512_cmpeq_epu16_mask(a, t) | _mm512_cmpeq_epu16_mask(b, t)) != 0, 0))
            tie++;
        _mm512_storeu_ps(x + j, _mm512_maskz_mul_ps((__mmask16)ma, _mm512_loadu_ps(x + j), v));
        _mm512_storeu_ps(x + j + 16, _mm512_maskz_mul_ps((__mmask16)(ma >> 16), _mm512_loadu_ps(x + j + 16), v));
        _mm512_storeu_ps(x + j + 32, _mm512_maskz_mul_ps((__mmask16)mb, _mm512_loadu_ps(x + j + 32), v));
        _mm512_storeu_ps(x + j + 48, _mm512_maskz_mul_ps((__mmask16)(mb >> 16), _mm512_loadu_ps(x + j + 48), v));
    }
    ties += tie;
}

int main(int argc, char **argv)
{
    const long n = argc > 1 ? atol(argv[1]) : 65536; /* a multiple of 64 */
    float *x = aligned_alloc(64, (size_t)n * 4);
    for (long i = 0; i < n; i++)
        x[i] = 1.0f;
    volatile float one = 1.0f;
    const int reps = (int)(2e8 / (double)n) + 1;
    double bs = 1e9, bd = 1e9;
    for (int t = 0; t < 7; t++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            scale(x, n, one);
        double t1 = now();
        for (int r = 0; r < reps; r++)
            drop(x, n, one, 12345, (uint64_t)r * 1000000u, 0xE666); /* p = 0.1: ties live */
        double t2 = now();
        bs = t1 - t0 < bs ? t1 - t0 : bs;
        bd = t2 - t1 < bd ? t2 - t1 : bd;
    }
    printf("ARS-%d, %ld float32: x *= c %.4f ns/element, ARS-%d dropout %.4f ns/element, ratio %.2f (%ld tie groups)\n",
           ROUNDS, n, bs / reps / n * 1e9, ROUNDS, bd / reps / n * 1e9, bd / bs, ties);
    free(x);
    return 0;
}
