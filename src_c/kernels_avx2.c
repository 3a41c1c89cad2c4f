/* AVX2 + F16C kernel set. Compiled with -mavx2 -mfma -mf16c -mbmi2 -maes and called only when the CPU
 * has those (AES-NI only for format v2: without it the driver runs v2 on the portable set). Bitwise equal to kernels_portable.c (no FMA anywhere: every x * s is a plain multiply).
 *
 * gen: Philox4x32-10 on 4 blocks per ymm, one block per 64-bit lane with its 32-bit counter word in the
 * low half of the lane, so _mm256_mul_epu32 gives hi and lo of every lane in one instruction (see
 * kernels_avx512.c). Even and odd blocks are packed into 8 blocks per ymm (one per 32-bit lane) for
 * the compare on 16-bit halves; the per-block keep byte is assembled with _mm256_madd_epi16. Ties
 * (u == Thi) go to the scalar side path only when Tlo != 0. Format v2 (ARS-7): AES-NI rounds, one
 * block per xmm (src_c/ars_impl.h).
 *
 * apply: the 8 bits of a mask byte become a lane mask (broadcast, and, compare); dropped lanes are
 * and-ed to +0.0. Head and tail go through a small buffer so memory outside [0, n) is never touched. */
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
    __m256i k0[10], k1[10];  /* round keys in every dword */
    __m256i r0c0, r0c2, r1c1; /* the constant parts of rounds 1 and 2, see kernels_avx512.c */
    __m256i thi16;           /* Thi in every 16-bit lane */
    __m256i thi16x;          /* Thi ^ 0x8000 (for the signed compare) */
    __m256i lane[4];         /* block offsets of group g (64-bit lanes) */
    __m256i m0lane[4];       /* M0 * lane[g] */
    uint32_t r0c0s;          /* r0c0 as a scalar */
} gen_ctx;

static void gen_ctx_init(gen_ctx *c, const cd_key *key)
{
    uint32_t k0 = key->k0, k1 = key->k1;
    for (int r = 0; r < 10; r++) {
        c->k0[r] = _mm256_set1_epi32((int)k0);
        c->k1[r] = _mm256_set1_epi32((int)k1);
        k0 += CD_PHILOX_W0;
        k1 += CD_PHILOX_W1;
    }
    uint64_t p1 = (uint64_t)CD_PHILOX_M1 * key->s0;
    c->r0c0s = ((uint32_t)(p1 >> 32)) ^ key->k0;
    c->r0c0 = _mm256_set1_epi64x((long long)c->r0c0s);
    c->r0c2 = _mm256_set1_epi64x((long long)(key->s1 ^ key->k1));
    c->r1c1 = _mm256_set1_epi64x((long long)((uint32_t)p1 ^ (uint32_t)(key->k0 + CD_PHILOX_W0)));
    c->thi16 = _mm256_set1_epi16((short)key->thi);
    c->thi16x = _mm256_set1_epi16((short)(key->thi ^ 0x8000u));
    /* group 2p holds the even blocks of the p-th 8 of a step, group 2p + 1 the odd ones */
    for (int g = 0; g < 4; g++) {
        const long long o = 8 * (g >> 1) + (g & 1);
        c->lane[g] = _mm256_setr_epi64x(o, o + 2, o + 4, o + 6);
        c->m0lane[g] = _mm256_mul_epu32(c->lane[g], _mm256_set1_epi64x(CD_PHILOX_M0));
    }
}

#define XOR3(a, b, c) _mm256_xor_si256(_mm256_xor_si256((a), (b)), (c))
/* hi dword of each 64-bit product to the low half (a shuffle instead measured 6% slower) */
#define HI(p) _mm256_srli_epi64((p), 32)

/* pf, when not NULL: PFL cache lines from pf on are prefetched (to L2), spread over rounds 3..10 (the
 * fused kernels). */
#define PREFETCH_ROUND(r)                                                                               \
    do {                                                                                                \
        if (PFL > 0 && pf != NULL)                                                                      \
            _Pragma("GCC unroll 16") for (int q = ((r) - 2) * PFL / 8; q < ((r) - 1) * PFL / 8; q++)   \
                _mm_prefetch(pf + 64 * q, PF_HINT);                                                     \
    } while (0)

