/* The portable kernel set: plain C11, any CPU. It is also the reference that every SIMD
 * kernel must match bit for bit, and it holds the scalar helpers the SIMD files share. */
#include <string.h>

#include "aes_tables.h"
#include "kernels.h"
#include "philox.h"

uint16_t cd_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {                 /* Inf, or NaN made quiet with its top payload */
        if (ax == 0x7f800000u)
            return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u)                   /* >= 65520 rounds to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {                 /* normal half: rebias, round to nearest even */
        uint32_t r = ax - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    uint32_t e = ax >> 23;                   /* subnormal half (or zero) */
    if (e < 101)
        return sign;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;                /* 14 .. 25 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

float cd_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0x1f)
        x = sign | 0x7f800000u | (m << 13);
    else if (e != 0)
        x = sign | ((e + 112u) << 23) | (m << 13);
    else if (m == 0)
        x = sign;
    else {
        e = 113;
        while (!(m & 0x400u)) { m <<= 1; e--; }
        x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static inline uint32_t half_of(const cd_philox_ctr *w, int h)
{
    return (w->v[h >> 1] >> (16 * (h & 1))) & 0xffffu;
}

/* ---- ARS (format v2): AES rounds from tables, word c of the state = column c, row r in byte r ---- */

typedef struct {
    uint32_t k[11][4]; /* round keys: K, K + W, ..., K + rounds W (rounds <= 10) */
} ars_keys;

static void ars_keys_init(ars_keys *rk, int rounds, const uint32_t key[4])
{
    uint64_t lo = (uint64_t)key[0] | (uint64_t)key[1] << 32, hi = (uint64_t)key[2] | (uint64_t)key[3] << 32;
    for (int r = 0; r <= rounds; r++) {
        rk->k[r][0] = (uint32_t)lo;
        rk->k[r][1] = (uint32_t)(lo >> 32);
        rk->k[r][2] = (uint32_t)hi;
        rk->k[r][3] = (uint32_t)(hi >> 32);
        lo += CD_ARS_W0;
        hi += CD_ARS_W1;
    }
}

/* AESENC, one AES round (ShiftRows: row r of column c from column c + r; SubBytes; MixColumns;
 * xor k), on the state (a0, a1, a2, a3) held in scalars (word c = column c), round key k. */
#define AES_ROUND_VARS(a0, a1, a2, a3, k)                                                               \
    do {                                                                                                 \
        const uint32_t t0_ = CD_AES_TE[0][a0 & 0xff] ^ CD_AES_TE[1][(a1 >> 8) & 0xff] ^                  \
                             CD_AES_TE[2][(a2 >> 16) & 0xff] ^ CD_AES_TE[3][a3 >> 24] ^ (k)[0];          \
        const uint32_t t1_ = CD_AES_TE[0][a1 & 0xff] ^ CD_AES_TE[1][(a2 >> 8) & 0xff] ^                  \
                             CD_AES_TE[2][(a3 >> 16) & 0xff] ^ CD_AES_TE[3][a0 >> 24] ^ (k)[1];          \
        const uint32_t t2_ = CD_AES_TE[0][a2 & 0xff] ^ CD_AES_TE[1][(a3 >> 8) & 0xff] ^                  \
                             CD_AES_TE[2][(a0 >> 16) & 0xff] ^ CD_AES_TE[3][a1 >> 24] ^ (k)[2];          \
        const uint32_t t3_ = CD_AES_TE[0][a3 & 0xff] ^ CD_AES_TE[1][(a0 >> 8) & 0xff] ^                  \
                             CD_AES_TE[2][(a1 >> 16) & 0xff] ^ CD_AES_TE[3][a2 >> 24] ^ (k)[3];          \
        a0 = t0_;                                                                                        \
        a1 = t1_;                                                                                        \
        a2 = t2_;                                                                                        \
        a3 = t3_;                                                                                        \
    } while (0)

static inline void aes_round(uint32_t w[4], const uint32_t k[4])
{
    uint32_t a0 = w[0], a1 = w[1], a2 = w[2], a3 = w[3];
    AES_ROUND_VARS(a0, a1, a2, a3, k);
    w[0] = a0;
    w[1] = a1;
    w[2] = a2;
    w[3] = a3;
}

/* AESENCLAST: as aes_round without MixColumns. */
static inline void aes_last(uint32_t w[4], const uint32_t k[4])
{
    uint32_t o[4];
    for (int c = 0; c < 4; c++)
        o[c] = ((uint32_t)CD_AES_SBOX[w[c] & 0xff] | (uint32_t)CD_AES_SBOX[(w[(c + 1) & 3] >> 8) & 0xff] << 8 |
                (uint32_t)CD_AES_SBOX[(w[(c + 2) & 3] >> 16) & 0xff] << 16 |
                (uint32_t)CD_AES_SBOX[w[(c + 3) & 3] >> 24] << 24) ^ k[c];
    memcpy(w, o, sizeof o);
}

