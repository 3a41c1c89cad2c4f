/* AVX-512 (F/BW/DQ/VL) + F16C kernel set. Compiled with
 *   -mavx512f -mavx512bw -mavx512dq -mavx512vl -mf16c -mbmi2 -maes -mvaes
 * and called only when the CPU has those (VAES only for format v2). Bitwise equal to kernels_portable.c.
 *
 * gen: Philox4x32-10 on 8 blocks per zmm, one block per 64-bit lane with its 32-bit counter word in
 * the low half of the lane. _mm512_mul_epu32 then gives the full 64-bit product of each lane in one
 * instruction (hi = product >> 32, lo = the low half, the high half of the lane is don't-care since
 * mul_epu32 ignores it), so a round is 2 multiplies, 2 shifts and 2 ternary XORs per 8 blocks with no
 * blends. Two zmm (even and odd blocks) are packed into one vector of 16 blocks (one per 32-bit lane)
 * for the threshold compare, which is done on 16-bit halves directly (_mm512_cmplt_epu16_mask gives
 * both halves of a word at once; BMI2 pdep turns the masks into keep bytes). Ties (u == Thi) go to the
 * scalar side path only when Tlo != 0.
 *
 * gen of format v2 (ARS-7): VAES rounds on four blocks per zmm (src_c/ars_impl.h); without VAES the
 * driver runs format v2 on the AVX2 set (cd_isa_for_format).
 *
 * apply: masked multiplies, the __mmask16 / __mmask8 read straight from the bit bytes once the bit
 * phase is at a byte boundary; head and tail with masked loads and stores (never touching memory
 * outside [0, n)). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "philox.h"

#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1 /* the fused kernels' prefetch: to L2 measured best */
#endif

/* ------------------------------------------------------------------------------------------ */
/* gen */

typedef struct {
    __m512i k0[10], k1[10];  /* round keys in every dword */
    __m512i r0c0;            /* round 1: hi(M1 * s0) ^ k0, xored into the counter's word 1 */
    __m512i r0c2;            /* round 1: s1 ^ k1 */
    __m512i r1c1;            /* round 1's new word 1 = lo(M1 * s0) (same for all blocks) ^ round 2 key k0 */
    __m512i thi16;           /* Thi in every 16-bit lane */
    __m512i lane[8];         /* block offsets of group g (64-bit lanes), see philox_blocks */
    __m512i m0lane[8];       /* M0 * lane[g] (64-bit products) */
    uint32_t r0c0s;          /* r0c0 as a scalar */
} gen_ctx;

static void gen_ctx_init(gen_ctx *c, const cd_key *key)
{
    uint32_t k0 = key->k0, k1 = key->k1;
    for (int r = 0; r < 10; r++) {
        c->k0[r] = _mm512_set1_epi32((int)k0);
        c->k1[r] = _mm512_set1_epi32((int)k1);
        k0 += CD_PHILOX_W0;
        k1 += CD_PHILOX_W1;
    }
    uint64_t p1 = (uint64_t)CD_PHILOX_M1 * key->s0;
    c->r0c0s = ((uint32_t)(p1 >> 32)) ^ key->k0;
    c->r0c0 = _mm512_set1_epi64((long long)c->r0c0s);
    c->r0c2 = _mm512_set1_epi64((long long)(key->s1 ^ key->k1));
    c->r1c1 = _mm512_set1_epi64((long long)((uint32_t)p1 ^ (uint32_t)(key->k0 + CD_PHILOX_W0)));
    c->thi16 = _mm512_set1_epi16((short)key->thi);
    /* group 2p holds the even blocks of the p-th 16 of a step, group 2p + 1 the odd ones */
    for (int g = 0; g < 8; g++) {
        const long long o = 16 * (g >> 1) + (g & 1);
        c->lane[g] = _mm512_setr_epi64(o, o + 2, o + 4, o + 6, o + 8, o + 10, o + 12, o + 14);
        c->m0lane[g] = _mm512_mul_epu32(c->lane[g], _mm512_set1_epi64(CD_PHILOX_M0));
    }
}