/* Round r (0-based, r >= 2) of the NG groups, the general form. */
#define ROUND(r)                                                                                        \
    do {                                                                                                \
        const __m256i k0_ = c->k0[r], k1_ = c->k1[r];                                                   \
        PREFETCH_ROUND(r);                                                                              \
        _Pragma("GCC unroll 4") for (int g = 0; g < NG; g++)                                           \
        {                                                                                               \
            __m256i p0 = _mm256_mul_epu32(c0[g], M0);                                                   \
            __m256i p1 = _mm256_mul_epu32(c2[g], M1);                                                   \
            c0[g] = XOR3(HI(p1), c1[g], k0_);                                                           \
            c1[g] = p1;                                                                                 \
            c2[g] = XOR3(HI(p0), c3[g], k1_);                                                           \
            c3[g] = p0;                                                                                 \
        }                                                                                               \
    } while (0)

/* NP * 8 blocks at b: the four output words of block b + 8 * p + l in 32-bit lane l of w[i][p].
 * Rounds 1 and 2 are mostly scalar when counter words 1..3 are equal in every lane, and the last
 * round packs the even and odd groups: see kernels_avx512.c. */
static inline __attribute__((always_inline)) void philox_blocks(const gen_ctx *c, uint64_t b, int NP,
                                                                __m256i w[4][2], const char *pf, int PFL)
{
    const __m256i M0 = _mm256_set1_epi64x(CD_PHILOX_M0), M1 = _mm256_set1_epi64x(CD_PHILOX_M1);
    __m256i c0[4], c1[4], c2[4], c3[4];
    const int NG = 2 * NP;
    if (__builtin_expect((uint32_t)b <= 0xffffffffu - (uint32_t)(8 * NP - 1), 1)) {
        const __m256i pb = _mm256_set1_epi64x((long long)((uint64_t)CD_PHILOX_M0 * (uint32_t)b));
#pragma GCC unroll 4
        for (int g = 0; g < NG; g++) {
            __m256i p0 = _mm256_add_epi64(pb, c->m0lane[g]); /* M0 * (b + lane), b + lane < 2^32 */
            c2[g] = _mm256_xor_si256(HI(p0), c->r0c2);
            c3[g] = p0;
        }
        const uint32_t w0 = c->r0c0s ^ (uint32_t)(b >> 32);
        const uint64_t q0 = (uint64_t)CD_PHILOX_M0 * w0;
        const __m256i x2k = _mm256_xor_si256(_mm256_set1_epi32((int)(uint32_t)(q0 >> 32)), c->k1[1]);
#pragma GCC unroll 4
        for (int g = 0; g < NG; g++) {
            __m256i p1 = _mm256_mul_epu32(c2[g], M1);
            c0[g] = _mm256_xor_si256(HI(p1), c->r1c1);
            c1[g] = p1;
            c2[g] = _mm256_xor_si256(c3[g], x2k);
        }
        {
            const __m256i k0_ = c->k0[2];
            const __m256i x3 = _mm256_xor_si256(_mm256_set1_epi32((int)(uint32_t)q0), c->k1[2]);
            PREFETCH_ROUND(2);
#pragma GCC unroll 4
            for (int g = 0; g < NG; g++) {
                __m256i p0 = _mm256_mul_epu32(c0[g], M0);
                __m256i p1 = _mm256_mul_epu32(c2[g], M1);
                c0[g] = XOR3(HI(p1), c1[g], k0_);
                c1[g] = p1;
                c2[g] = _mm256_xor_si256(HI(p0), x3);
                c3[g] = p0;
            }
        }
    } else {
        const __m256i base = _mm256_set1_epi64x((long long)b);
#pragma GCC unroll 4
        for (int g = 0; g < NG; g++) {
            __m256i ctr = _mm256_add_epi64(base, c->lane[g]);
            __m256i p0 = _mm256_mul_epu32(ctr, M0);
            c0[g] = _mm256_xor_si256(_mm256_srli_epi64(ctr, 32), c->r0c0);
            c2[g] = _mm256_xor_si256(HI(p0), c->r0c2);
            c3[g] = p0;
        }
#pragma GCC unroll 4
        for (int g = 0; g < NG; g++) {
            __m256i p0 = _mm256_mul_epu32(c0[g], M0);
            __m256i p1 = _mm256_mul_epu32(c2[g], M1);
            c0[g] = _mm256_xor_si256(HI(p1), c->r1c1);
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
    /* round 10, packing even (A) and odd (B) groups: lane 2k <- A's qword k, 2k + 1 <- B's */
#define LO(a, b) _mm256_blend_epi32((a), _mm256_shuffle_epi32((b), 0xA0), 0xAA)
#define HIP(a, b) _mm256_blend_epi32((b), _mm256_shuffle_epi32((a), 0xF5), 0x55)
    PREFETCH_ROUND(9);
#pragma GCC unroll 2
    for (int p = 0; p < NP; p++) {
        const int A = 2 * p, B = 2 * p + 1;
        __m256i p0a = _mm256_mul_epu32(c0[A], M0), p0b = _mm256_mul_epu32(c0[B], M0);
        __m256i p1a = _mm256_mul_epu32(c2[A], M1), p1b = _mm256_mul_epu32(c2[B], M1);
        w[0][p] = XOR3(HIP(p1a, p1b), LO(c1[A], c1[B]), c->k0[9]);
        w[1][p] = LO(p1a, p1b);
        w[2][p] = XOR3(HIP(p0a, p0b), LO(c3[A], c3[B]), c->k1[9]);
        w[3][p] = LO(p0a, p0b);
    }
#undef LO
#undef HIP
}

/* 16-bit lanes of w below Thi, weighted and summed per 32-bit lane: bit 2i (low half), 2i + 1 (high). */
static inline __attribute__((always_inline)) __m256i lt_word(const gen_ctx *c, __m256i w, int i)
{
    __m256i lt = _mm256_cmpgt_epi16(c->thi16x, _mm256_xor_si256(w, _mm256_set1_epi16((short)0x8000)));
    /* lt lanes are -1 or 0: madd with the negated weights gives the weights */
    return _mm256_madd_epi16(lt, _mm256_set1_epi32((int)((uint32_t)(-(2 << (2 * i))) << 16 |
                                                         (uint16_t)(-(1 << (2 * i))))));
}

/* Keep bytes of the 8 blocks (ignoring ties) as a 64-bit value, block l in byte l. */
static inline __attribute__((always_inline)) uint64_t lt_bytes(const gen_ctx *c, __m256i w0, __m256i w1,
                                                               __m256i w2, __m256i w3)
{
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(lt_word(c, w0, 0), lt_word(c, w1, 1)),
                                 _mm256_add_epi32(lt_word(c, w2, 2), lt_word(c, w3, 3)));
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    r = _mm256_shuffle_epi8(r, gather);
    r = _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(r));
}