/* Random123's ars4x32_R: v = C ^ K, rounds - 1 AESENC and one AESENCLAST with keys K + W, K + 2 W, ... */
static inline void ars_block(const ars_keys *rk, int rounds, uint32_t w[4])
{
    for (int c = 0; c < 4; c++)
        w[c] ^= rk->k[0][c];
    for (int r = 1; r < rounds; r++)
        aes_round(w, rk->k[r]);
    aes_last(w, rk->k[rounds]);
}

void cd_ars4x32(int rounds, const uint32_t *ctr, uint32_t *out, int64_t n, const uint32_t key[4])
{
    ars_keys rk;
    if (rounds < 1 || rounds > 10)
        return; /* the Python layer checks; nothing is written */
    ars_keys_init(&rk, rounds, key);
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        memcpy(w, ctr + 4 * i, sizeof w);
        ars_block(&rk, rounds, w);
        memcpy(out + 4 * i, w, sizeof w);
    }
}

static void ars_keys_of(ars_keys *rk, const cd_key *key)
{
    const uint32_t k[4] = {key->k0, key->k1, 0, 0};
    ars_keys_init(rk, CD_ARS_ROUNDS, k);
}

/* The four words of block b of the key's format; secondary: the tie draw (bit 31 of word 1 set).
 * rk: format v2's round keys (NULL for v1). */
static inline void block_words(const cd_key *key, const ars_keys *rk, uint64_t b, int secondary, cd_philox_ctr *w)
{
    cd_philox_ctr c = {{(uint32_t)b, (uint32_t)(b >> 32) | (secondary ? 0x80000000u : 0u), key->s0, key->s1}};
    if (rk != NULL) { /* format v2 */
        ars_block(rk, CD_ARS_ROUNDS, c.v);
        *w = c;
    } else {
        *w = cd_philox4x32_10(c, key->k0, key->k1);
    }
}

static uint8_t byte_ties(const cd_key *key, const ars_keys *rk, uint64_t b, uint8_t lt_bits, uint8_t eq_bits)
{
    if (key->tlo == 0 || eq_bits == 0)
        return lt_bits;
    cd_philox_ctr w;
    block_words(key, rk, b, 1, &w);
    for (int h = 0; h < 8; h++)
        if (((eq_bits >> h) & 1) && half_of(&w, h) < key->tlo)
            lt_bits |= (uint8_t)(1u << h);
    return lt_bits;
}

uint8_t cd_block_byte_ties(const cd_key *key, uint64_t b, uint8_t lt_bits, uint8_t eq_bits)
{
    ars_keys rk;
    if (key->tlo == 0 || eq_bits == 0)
        return lt_bits;
    if (key->fmt != CD_FORMAT_V2)
        return byte_ties(key, NULL, b, lt_bits, eq_bits);
    ars_keys_of(&rk, key);
    return byte_ties(key, &rk, b, lt_bits, eq_bits);
}

/* The keep byte of block b from its primary words w. */
static inline uint8_t byte_of_words(const cd_key *key, const ars_keys *rk, uint64_t b, const cd_philox_ctr *w)
{
    unsigned lt = 0, eq = 0;
    for (int h = 0; h < 8; h++) {
        uint32_t u = half_of(w, h);
        lt |= (unsigned)(u < key->thi) << h;
        eq |= (unsigned)(u == key->thi) << h;
    }
    return byte_ties(key, rk, b, (uint8_t)lt, (uint8_t)eq);
}

static inline uint8_t block_byte(const cd_key *key, const ars_keys *rk, uint64_t b)
{
    cd_philox_ctr w;
    block_words(key, rk, b, 0, &w);
    return byte_of_words(key, rk, b, &w);
}


/* Format v2's gen: ARS-7 on two blocks at a time with their states in scalars and the rounds
 * unrolled: 1.45x v1's portable forward at 64 Ki float32 on a quiet machine (1.23x with the other
 * core busy; one block at a time 1.66x and four in arrays 1.51x, both measured busy; precomputing
 * round 1's lookups of the words every block shares measured slower, 1.50x quiet). */
static void gen_v2_portable(const cd_key *key, const ars_keys *rk, uint64_t b0, int64_t n, uint8_t *out)
{
    int64_t j = 0;
    const uint32_t s0 = key->s0 ^ rk->k[0][2], s1 = key->s1 ^ rk->k[0][3];
    for (; j + 2 <= n; j += 2) {
        const uint64_t b = b0 + (uint64_t)j, c = b + 1;
        uint32_t a0 = (uint32_t)b ^ rk->k[0][0], a1 = (uint32_t)(b >> 32) ^ rk->k[0][1], a2 = s0, a3 = s1;
        uint32_t c0 = (uint32_t)c ^ rk->k[0][0], c1 = (uint32_t)(c >> 32) ^ rk->k[0][1], c2 = s0, c3 = s1;
#pragma GCC unroll 8
        for (int r = 1; r < CD_ARS_ROUNDS; r++) {
            AES_ROUND_VARS(a0, a1, a2, a3, rk->k[r]);
            AES_ROUND_VARS(c0, c1, c2, c3, rk->k[r]);
        }
        cd_philox_ctr w = {{a0, a1, a2, a3}}, x = {{c0, c1, c2, c3}};
        aes_last(w.v, rk->k[CD_ARS_ROUNDS]);
        aes_last(x.v, rk->k[CD_ARS_ROUNDS]);
        out[j] = byte_of_words(key, rk, b, &w);
        out[j + 1] = byte_of_words(key, rk, c, &x);
    }
    if (j < n)
        out[j] = block_byte(key, rk, b0 + (uint64_t)j);
}