#define XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
/* hi dword of each 64-bit product to the low half (a shuffle instead would do as well: measured equal) */
#define HI(p) _mm512_srli_epi64((p), 32)

/* Round r (0-based, r >= 2) of the NG groups, the general form. */
#define ROUND(r)                                                                                        \
    do {                                                                                                \
        const __m512i k0_ = c->k0[r], k1_ = c->k1[r];                                                   \
        PREFETCH_ROUND(r);                                                                              \
        _Pragma("GCC unroll 8") for (int g = 0; g < NG; g++)                                           \
        {                                                                                               \
            __m512i p0 = _mm512_mul_epu32(c0[g], M0);                                                   \
            __m512i p1 = _mm512_mul_epu32(c2[g], M1);                                                   \
            c0[g] = XOR3(HI(p1), c1[g], k0_);                                                           \
            c1[g] = p1;                                                                                 \
            c2[g] = XOR3(HI(p0), c3[g], k1_);                                                           \
            c3[g] = p0;                                                                                 \
        }                                                                                               \
    } while (0)

/* pf, when not NULL: PFL cache lines from pf on are prefetched (to L2), spread over rounds 3..10 so
 * that memory requests stay in flight while the multipliers work (the fused kernels). */
#define PREFETCH_ROUND(r)                                                                               \
    do {                                                                                                \
        if (PFL > 0 && pf != NULL)                                                                      \
            _Pragma("GCC unroll 16") for (int q = ((r) - 2) * PFL / 8; q < ((r) - 1) * PFL / 8; q++)   \
                _mm_prefetch(pf + 64 * q, PF_HINT);                                                     \
    } while (0)

/* NP * 16 blocks starting at b: the four output words of block b + 16 * p + l in lane l of w[i][p].
 *
 * Usually counter words 1..3 (b >> 32 and the stream) are the same in every lane of a step; then
 * rounds 1 and 2 are mostly scalar: after round 1, word 0 (hi(M1 * s0) ^ (b >> 32) ^ k0) and word 1
 * (lo(M1 * s0)) are the same for all blocks, so round 2's M0 product is one scalar multiply, and
 * round 1's M0 * (b + l) is M0 * b (scalar) + M0 * l (a constant): one 64-bit add. This saves 6 of
 * about 65 vector operations per 8 blocks. A step whose low counter words wrap past 2^32 takes the
 * general path. */