static __attribute__((noinline)) void fix_ties(const cd_key *key, uint64_t b, uint8_t *out, int nlanes,
                                               __m256i e0, __m256i e1, __m256i e2, __m256i e3)
{
    /* movemask: block l covers mask bits 4l..4l+3; bit 4l = low half, 4l + 2 = high half */
    uint32_t m[4] = {(uint32_t)_mm256_movemask_epi8(e0), (uint32_t)_mm256_movemask_epi8(e1),
                     (uint32_t)_mm256_movemask_epi8(e2), (uint32_t)_mm256_movemask_epi8(e3)};
    for (int l = 0; l < nlanes; l++) {
        unsigned eq = 0;
        for (int i = 0; i < 4; i++)
            eq |= (((m[i] >> (4 * l)) & 1u) | (((m[i] >> (4 * l + 2)) & 1u) << 1)) << (2 * i);
        if (eq)
            out[l] = cd_block_byte_ties(key, b + (uint64_t)l, out[l], (uint8_t)eq);
    }
}

/* One vector of 8 blocks: keep bytes (ties resolved when `ties`) into dst[0 .. 8). */
static inline __attribute__((always_inline)) void keep_bytes(const gen_ctx *c, const cd_key *key, uint64_t b,
                                                             __m256i w0, __m256i w1, __m256i w2, __m256i w3,
                                                             uint8_t *dst, int nlanes, int ties)
{
    uint64_t bytes = lt_bytes(c, w0, w1, w2, w3);
    memcpy(dst, &bytes, 8);
    if (ties) {
        __m256i e0 = _mm256_cmpeq_epi16(w0, c->thi16);
        __m256i e1 = _mm256_cmpeq_epi16(w1, c->thi16);
        __m256i e2 = _mm256_cmpeq_epi16(w2, c->thi16);
        __m256i e3 = _mm256_cmpeq_epi16(w3, c->thi16);
        __m256i any = _mm256_or_si256(_mm256_or_si256(e0, e1), _mm256_or_si256(e2, e3));
        if (__builtin_expect(!_mm256_testz_si256(any, any), 0))
            fix_ties(key, b, dst, nlanes, e0, e1, e2, e3);
    }
}

