/* Format v2's SIMD gen (ARS-7, docs/stream-format.md), shared by the SIMD kernel files.
 *
 * Included by kernels_avx2.c (AES-NI, one block per xmm) and kernels_avx512.c (VAES, four blocks per
 * zmm), so it is compiled with each file's ISA flags. A block's 128-bit ARS output holds its eight
 * 16-bit halves in element order, so one unsigned 16-bit compare with Thi gives the block's keep
 * byte directly (bit h = half h), and a vector of ARS_BLOCKS blocks gives ARS_BLOCKS consecutive keep
 * bytes. Ties (u == Thi, when Tlo != 0) go to the scalar side path, cd_block_byte_ties.
 *
 * Before including it, a file defines
 *   ARS_VEC                  its vector type;
 *   ARS_BLOCKS               blocks per vector (4 or 1);
 *   ARS_NV                   vectors in flight per main step (the AES latency is hidden by them);
 *   ARS_BCAST(lo, hi)        a vector with the 128-bit value hi:lo in every 128-bit lane;
 *   ARS_COUNTERS(stream)     the counters of blocks 0 .. ARS_BLOCKS - 1 of the stream;
 *   ARS_ADD_BLOCK(v, b)      v with b added to the block index (low 64 bits) of every lane;
 *   ARS_XOR, ARS_ENC, ARS_ENCLAST   xor, AESENC and AESENCLAST of every lane;
 *   ARS_THI(thi)             Thi prepared for ARS_CMP;
 *   ARS_CMP(t, v, lt, eq)    the bits u < Thi and u == Thi (uint32_t, 8 per block, block 0 lowest). */
#ifndef CDROPOUT_ARS_IMPL_H
#define CDROPOUT_ARS_IMPL_H

#include <stdint.h>
#include <string.h>

typedef struct {
    ARS_VEC rk[CD_ARS_ROUNDS + 1]; /* K, K + W, ..., K + 7 W in every lane */
    ARS_VEC ctr0;                  /* counters of blocks 0 .. ARS_BLOCKS - 1 */
    ARS_VEC thi;
} ars_ctx;

static inline void ars_ctx_init(ars_ctx *a, const cd_key *key)
{
    uint64_t lo = (uint64_t)key->k0 | (uint64_t)key->k1 << 32, hi = 0;
    for (int r = 0; r <= CD_ARS_ROUNDS; r++) {
        a->rk[r] = ARS_BCAST(lo, hi);
        lo += CD_ARS_W0;
        hi += CD_ARS_W1;
    }
    a->ctr0 = ARS_COUNTERS((uint64_t)key->s0 | (uint64_t)key->s1 << 32);
    a->thi = ARS_THI(key->thi);
}

/* NV vectors of blocks from b: the keep bytes of blocks b .. b + NV * ARS_BLOCKS - 1, of which the
 * first nout go to out. */
static inline __attribute__((always_inline)) void ars_step(const ars_ctx *a, const cd_key *key, uint64_t b,
                                                           uint8_t *out, int NV, int ties, int nout)
{
    ARS_VEC v[ARS_NV];
#pragma GCC unroll 16
    for (int i = 0; i < NV; i++)
        v[i] = ARS_XOR(ARS_ADD_BLOCK(a->ctr0, b + (uint64_t)(ARS_BLOCKS * i)), a->rk[0]);
#pragma GCC unroll 8
    for (int r = 1; r < CD_ARS_ROUNDS; r++) {
#pragma GCC unroll 16
        for (int i = 0; i < NV; i++)
            v[i] = ARS_ENC(v[i], a->rk[r]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NV; i++) {
        v[i] = ARS_ENCLAST(v[i], a->rk[CD_ARS_ROUNDS]);
        uint32_t lt, eq;
        ARS_CMP(a->thi, v[i], lt, eq);
        const int base = ARS_BLOCKS * i;
        if (nout >= base + ARS_BLOCKS) {
            memcpy(out + base, &lt, ARS_BLOCKS);
        } else {
            for (int k = 0; base + k < nout; k++)
                out[base + k] = (uint8_t)(lt >> (8 * k));
        }
        if (ties && __builtin_expect(eq != 0, 0)) {
            for (int k = 0; k < ARS_BLOCKS && base + k < nout; k++)
                if ((eq >> (8 * k)) & 0xffu)
                    out[base + k] = cd_block_byte_ties(key, b + (uint64_t)(base + k), out[base + k],
                                                       (uint8_t)(eq >> (8 * k)));
        }
    }
}

static inline __attribute__((always_inline)) void ars_loop(const ars_ctx *a, const cd_key *key, uint64_t b0,
                                                           int64_t n, uint8_t *out, int ties)
{
    int64_t j = 0;
    for (; j + ARS_NV * ARS_BLOCKS <= n; j += ARS_NV * ARS_BLOCKS)
        ars_step(a, key, b0 + (uint64_t)j, out + j, ARS_NV, ties, ARS_NV * ARS_BLOCKS);
    for (; j + ARS_BLOCKS <= n; j += ARS_BLOCKS)
        ars_step(a, key, b0 + (uint64_t)j, out + j, 1, ties, ARS_BLOCKS);
    if (j < n)
        ars_step(a, key, b0 + (uint64_t)j, out + j, 1, ties, (int)(n - j));
}

/* cd_gen_fn of format v2 */
static void ars_gen(const cd_key *key, uint64_t b0, int64_t n, uint8_t *out)
{
    if (n <= 0)
        return;
    ars_ctx a;
    ars_ctx_init(&a, key);
    if (key->tlo != 0)
        ars_loop(&a, key, b0, n, out, 1);
    else
        ars_loop(&a, key, b0, n, out, 0);
}

#endif
