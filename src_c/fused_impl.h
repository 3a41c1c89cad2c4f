/* The fused forward kernels (cd_fused_fn in kernels.h), shared by the SIMD kernel files.
 *
 * Included at the end of kernels_avx2.c and kernels_avx512.c, so it is compiled with each file's
 * ISA flags. Before including it, a file defines its gen_ctx, gen_ctx_init, gen_loop, its apply_f16/
 * f32/f64/bf16, and
 *   fused_gen_chunk(gen_ctx *c, const cd_key *key, uint64_t b, uint8_t *bytes, int ties,
 *                   const char *pf, size_t es)
 * which writes the keep bytes of the 64 blocks b .. b + 63 and prefetches the 512 elements of
 * element size es at pf (NULL: none) while its Philox rounds run.
 *
 * In chunks of 64 blocks (512 elements): gen into a 64-byte buffer, then apply. The input
 * PF_AHEAD chunks later is prefetched during the arithmetic, so the memory system stays busy. Out
 * of cache (128 Mi float32, one thread) this took the time from 1.8x to about 1.2x the x *= s
 * floor; the distance (1..6 chunks) made no measurable difference. */
#ifndef CDROPOUT_FUSED_IMPL_H
#define CDROPOUT_FUSED_IMPL_H

#include <string.h>

#define FUSED_CHUNK 512
#ifndef PF_AHEAD
#define PF_AHEAD 3
#endif

typedef void (*apply_fn)(const void *, void *, int64_t, const uint8_t *, int, double);

static inline __attribute__((always_inline)) void fused_body(const cd_key *key, uint64_t e0, const char *x,
                                                             char *y, int64_t n, double s, uint8_t *bits_out,
                                                             size_t es, apply_fn apply, int ties)
{
    gen_ctx c;
    gen_ctx_init(&c, key);
    uint8_t buf[64];
    int ph = (int)(e0 & 7);
    uint64_t b = e0 >> 3;
    const uint64_t bfirst = b;
    const int64_t ahead = PF_AHEAD * FUSED_CHUNK;
    for (int64_t j = 0; j < n;) {
        int64_t cnt = FUSED_CHUNK - ph;
        if (cnt > n - j)
            cnt = n - j;
        int64_t nb = (ph + cnt + 7) >> 3;
        uint8_t *bytes = bits_out != NULL ? bits_out + (b - bfirst) : buf;
        if (nb == 64) {
            /* prefetch only inside [0, n) */
            const char *pf = j + ahead + FUSED_CHUNK <= n ? x + (size_t)(j + ahead) * es : NULL;
            fused_gen_chunk(&c, key, b, bytes, ties, pf, es);
        } else {
            gen_loop(&c, key, b, nb, bytes, ties);
        }
        apply(x + (size_t)j * es, y + (size_t)j * es, cnt, bytes, ph, s);
        j += cnt;
        b += (uint64_t)nb;
        ph = 0;
    }
}

static inline __attribute__((always_inline)) void fused(const cd_key *key, uint64_t e0, const void *xv, void *yv,
                                                        int64_t n, double s, uint8_t *bits_out, size_t es,
                                                        apply_fn apply)
{
    const char *x = (const char *)xv;
    char *y = (char *)yv;
    if (n <= 0)
        return;
    if (key->tlo != 0)
        fused_body(key, e0, x, y, n, s, bits_out, es, apply, 1);
    else
        fused_body(key, e0, x, y, n, s, bits_out, es, apply, 0);
}

static void fused_f16(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 2, apply_f16);
}

static void fused_f32(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 4, apply_f32);
}

static void fused_f64(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 8, apply_f64);
}

static void fused_bf16(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                       uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 2, apply_bf16);
}

#endif