/* gen_step / gen_loop / gen_avx2 / gen_rows_simd: 16 blocks (4 ymm of counters) per main step
 * measured 12% faster than 8 or 32 */
/* format v2 (src_c/ars_impl.h): AES-NI, one block per xmm, eight blocks in flight. The unsigned
 * compare u < Thi is a signed compare of both sides with their top bit flipped; packing the lt and
 * eq words to bytes puts the keep byte in the low and the tie byte in the high half of movemask. */
#define ARS_VEC __m128i
#define ARS_BLOCKS 1
#define ARS_NV 8
#define ARS_BCAST(lo, hi) _mm_set_epi64x((long long)(hi), (long long)(lo))
#define ARS_COUNTERS(s) _mm_set_epi64x((long long)(s), 0)
#define ARS_ADD_BLOCK(v, b) _mm_add_epi64((v), _mm_set_epi64x(0, (long long)(b)))
#define ARS_XOR _mm_xor_si128
#define ARS_ENC _mm_aesenc_si128
#define ARS_ENCLAST _mm_aesenclast_si128
#define ARS_THI(thi) _mm_set1_epi16((short)(thi))
#define ARS_CMP(t, v, lt, eq)                                                                             \
    do {                                                                                                  \
        const __m128i flip_ = _mm_set1_epi16((short)0x8000);                                              \
        const __m128i l_ = _mm_cmpgt_epi16(_mm_xor_si128((t), flip_), _mm_xor_si128((v), flip_));         \
        const unsigned m_ = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(l_, _mm_cmpeq_epi16((v), (t))));  \
        (lt) = m_ & 0xffu;                                                                                \
        (eq) = m_ >> 8;                                                                                   \
    } while (0)
#include "ars_impl.h"

#define GEN_VEC __m256i
#define GEN_BLOCKS 8
#define GEN_NP_MAX 2
#define GEN_NP_BIG 2
#define GEN_NAME gen_avx2
#include "gen_impl.h"

/* ------------------------------------------------------------------------------------------ */
/* apply: y[j] = bit(phase + j) ? x[j] * s : +0.0 */

/* Lane masks (all ones = keep) from the 8 bits of a byte: 8 x 32-bit, or 2 x (4 x 64-bit). */
static inline __m256 keep8_ps(unsigned byte)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i v = _mm256_and_si256(_mm256_set1_epi32((int)byte), bit);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, bit));
}

static inline __m256d keep4_pd(unsigned nibble)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    __m256i v = _mm256_and_si256(_mm256_set1_epi64x((long long)nibble), bit);
    return _mm256_castsi256_pd(_mm256_cmpeq_epi64(v, bit));
}

static inline __m256 mul_keep_ps(__m256 x, __m256 s, unsigned byte)
{
    return _mm256_and_ps(_mm256_mul_ps(x, s), keep8_ps(byte));
}

static inline __m256d mul_keep_pd(__m256d x, __m256d s, unsigned nibble)
{
    return _mm256_and_pd(_mm256_mul_pd(x, s), keep4_pd(nibble));
}

#define CVT_PH(v) _mm256_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __m128i mul_keep_ph(__m128i x, __m256 s, unsigned byte)
{
    return CVT_PH(mul_keep_ps(_mm256_cvtph_ps(x), s, byte));
}

/* Up to 8 elements (r of them) through a buffer; m = their bits, bit 0 = first element. */
static void part_f32(const float *x, float *y, int64_t r, unsigned m, __m256 s)
{
    float buf[8] = {0};
    memcpy(buf, x, (size_t)r * sizeof *x);
    _mm256_storeu_ps(buf, mul_keep_ps(_mm256_loadu_ps(buf), s, m));
    memcpy(y, buf, (size_t)r * sizeof *y);
}

static void part_f64(const double *x, double *y, int64_t r, unsigned m, __m256d s)
{
    double buf[8] = {0};
    memcpy(buf, x, (size_t)r * sizeof *x);
    _mm256_storeu_pd(buf, mul_keep_pd(_mm256_loadu_pd(buf), s, m & 15u));
    _mm256_storeu_pd(buf + 4, mul_keep_pd(_mm256_loadu_pd(buf + 4), s, m >> 4));
    memcpy(y, buf, (size_t)r * sizeof *y);
}