static inline __attribute__((always_inline)) void philox_blocks(const gen_ctx *c, uint64_t b, int NP,
                                                                __m512i w[4][4], const char *pf, int PFL)
{
    const __m512i M0 = _mm512_set1_epi64(CD_PHILOX_M0), M1 = _mm512_set1_epi64(CD_PHILOX_M1);
    __m512i c0[8], c1[8], c2[8], c3[8];
    const int NG = 2 * NP;
    if (__builtin_expect((uint32_t)b <= 0xffffffffu - (uint32_t)(16 * NP - 1), 1)) {
        /* round 1 */
        const __m512i pb = _mm512_set1_epi64((long long)((uint64_t)CD_PHILOX_M0 * (uint32_t)b));
#pragma GCC unroll 8
        for (int g = 0; g < NG; g++) {
            __m512i p0 = _mm512_add_epi64(pb, c->m0lane[g]); /* M0 * (b + lane), b + lane < 2^32 */
            c2[g] = _mm512_xor_si512(HI(p0), c->r0c2);
            c3[g] = p0;
        }
        /* round 2: word 0 = w0 (scalar), word 1 = lo(M1 * s0) for every block */
        const uint32_t w0 = c->r0c0s ^ (uint32_t)(b >> 32);
        const uint64_t q0 = (uint64_t)CD_PHILOX_M0 * w0;
        const __m512i x2 = _mm512_set1_epi64((long long)((uint32_t)(q0 >> 32)));
#pragma GCC unroll 8
        for (int g = 0; g < NG; g++) {
            __m512i p1 = _mm512_mul_epu32(c2[g], M1);
            c0[g] = _mm512_xor_si512(HI(p1), c->r1c1);
            c1[g] = p1;
            c2[g] = XOR3(c3[g], x2, c->k1[1]);
        }
        /* round 3: word 3 = lo(q0) for every block */
        {
            const __m512i k0_ = c->k0[2];
            const __m512i x3 = _mm512_xor_si512(_mm512_set1_epi64((long long)(uint32_t)q0), c->k1[2]);
            PREFETCH_ROUND(2);
#pragma GCC unroll 8
            for (int g = 0; g < NG; g++) {
                __m512i p0 = _mm512_mul_epu32(c0[g], M0);
                __m512i p1 = _mm512_mul_epu32(c2[g], M1);
                c0[g] = XOR3(HI(p1), c1[g], k0_);
                c1[g] = p1;
                c2[g] = _mm512_xor_si512(HI(p0), x3);
                c3[g] = p0;
            }
        }
    } else {
        const __m512i base = _mm512_set1_epi64((long long)b);
        /* round 1: counter words 2, 3 are the constant stream words */
#pragma GCC unroll 8
        for (int g = 0; g < NG; g++) {
            __m512i ctr = _mm512_add_epi64(base, c->lane[g]);
            __m512i p0 = _mm512_mul_epu32(ctr, M0);
            c0[g] = _mm512_xor_si512(_mm512_srli_epi64(ctr, 32), c->r0c0);
            c2[g] = _mm512_xor_si512(HI(p0), c->r0c2);
            c3[g] = p0;
        }
        /* round 2: word 1 is the same constant for every block */
#pragma GCC unroll 8
        for (int g = 0; g < NG; g++) {
            __m512i p0 = _mm512_mul_epu32(c0[g], M0);
            __m512i p1 = _mm512_mul_epu32(c2[g], M1);
            c0[g] = _mm512_xor_si512(HI(p1), c->r1c1);
            c1[g] = p1;
            c2[g] = XOR3(HI(p0), c3[g], c->k1[1]);
            c3[g] = p0;
        }
        ROUND(2);
    }
    ROUND(3);
    ROUND(4);
    ROUND(5);
    ROUND(6);
    ROUND(7);
    ROUND(8);
    /* round 10, packing the even (A) and odd (B) groups of each 16 into one vector on the way: lane
     * 2k <- A's qword k, lane 2k + 1 <- B's qword k. LO takes the low dwords (A's in place, B's moved
     * up), HIP the high dwords (A's moved down, B's in place), so the hi-extracting shifts of this
     * round become the packing shuffles. The keys are in both dwords of their qword. */
#define LO(a, b) _mm512_mask_shuffle_epi32((a), 0xAAAA, (b), _MM_PERM_CCAA)
#define HIP(a, b) _mm512_mask_shuffle_epi32((b), 0x5555, (a), _MM_PERM_DDBB)
    PREFETCH_ROUND(9);
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        const int A = 2 * p, B = 2 * p + 1;
        __m512i p0a = _mm512_mul_epu32(c0[A], M0), p0b = _mm512_mul_epu32(c0[B], M0);
        __m512i p1a = _mm512_mul_epu32(c2[A], M1), p1b = _mm512_mul_epu32(c2[B], M1);
        w[0][p] = XOR3(HIP(p1a, p1b), LO(c1[A], c1[B]), c->k0[9]);
        w[1][p] = LO(p1a, p1b);
        w[2][p] = XOR3(HIP(p0a, p0b), LO(c3[A], c3[B]), c->k1[9]);
        w[3][p] = LO(p0a, p0b);
    }
#undef LO
#undef HIP
}

/* Keep bytes (ignoring ties) of 16 blocks (block l in 32-bit lane l of each word) to dst[0..16).
 * The 16-bit compare of word i gives bit 2l (half 2i of block l) and bit 2l + 1 (half 2i + 1); pdep
 * spreads those bit pairs to bits 2i, 2i + 1 of byte l. Done in general registers (kmov + BMI2, fast on
 * every AVX-512 CPU) this measured 6% faster than assembling the bytes in zmm (masked adds + vpmovdb):
 * the vector ports are the bottleneck of the Philox rounds. */
