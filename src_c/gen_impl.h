/* The SIMD gen driver (cd_gen_fn, cd_gen_rows_fn), shared by the SIMD kernel files.
 *
 * Included by kernels_avx2.c and kernels_avx512.c after their Philox rounds and src_c/ars_impl.h
 * (format v2's gen, ars_gen / ars_loop, which these functions hand v2 keys to), so it is compiled
 * with each file's ISA flags. Before including it, a file defines
 *   GEN_VEC       its vector type;
 *   GEN_BLOCKS    blocks per vector of 32-bit lanes (8 for AVX2, 16 for AVX-512);
 *   GEN_NP_MAX    the most vectors of blocks philox_blocks computes at once;
 *   GEN_NP_BIG    how many gen_loop's main step computes (measured best per ISA);
 *   GEN_NAME      the name of the cd_gen_fn to define;
 *   gen_ctx, gen_ctx_init(gen_ctx *, const cd_key *),
 *   philox_blocks(const gen_ctx *, uint64_t b, int NP, GEN_VEC w[4][GEN_NP_MAX], const char *pf, int PFL):
 *       the four Philox output words of blocks b .. b + NP * GEN_BLOCKS - 1 (block b + GEN_BLOCKS * p + l
 *       in lane l of w[i][p]), prefetching PFL cache lines from pf (NULL: none);
 *   keep_bytes(const gen_ctx *, const cd_key *, uint64_t b, GEN_VEC w0, w1, w2, w3, uint8_t *dst,
 *              int nlanes, int ties):
 *       the GEN_BLOCKS keep bytes of one vector of blocks into dst, ties resolved in its first
 *       nlanes bytes when `ties`. */
#ifndef CDROPOUT_GEN_IMPL_H
#define CDROPOUT_GEN_IMPL_H

#include <string.h>

/* NP * GEN_BLOCKS blocks at b, nout of whose keep bytes (all when nout >= NP * GEN_BLOCKS) go to out. */
static inline __attribute__((always_inline)) void gen_step_pf(const gen_ctx *c, const cd_key *key, uint64_t b,
                                                              uint8_t *out, int NP, int ties, int nout,
                                                              const char *pf, int PFL)
{
    GEN_VEC w[4][GEN_NP_MAX];
    philox_blocks(c, b, NP, w, pf, PFL);
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        uint8_t buf[GEN_BLOCKS];
        uint8_t *dst = nout < GEN_BLOCKS ? buf : out + GEN_BLOCKS * p;
        keep_bytes(c, key, b + GEN_BLOCKS * (uint64_t)p, w[0][p], w[1][p], w[2][p], w[3][p], dst,
                   nout < GEN_BLOCKS ? nout : GEN_BLOCKS, ties);
        if (nout < GEN_BLOCKS)
            memcpy(out, buf, (size_t)nout);
    }
}

static inline __attribute__((always_inline)) void gen_step(const gen_ctx *c, const cd_key *key, uint64_t b,
                                                           uint8_t *out, int NP, int ties, int nout)
{
    gen_step_pf(c, key, b, out, NP, ties, nout, NULL, 0);
}

static inline __attribute__((always_inline)) void gen_loop(const gen_ctx *c, const cd_key *key, uint64_t b0,
                                                           int64_t n, uint8_t *out, int ties)
{
    int64_t j = 0;
    for (; j + GEN_NP_BIG * GEN_BLOCKS <= n; j += GEN_NP_BIG * GEN_BLOCKS)
        gen_step(c, key, b0 + (uint64_t)j, out + j, GEN_NP_BIG, ties, GEN_NP_BIG * GEN_BLOCKS);
    for (; j + GEN_BLOCKS <= n; j += GEN_BLOCKS)
        gen_step(c, key, b0 + (uint64_t)j, out + j, 1, ties, GEN_BLOCKS);
    if (j < n)
        gen_step(c, key, b0 + (uint64_t)j, out + j, 1, ties, (int)(n - j));
}

/* cd_gen_fn (the driver handles keep-all and drop-all: key->mode is CD_MASK_PHILOX here) */
static void GEN_NAME(const cd_key *key, uint64_t b0, int64_t n, uint8_t *out)
{
    if (n <= 0)
        return;
    if (key->fmt == CD_FORMAT_V2) {
        ars_gen(key, b0, n, out);
        return;
    }
    gen_ctx c;
    gen_ctx_init(&c, key);
    if (key->tlo != 0)
        gen_loop(&c, key, b0, n, out, 1);
    else
        gen_loop(&c, key, b0, n, out, 0);
}

/* cd_gen_rows_fn: the key's round constants are set up once for all rows (LOOP: gen_loop or ars_loop
 * with its context). */
#define GEN_ROWS(LOOP, ctx)                                                                            \
    for (int64_t r = 0; r < nrows; r++) {                                                              \
        uint64_t m = m0 + (uint64_t)r * mstride, b = m >> 3;                                           \
        int64_t nb = (int64_t)(((m + (uint64_t)nbits - 1) >> 3) - b + 1);                              \
        if (ties)                                                                                      \
            LOOP(ctx, key, b, nb, out + r * ostride, 1);                                               \
        else                                                                                           \
            LOOP(ctx, key, b, nb, out + r * ostride, 0);                                               \
    }

static void gen_rows_simd(const cd_key *key, uint64_t m0, uint64_t mstride, int64_t nrows, int64_t nbits,
                          uint8_t *out, int64_t ostride)
{
    const int ties = key->tlo != 0;
    if (key->fmt == CD_FORMAT_V2) {
        ars_ctx a;
        ars_ctx_init(&a, key);
        GEN_ROWS(ars_loop, &a)
    } else {
        gen_ctx c;
        gen_ctx_init(&c, key);
        GEN_ROWS(gen_loop, &c)
    }
}
#undef GEN_ROWS

#endif