static void part_f16(const uint16_t *x, uint16_t *y, int64_t r, unsigned m, __m256 s)
{
    uint16_t buf[8] = {0};
    memcpy(buf, x, (size_t)r * sizeof *x);
    _mm_storeu_si128((__m128i *)buf, mul_keep_ph(_mm_loadu_si128((const __m128i *)buf), s, m));
    memcpy(y, buf, (size_t)r * sizeof *y);
}

/* Head (elements before the first byte boundary of the bit phase), then whole bytes, then a tail. */
#define APPLY_BODY(PART, S, BYTE_OP)                                                                  \
    int64_t j = 0;                                                                                    \
    if (phase != 0) {                                                                                 \
        int64_t k = 8 - phase;                                                                        \
        if (k > n)                                                                                    \
            k = n;                                                                                    \
        PART(x, y, k, ((unsigned)bits[0] >> phase) & ((1u << k) - 1u), S);                            \
        j = k;                                                                                        \
        bits++;                                                                                       \
    }                                                                                                 \
    const uint8_t *q = bits; /* element j + 8t uses byte q[t] */                                     \
    for (; j + 32 <= n; j += 32, q += 4) {                                                            \
        BYTE_OP(j, q[0]);                                                                             \
        BYTE_OP(j + 8, q[1]);                                                                         \
        BYTE_OP(j + 16, q[2]);                                                                        \
        BYTE_OP(j + 24, q[3]);                                                                        \
    }                                                                                                 \
    for (; j + 8 <= n; j += 8, q++)                                                                   \
        BYTE_OP(j, q[0]);                                                                             \
    if (j < n)                                                                                        \
        PART(x + j, y + j, n - j, (unsigned)q[0] & ((1u << (n - j)) - 1u), S);

static void apply_f32(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const float *x = (const float *)xv;
    float *y = (float *)yv;
    const __m256 s = _mm256_set1_ps((float)sd);
#define OP(J, B) _mm256_storeu_ps(y + (J), mul_keep_ps(_mm256_loadu_ps(x + (J)), s, (B)))
    APPLY_BODY(part_f32, s, OP)
#undef OP
}

static void apply_f64(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const double *x = (const double *)xv;
    double *y = (double *)yv;
    const __m256d s = _mm256_set1_pd(sd);
#define OP(J, B)                                                                                      \
    do {                                                                                              \
        unsigned b_ = (B);                                                                            \
        _mm256_storeu_pd(y + (J), mul_keep_pd(_mm256_loadu_pd(x + (J)), s, b_ & 15u));                \
        _mm256_storeu_pd(y + (J) + 4, mul_keep_pd(_mm256_loadu_pd(x + (J) + 4), s, b_ >> 4));         \
    } while (0)
    APPLY_BODY(part_f64, s, OP)
#undef OP
}

static void apply_f16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const __m256 s = _mm256_set1_ps((float)sd);
#define OP(J, B)                                                                                      \
    _mm_storeu_si128((__m128i *)(y + (J)), mul_keep_ph(_mm_loadu_si128((const __m128i *)(x + (J))), s, (B)))
    APPLY_BODY(part_f16, s, OP)
#undef OP
}

/* bfloat16: widen (<< 16), multiply in float32, round once to nearest even; NaN -> sign | 0x7fc0. */
static inline __m256 bf16_to_ps(__m128i h)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline __m128i ps_to_bf16(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                 _mm256_and_si256(hi, _mm256_set1_epi32(1)));
    r = _mm256_srli_epi32(r, 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i q = _mm256_or_si256(_mm256_and_si256(hi, _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7fc0));
    r = _mm256_blendv_epi8(r, q, nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)); /* exact: < 2^16 */
}

static inline __m128i mul_keep_bf16(__m128i x, __m256 s, unsigned byte)
{
    return ps_to_bf16(mul_keep_ps(bf16_to_ps(x), s, byte));
}

static void part_bf16(const uint16_t *x, uint16_t *y, int64_t r, unsigned m, __m256 s)
{
    uint16_t buf[8] = {0};
    memcpy(buf, x, (size_t)r * sizeof *x);
    _mm_storeu_si128((__m128i *)buf, mul_keep_bf16(_mm_loadu_si128((const __m128i *)buf), s, m));
    memcpy(y, buf, (size_t)r * sizeof *y);
}

static void apply_bf16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const __m256 s = _mm256_set1_ps((float)sd);
#define OP(J, B)                                                                                      \
    _mm_storeu_si128((__m128i *)(y + (J)), mul_keep_bf16(_mm_loadu_si128((const __m128i *)(x + (J))), s, (B)))
    APPLY_BODY(part_bf16, s, OP)