static inline __attribute__((always_inline)) void lt_bytes(const gen_ctx *c, __m512i w0, __m512i w1, __m512i w2,
                                                           __m512i w3, uint8_t *dst)
{
    const uint32_t m0 = _cvtmask32_u32(_mm512_cmplt_epu16_mask(w0, c->thi16));
    const uint32_t m1 = _cvtmask32_u32(_mm512_cmplt_epu16_mask(w1, c->thi16));
    const uint32_t m2 = _cvtmask32_u32(_mm512_cmplt_epu16_mask(w2, c->thi16));
    const uint32_t m3 = _cvtmask32_u32(_mm512_cmplt_epu16_mask(w3, c->thi16));
    const uint64_t s0 = 0x0303030303030303ull, s1 = s0 << 2, s2 = s0 << 4, s3 = s0 << 6;
    uint64_t lo = _pdep_u64(m0, s0) | _pdep_u64(m1, s1) | _pdep_u64(m2, s2) | _pdep_u64(m3, s3);
    uint64_t hi = _pdep_u64(m0 >> 16, s0) | _pdep_u64(m1 >> 16, s1) | _pdep_u64(m2 >> 16, s2) | _pdep_u64(m3 >> 16, s3);
    memcpy(dst, &lo, 8);
    memcpy(dst + 8, &hi, 8);
}

/* Rare path: some half of these 16 blocks equals Thi and Tlo != 0. out[0..nlanes) already hold the
 * lt bytes. */
static __attribute__((noinline)) void fix_ties(const cd_key *key, uint64_t b, uint8_t *out, int nlanes,
                                               __mmask32 e0, __mmask32 e1, __mmask32 e2, __mmask32 e3)
{
    for (int l = 0; l < nlanes; l++) {
        unsigned eq = ((e0 >> (2 * l)) & 3u) | (((e1 >> (2 * l)) & 3u) << 2) | (((e2 >> (2 * l)) & 3u) << 4) |
                      (((e3 >> (2 * l)) & 3u) << 6);
        if (eq)
            out[l] = cd_block_byte_ties(key, b + (uint64_t)l, out[l], (uint8_t)eq);
    }
}

/* NP * 16 blocks at b -> out (only the first nout bytes stored when nout < 16 * NP, via a buffer). */
/* One vector of 16 blocks: keep bytes (ties resolved when `ties`) into dst[0 .. 16). */
static inline __attribute__((always_inline)) void keep_bytes(const gen_ctx *c, const cd_key *key, uint64_t b,
                                                             __m512i w0, __m512i w1, __m512i w2, __m512i w3,
                                                             uint8_t *dst, int nlanes, int ties)
{
    lt_bytes(c, w0, w1, w2, w3, dst);
    if (ties) {
        __mmask32 e0 = _mm512_cmpeq_epi16_mask(w0, c->thi16);
        __mmask32 e1 = _mm512_cmpeq_epi16_mask(w1, c->thi16);
        __mmask32 e2 = _mm512_cmpeq_epi16_mask(w2, c->thi16);
        __mmask32 e3 = _mm512_cmpeq_epi16_mask(w3, c->thi16);
        if (__builtin_expect((e0 | e1 | e2 | e3) != 0, 0))
            fix_ties(key, b, dst, nlanes, e0, e1, e2, e3);
    }
}

/* format v2 (src_c/ars_impl.h): VAES, four blocks per zmm, the 32 halves of a zmm compared at once */
#define ARS_VEC __m512i
#define ARS_BLOCKS 4
#define ARS_NV 8
#define ARS_BCAST(lo, hi) _mm512_broadcast_i32x4(_mm_set_epi64x((long long)(hi), (long long)(lo)))
#define ARS_COUNTERS(s) _mm512_set_epi64((long long)(s), 3, (long long)(s), 2, (long long)(s), 1, (long long)(s), 0)
#define ARS_ADD_BLOCK(v, b) _mm512_mask_add_epi64((v), 0x55, (v), _mm512_set1_epi64((long long)(b)))
#define ARS_XOR _mm512_xor_si512
#define ARS_ENC _mm512_aesenc_epi128
#define ARS_ENCLAST _mm512_aesenclast_epi128
#define ARS_THI(thi) _mm512_set1_epi16((short)(thi))
#define ARS_CMP(t, v, lt, eq)                                                                             \
    do {                                                                                                  \
        (lt) = _cvtmask32_u32(_mm512_cmplt_epu16_mask((v), (t)));                                         \
        (eq) = _cvtmask32_u32(_mm512_cmpeq_epu16_mask((v), (t)));                                         \
    } while (0)
