/* The portable kernel set: plain C11, any CPU. It is also the reference that every SIMD
 * kernel must match bit for bit, and it holds the scalar helpers the SIMD files share. */
#include <string.h>

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

uint8_t cd_block_byte_ties(const cd_key *key, uint64_t b, uint8_t lt_bits, uint8_t eq_bits)
{
    if (key->tlo == 0 || eq_bits == 0)
        return lt_bits;
    cd_philox_ctr c = {{(uint32_t)b, (uint32_t)(b >> 32) | 0x80000000u, key->s0, key->s1}};
    cd_philox_ctr w = cd_philox4x32_10(c, key->k0, key->k1);
    for (int h = 0; h < 8; h++)
        if (((eq_bits >> h) & 1) && half_of(&w, h) < key->tlo)
            lt_bits |= (uint8_t)(1u << h);
    return lt_bits;
}

uint8_t cd_block_byte(const cd_key *key, uint64_t b)
{
    cd_philox_ctr c = {{(uint32_t)b, (uint32_t)(b >> 32), key->s0, key->s1}};
    cd_philox_ctr w = cd_philox4x32_10(c, key->k0, key->k1);
    unsigned lt = 0, eq = 0;
    for (int h = 0; h < 8; h++) {
        uint32_t u = half_of(&w, h);
        lt |= (unsigned)(u < key->thi) << h;
        eq |= (unsigned)(u == key->thi) << h;
    }
    return cd_block_byte_ties(key, b, (uint8_t)lt, (uint8_t)eq);
}

static void gen_portable(const cd_key *key, uint64_t b0, int64_t n, uint8_t *out)
{
    for (int64_t j = 0; j < n; j++)
        out[j] = cd_block_byte(key, b0 + (uint64_t)j);
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