#undef OP
}

/* ------------------------------------------------------------------------------------------ */
/* scale: y[j] *= s in place */

static void scale_f32(void *yv, int64_t n, double sd)
{
    float *y = (float *)yv;
    const float s1 = (float)sd;
    const __m256 s = _mm256_set1_ps(s1);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 a = _mm256_loadu_ps(y + j), b = _mm256_loadu_ps(y + j + 8);
        __m256 c = _mm256_loadu_ps(y + j + 16), d = _mm256_loadu_ps(y + j + 24);
        _mm256_storeu_ps(y + j, _mm256_mul_ps(a, s));
        _mm256_storeu_ps(y + j + 8, _mm256_mul_ps(b, s));
        _mm256_storeu_ps(y + j + 16, _mm256_mul_ps(c, s));
        _mm256_storeu_ps(y + j + 24, _mm256_mul_ps(d, s));
    }
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), s));
    for (; j < n; j++)
        y[j] *= s1;
}

static void scale_f64(void *yv, int64_t n, double sd)
{
    double *y = (double *)yv;
    const __m256d s = _mm256_set1_pd(sd);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256d a = _mm256_loadu_pd(y + j), b = _mm256_loadu_pd(y + j + 4);
        __m256d c = _mm256_loadu_pd(y + j + 8), d = _mm256_loadu_pd(y + j + 12);
        _mm256_storeu_pd(y + j, _mm256_mul_pd(a, s));
        _mm256_storeu_pd(y + j + 4, _mm256_mul_pd(b, s));
        _mm256_storeu_pd(y + j + 8, _mm256_mul_pd(c, s));
        _mm256_storeu_pd(y + j + 12, _mm256_mul_pd(d, s));
    }
    for (; j + 4 <= n; j += 4)
        _mm256_storeu_pd(y + j, _mm256_mul_pd(_mm256_loadu_pd(y + j), s));
    for (; j < n; j++)
        y[j] *= sd;
}

static void scale_f16(void *yv, int64_t n, double sd)
{
    uint16_t *y = (uint16_t *)yv;
    const __m256 s = _mm256_set1_ps((float)sd);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + j)));
        __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + j + 8)));
        _mm_storeu_si128((__m128i *)(y + j), CVT_PH(_mm256_mul_ps(a, s)));
        _mm_storeu_si128((__m128i *)(y + j + 8), CVT_PH(_mm256_mul_ps(b, s)));
    }
    for (; j + 8 <= n; j += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + j)));
        _mm_storeu_si128((__m128i *)(y + j), CVT_PH(_mm256_mul_ps(a, s)));
    }
    if (j < n) {
        uint16_t buf[8] = {0};
        memcpy(buf, y + j, (size_t)(n - j) * sizeof *y);
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)buf));
        _mm_storeu_si128((__m128i *)buf, CVT_PH(_mm256_mul_ps(a, s)));
        memcpy(y + j, buf, (size_t)(n - j) * sizeof *y);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* fused forward (src_c/fused_impl.h): four 16-block AVX2 steps per chunk, each prefetching its
 * 128 elements' cache lines. */

static inline __attribute__((always_inline)) void fused_gen_chunk(gen_ctx *c, const cd_key *key, uint64_t b,
                                                                  uint8_t *bytes, int ties, const char *pf,
                                                                  size_t es)
{
    const int pfl = (int)(2 * es); /* cache lines of 128 elements (one 16-block step) */
    for (int q = 0; q < 4; q++) {
        const char *p = pf ? pf + (size_t)q * 64 * (size_t)pfl : NULL;
        if (pfl == 4)
            gen_step_pf(c, key, b + 16 * (uint64_t)q, bytes + 16 * q, 2, ties, 16, p, 4);
        else if (pfl == 8)
            gen_step_pf(c, key, b + 16 * (uint64_t)q, bytes + 16 * q, 2, ties, 16, p, 8);
        else
            gen_step_pf(c, key, b + 16 * (uint64_t)q, bytes + 16 * q, 2, ties, 16, p, 16);
    }
}

#include "fused_impl.h"

const cd_kernels cd_kernels_avx2 = {
    "avx2", gen_avx2, {apply_f16, apply_f32, apply_f64, apply_bf16},
    {scale_f16, scale_f32, scale_f64, cd_scale_bf16}, {fused_f16, fused_f32, fused_f64, fused_bf16}, gen_rows_simd,
    {NULL, NULL, NULL, NULL}};