#include "ars_impl.h"

/* gen_step / gen_loop / gen_avx512 / gen_rows_simd: 64 blocks (8 zmm of counters in flight) per
 * main step measured 13% faster than 32, and 128 spill */
#define GEN_VEC __m512i
#define GEN_BLOCKS 16
#define GEN_NP_MAX 4
#define GEN_NP_BIG 4
#define GEN_NAME gen_avx512
#include "gen_impl.h"

/* ------------------------------------------------------------------------------------------ */
/* apply: y[j] = bit(phase + j) ? x[j] * s : +0.0 */

static inline uint16_t load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t load_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Mask bits of the r (<= 16) elements starting at a byte boundary of p, without reading past them. */
static inline __mmask16 tail_bits16(const uint8_t *p, int64_t r)
{
    unsigned m = p[0];
    if (r > 8)
        m |= (unsigned)p[1] << 8;
    return (__mmask16)(m & ((1u << r) - 1u));
}

/* The head: elements before the first byte boundary of the bit phase. Returns how many. */
#define APPLY_HEAD(MASKED_OP)                                                                         \
    int64_t j = 0;                                                                                    \
    if (phase != 0) {                                                                                 \
        int64_t k = 8 - phase;                                                                        \
        if (k > n)                                                                                    \
            k = n;                                                                                    \
        unsigned lm = (1u << k) - 1u;                                                                 \
        unsigned m = ((unsigned)bits[0] >> phase) & lm;                                               \
        MASKED_OP(0, lm, m);                                                                          \
        j = k;                                                                                        \
        bits++;                                                                                       \
    }                                                                                                 \
    /* from here on, element j uses bit (j - j0) of bits[] with j0 = j */                             \
    const uint8_t *bp = bits;                                                                         \
    const int64_t j0 = j;

static void apply_f32(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const float *x = (const float *)xv;
    float *y = (float *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
#define OP32(J, LM, M)                                                                                \
    _mm512_mask_storeu_ps(y + (J), (__mmask16)(LM),                                                   \
                          _mm512_maskz_mul_ps((__mmask16)(M), _mm512_maskz_loadu_ps((__mmask16)(LM), x + (J)), s))
    APPLY_HEAD(OP32)
    for (; j + 64 <= n; j += 64) {
        uint64_t m = load_u64(bp + ((j - j0) >> 3));
        __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
        __m512 c = _mm512_loadu_ps(x + j + 32), d = _mm512_loadu_ps(x + j + 48);
        _mm512_storeu_ps(y + j, _mm512_maskz_mul_ps((__mmask16)m, a, s));
        _mm512_storeu_ps(y + j + 16, _mm512_maskz_mul_ps((__mmask16)(m >> 16), b, s));
        _mm512_storeu_ps(y + j + 32, _mm512_maskz_mul_ps((__mmask16)(m >> 32), c, s));
        _mm512_storeu_ps(y + j + 48, _mm512_maskz_mul_ps((__mmask16)(m >> 48), d, s));
    }
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = load_u16(bp + ((j - j0) >> 3));
        _mm512_storeu_ps(y + j, _mm512_maskz_mul_ps(m, _mm512_loadu_ps(x + j), s));
    }
    if (j < n) {
        int64_t r = n - j;
        OP32(j, (1u << r) - 1u, tail_bits16(bp + ((j - j0) >> 3), r));
    }
#undef OP32
}