uint8_t cd_block_byte(const cd_key *key, uint64_t b)
{
    ars_keys rk;
    if (key->fmt != CD_FORMAT_V2)
        return block_byte(key, NULL, b);
    ars_keys_of(&rk, key);
    return block_byte(key, &rk, b);
}

static void gen_portable(const cd_key *key, uint64_t b0, int64_t n, uint8_t *out)
{
    ars_keys rk;
    if (key->fmt == CD_FORMAT_V2) {
        ars_keys_of(&rk, key);
        gen_v2_portable(key, &rk, b0, n, out);
        return;
    }
    for (int64_t j = 0; j < n; j++)
        out[j] = block_byte(key, NULL, b0 + (uint64_t)j);
}

static void gen_rows_portable(const cd_key *key, uint64_t m0, uint64_t mstride, int64_t nrows, int64_t nbits,
                              uint8_t *out, int64_t ostride)
{
    for (int64_t r = 0; r < nrows; r++) {
        uint64_t m = m0 + (uint64_t)r * mstride, b = m >> 3;
        gen_portable(key, b, (int64_t)(((m + (uint64_t)nbits - 1) >> 3) - b + 1), out + r * ostride);
    }
}

/* Branchless select: the product's bits ANDed with all-ones (kept) or zero (dropped), so dropped
 * elements are +0.0 whatever x holds, and no branch depends on the random mask. */
#define KEEP_MASK(type, bits, k) ((type)0 - (type)(((bits)[(k) >> 3] >> ((k) & 7)) & 1))

static void apply_f32(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const float *x = (const float *)xv;
    float *y = (float *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++) {
        float v = x[j] * s;
        uint32_t u;
        memcpy(&u, &v, sizeof u);
        u &= KEEP_MASK(uint32_t, bits, phase + j);
        memcpy(&y[j], &u, sizeof u);
    }
}

static void apply_f64(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double s)
{
    const double *x = (const double *)xv;
    double *y = (double *)yv;
    for (int64_t j = 0; j < n; j++) {
        double v = x[j] * s;
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        u &= KEEP_MASK(uint64_t, bits, phase + j);
        memcpy(&y[j], &u, sizeof u);
    }
}

static void apply_f16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++)
        y[j] = (uint16_t)(cd_float_to_half(cd_half_to_float(x[j]) * s) & KEEP_MASK(uint16_t, bits, phase + j));
}

/* ---- bfloat16 ---- */

float cd_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t cd_float_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)     /* NaN: canonical quiet NaN with its sign */
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    u += 0x7fffu + ((u >> 16) & 1u);         /* round to nearest even; overflow carries to Inf */
    return (uint16_t)(u >> 16);
}

static void apply_bf16(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const uint16_t *x = (const uint16_t *)xv;
    uint16_t *y = (uint16_t *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++)
        y[j] = (uint16_t)(cd_float_to_bf16(cd_bf16_to_float(x[j]) * s) & KEEP_MASK(uint16_t, bits, phase + j));
}

void cd_scale_bf16(void *yv, int64_t n, double sd)
{
    uint16_t *y = (uint16_t *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++)
        y[j] = cd_float_to_bf16(cd_bf16_to_float(y[j]) * s);
}

static void scale_f32(void *yv, int64_t n, double sd)
{
    float *y = (float *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++)
        y[j] *= s;
}

static void scale_f64(void *yv, int64_t n, double s)
{
    double *y = (double *)yv;
    for (int64_t j = 0; j < n; j++)
        y[j] *= s;
}

static void scale_f16(void *yv, int64_t n, double sd)
{
    uint16_t *y = (uint16_t *)yv;
    const float s = (float)sd;
    for (int64_t j = 0; j < n; j++)
        y[j] = cd_float_to_half(cd_half_to_float(y[j]) * s);
}

const cd_kernels cd_kernels_portable = {
    "portable", gen_portable, {apply_f16, apply_f32, apply_f64, apply_bf16},
    {scale_f16, scale_f32, scale_f64, cd_scale_bf16}, {NULL, NULL, NULL, NULL}, gen_rows_portable,
    {NULL, NULL, NULL, NULL}};