static void apply_f64(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const double *x = (const double *)xv;
    double *y = (double *)yv;
    const __m512d s = _mm512_set1_pd(sd);
#define OP64(J, LM, M)                                                                                \
    _mm512_mask_storeu_pd(y + (J), (__mmask8)(LM),                                                    \
                          _mm512_maskz_mul_pd((__mmask8)(M), _mm512_maskz_loadu_pd((__mmask8)(LM), x + (J)), s))
    APPLY_HEAD(OP64)
    for (; j + 32 <= n; j += 32) {
        const uint8_t *q = bp + ((j - j0) >> 3);
        __m512d a = _mm512_loadu_pd(x + j), b = _mm512_loadu_pd(x + j + 8);
        __m512d c = _mm512_loadu_pd(x + j + 16), d = _mm512_loadu_pd(x + j + 24);
        _mm512_storeu_pd(y + j, _mm512_maskz_mul_pd(q[0], a, s));
        _mm512_storeu_pd(y + j + 8, _mm512_maskz_mul_pd(q[1], b, s));
        _mm512_storeu_pd(y + j + 16, _mm512_maskz_mul_pd(q[2], c, s));
        _mm512_storeu_pd(y + j + 24, _mm512_maskz_mul_pd(q[3], d, s));
    }
    for (; j + 8 <= n; j += 8) {
        __mmask8 m = bp[(j - j0) >> 3];
        _mm512_storeu_pd(y + j, _mm512_maskz_mul_pd(m, _mm512_loadu_pd(x + j), s));
    }
    if (j < n) {
        int64_t r = n - j;
        OP64(j, (1u << r) - 1u, bp[(j - j0) >> 3] & ((1u << r) - 1u));
    }
#undef OP64
}

#define CVT_PH(v) _mm512_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static void apply_f16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
#define OP16(J, LM, M)                                                                                \
    _mm256_mask_storeu_epi16(                                                                         \
        y + (J), (__mmask16)(LM),                                                                     \
        CVT_PH(_mm512_maskz_mul_ps((__mmask16)(M),                                                    \
                                   _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)(LM), x + (J))), s)))
    APPLY_HEAD(OP16)
    for (; j + 32 <= n; j += 32) {
        uint32_t m;
        memcpy(&m, bp + ((j - j0) >> 3), sizeof m);
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + j)));
        __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + j + 16)));
        _mm256_storeu_si256((__m256i *)(y + j), CVT_PH(_mm512_maskz_mul_ps((__mmask16)m, a, s)));
        _mm256_storeu_si256((__m256i *)(y + j + 16), CVT_PH(_mm512_maskz_mul_ps((__mmask16)(m >> 16), b, s)));
    }
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = load_u16(bp + ((j - j0) >> 3));
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + j)));
        _mm256_storeu_si256((__m256i *)(y + j), CVT_PH(_mm512_maskz_mul_ps(m, a, s)));
    }
    if (j < n) {
        int64_t r = n - j;
        OP16(j, (1u << r) - 1u, tail_bits16(bp + ((j - j0) >> 3), r));
    }
#undef OP16
}

/* bfloat16: widen (<< 16), multiply in float32, round once to nearest even; NaN -> sign | 0x7fc0. */
static inline __m512 bf16_to_ps(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m256i ps_to_bf16(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                 _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    r = _mm512_srli_epi32(r, 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    const __m512i q = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7fc0));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, q)); /* exact: < 2^16 */
}

static void apply_bf16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
#define OPB(J, LM, M)                                                                                 \
    _mm256_mask_storeu_epi16(                                                                         \
        y + (J), (__mmask16)(LM),                                                                     \
        ps_to_bf16(_mm512_maskz_mul_ps((__mmask16)(M),                                                \
                                       bf16_to_ps(_mm256_maskz_loadu_epi16((__mmask16)(LM), x + (J))), s)))
    APPLY_HEAD(OPB)
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = load_u16(bp + ((j - j0) >> 3));
        __m512 a = bf16_to_ps(_mm256_loadu_si256((const __m256i *)(x + j)));
        _mm256_storeu_si256((__m256i *)(y + j), ps_to_bf16(_mm512_maskz_mul_ps(m, a, s)));
    }
    if (j < n) {
        int64_t r = n - j;
        OPB(j, (1u << r) - 1u, tail_bits16(bp + ((j - j0) >> 3), r));
    }
#undef OPB
}

/* ------------------------------------------------------------------------------------------ */
/* strided apply: element j at x[j * k], 2 <= k <= 8. A vector of L lanes holds the elements whose
 * lane index is a multiple of k; masked loads and stores touch only those, so the elements in
 * between are never read or written. The lane pattern repeats every k vectors. */

/* Bits j .. j + 15 of the run (bit j = bit phase + j of bits), reading no byte past the run's last. */
static inline unsigned run_bits16(const uint8_t *bits, int phase, int64_t n, int64_t j)
{
    const int64_t p = phase + j, b = p >> 3, avail = ((phase + n + 7) >> 3) - b;
    unsigned w = bits[b];
    if (avail > 1)
        w |= (unsigned)bits[b + 1] << 8;
    if (avail > 2)
        w |= (unsigned)bits[b + 2] << 16;
    return (w >> (p & 7)) & 0xffffu;
}

#define STRIDED_BODY(L, OP)                                                                           \
    uint32_t pat[8];                                                                                  \
    int cnt[8];                                                                                       \
    for (int v = 0; v < k; v++) {                                                                     \
        uint32_t pm = 0;                                                                              \
        for (int l = 0; l < (L); l++)                                                                 \
            if (((L) * v + l) % k == 0)                                                               \
                pm |= 1u << l;                                                                        \
        pat[v] = pm;                                                                                  \
        cnt[v] = __builtin_popcount(pm);                                                              \
    }                                                                                                 \
    int64_t j = 0, e = 0;                                                                             \
    for (; j + (L) <= n; j += (L), e += (L) * k) { /* whole cycles: L elements in k vectors */       \
        const unsigned kb = run_bits16(bits, phase, n, j);                                            \
        int off = 0;                                                                                  \
        for (int v = 0; v < k; v++) {                                                                 \
            OP(e + (L) * v, pat[v], _pdep_u32(kb >> off, pat[v]));                                    \
            off += cnt[v];                                                                            \
        }                                                                                             \
    }                                                                                                 \
    for (int v = 0; j < n; e += (L), v++) {                                                           \
        uint32_t pm = pat[v];                                                                         \
        int c = cnt[v];                                                                               \
        if (c > n - j) {                                                                              \
            c = (int)(n - j);                                                                         \
            pm = _pdep_u32((1u << c) - 1u, pm);                                                       \
        }                                                                                             \
        uint32_t keep = _pdep_u32(run_bits16(bits, phase, n, j) & ((1u << c) - 1u), pm);              \
        OP(e, pm, keep);                                                                              \
        j += c;                                                                                       \
    }

static void apply_strided_f32(const void *xv, void *yv, int64_t k, int64_t n, const uint8_t *bits, int phase,
                              double sd)
{
    const float *x = (const float *)xv;
    float *y = (float *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
#define OPS32(E, LM, M)                                                                               \
    _mm512_mask_storeu_ps(y + (E), (__mmask16)(LM),                                                   \
                          _mm512_maskz_mul_ps((__mmask16)(M), _mm512_maskz_loadu_ps((__mmask16)(LM), x + (E)), s))
    STRIDED_BODY(16, OPS32)
#undef OPS32
}

static void apply_strided_f64(const void *xv, void *yv, int64_t k, int64_t n, const uint8_t *bits, int phase,
                              double sd)
{
    const double *x = (const double *)xv;
    double *y = (double *)yv;
    const __m512d s = _mm512_set1_pd(sd);
#define OPS64(E, LM, M)                                                                               \
    _mm512_mask_storeu_pd(y + (E), (__mmask8)(LM),                                                    \
                          _mm512_maskz_mul_pd((__mmask8)(M), _mm512_maskz_loadu_pd((__mmask8)(LM), x + (E)), s))
    STRIDED_BODY(8, OPS64)
#undef OPS64
}

static void apply_strided_f16(const void *xv, void *yv, int64_t k, int64_t n, const uint8_t *bits, int phase,
                              double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
#define OPS16(E, LM, M)                                                                               \
    _mm256_mask_storeu_epi16(                                                                         \
        y + (E), (__mmask16)(LM),                                                                     \
        CVT_PH(_mm512_maskz_mul_ps((__mmask16)(M),                                                    \
                                   _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)(LM), x + (E))), s)))
    STRIDED_BODY(16, OPS16)
#undef OPS16
}
#undef STRIDED_BODY

/* ------------------------------------------------------------------------------------------ */
/* scale: y[j] *= s in place */

static void scale_f32(void *yv, int64_t n, double sd)
{
    float *y = (float *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        __m512 a = _mm512_loadu_ps(y + j), b = _mm512_loadu_ps(y + j + 16);
        __m512 c = _mm512_loadu_ps(y + j + 32), d = _mm512_loadu_ps(y + j + 48);
        _mm512_storeu_ps(y + j, _mm512_mul_ps(a, s));
        _mm512_storeu_ps(y + j + 16, _mm512_mul_ps(b, s));
        _mm512_storeu_ps(y + j + 32, _mm512_mul_ps(c, s));
        _mm512_storeu_ps(y + j + 48, _mm512_mul_ps(d, s));
    }
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), s));
    if (j < n) {
        __mmask16 lm = (__mmask16)((1u << (n - j)) - 1u);
        _mm512_mask_storeu_ps(y + j, lm, _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, y + j), s));
    }
}

static void scale_f64(void *yv, int64_t n, double sd)
{
    double *y = (double *)yv;
    const __m512d s = _mm512_set1_pd(sd);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512d a = _mm512_loadu_pd(y + j), b = _mm512_loadu_pd(y + j + 8);
        __m512d c = _mm512_loadu_pd(y + j + 16), d = _mm512_loadu_pd(y + j + 24);
        _mm512_storeu_pd(y + j, _mm512_mul_pd(a, s));
        _mm512_storeu_pd(y + j + 8, _mm512_mul_pd(b, s));
        _mm512_storeu_pd(y + j + 16, _mm512_mul_pd(c, s));
        _mm512_storeu_pd(y + j + 24, _mm512_mul_pd(d, s));
    }
    for (; j + 8 <= n; j += 8)
        _mm512_storeu_pd(y + j, _mm512_mul_pd(_mm512_loadu_pd(y + j), s));
    if (j < n) {
        __mmask8 lm = (__mmask8)((1u << (n - j)) - 1u);
        _mm512_mask_storeu_pd(y + j, lm, _mm512_mul_pd(_mm512_maskz_loadu_pd(lm, y + j), s));
    }
}

static void scale_f16(void *yv, int64_t n, double sd)
{
    uint16_t *y = (uint16_t *)yv;
    const __m512 s = _mm512_set1_ps((float)sd);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + j)));
        __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + j + 16)));
        _mm256_storeu_si256((__m256i *)(y + j), CVT_PH(_mm512_mul_ps(a, s)));
        _mm256_storeu_si256((__m256i *)(y + j + 16), CVT_PH(_mm512_mul_ps(b, s)));
    }
    for (; j + 16 <= n; j += 16) {
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + j)));
        _mm256_storeu_si256((__m256i *)(y + j), CVT_PH(_mm512_mul_ps(a, s)));
    }
    if (j < n) {
        __mmask16 lm = (__mmask16)((1u << (n - j)) - 1u);
        __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lm, y + j));
        _mm256_mask_storeu_epi16(y + j, lm, CVT_PH(_mm512_mul_ps(a, s)));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* fused forward (src_c/fused_impl.h): one 64-block AVX-512 step per chunk. */

static inline __attribute__((always_inline)) void fused_gen_chunk(gen_ctx *c, const cd_key *key, uint64_t b,
                                                                  uint8_t *bytes, int ties, const char *pf,
                                                                  size_t es)
{
    if (es == 2)
        gen_step_pf(c, key, b, bytes, 4, ties, 64, pf, 16);
    else if (es == 4)
        gen_step_pf(c, key, b, bytes, 4, ties, 64, pf, 32);
    else
        gen_step_pf(c, key, b, bytes, 4, ties, 64, pf, 64);
}

#include "fused_impl.h"

const cd_kernels cd_kernels_avx512 = {
    "avx512", gen_avx512, {apply_f16, apply_f32, apply_f64, apply_bf16},
    {scale_f16, scale_f32, scale_f64, cd_scale_bf16}, {fused_f16, fused_f32, fused_f64, fused_bf16}, gen_rows_simd,
    {apply_strided_f16, apply_strided_f32, apply_strided_f64, NULL}};
