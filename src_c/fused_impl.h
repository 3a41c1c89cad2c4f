/* The fused forward kernels (cd_fused_fn in kernels.h), shared by the SIMD kernel files.
 *
 * Included at the end of kernels_avx2.c and kernels_avx512.c, so it is compiled with each file's
 * ISA flags. Before including it, a file defines its gen_ctx, gen_ctx_init, gen_loop, format v2's
 * ars_ctx, ars_ctx_init and ars_loop (src_c/ars_impl.h), its apply_f16/f32/f64/bf16, and
 *   fused_gen_chunk(gen_ctx *c, const cd_key *key, uint64_t b, uint8_t *bytes, int ties,
 *                   const char *pf, size_t es)
 * which writes the keep bytes of the 64 blocks b .. b + 63 and prefetches the 512 elements of
 * element size es at pf (NULL: none) while its Philox rounds run.
 *
 * In chunks of 64 blocks (512 elements): gen into a 64-byte buffer, then apply. Prefetch: over a run
 * of at least CD_PF_MIN_BYTES (beyond the L2 cache), each chunk first prefetches the next chunk into
 * L1 and the one three chunks on into L2. During a chunk's gen no load is issued, and on the
 * 2-vCPU Intel Xeon (KVM) this project is measured on, the hardware prefetchers alone then left a
 * 128 Mi float32 in-place pass at 1.47x the x *= s floor (format v2; 2.1x for v1); with these
 * prefetches 0.90-0.94x (v1: 1.31-1.42x). Into L1 alone it was 1.03-1.11x at 128 Mi, into L2
 * alone 0.98x at 128 Mi but 1.10-1.15x at 1-16 Mi; below L2's size (64 Ki) any prefetch made the
 * call 25% slower, hence the threshold. (An earlier scheme, prefetching some chunks ahead during
 * v1's Philox rounds, was slower than none on an AMD EPYC: 1.40-1.45x against 1.11-1.18x.)
 *
 * Stores: out of place (y != x, no bit mask asked) and over a run of at least CD_NT_MIN_BYTES, the
 * AVX-512 set writes y with non-temporal stores (fused_body_nt): the output lines are then not read
 * first. That took a 64 Mi float32
 * out-of-place pass from 2.7x to 1.4x the in-place floor (one thread). In place they are slower
 * (1.24-1.32x against 1.11-1.15x: the lines were just read into the cache), and below the size of
 * the caches the output is better left in them, so both keep ordinary stores. */
#ifndef CDROPOUT_FUSED_IMPL_H
#define CDROPOUT_FUSED_IMPL_H

#include <stdint.h>
#include <string.h>

#define FUSED_CHUNK 512
#ifndef CD_PF_MIN_BYTES
#define CD_PF_MIN_BYTES ((size_t)4 << 20)
#endif
#ifndef CD_NT_MIN_BYTES
#define CD_NT_MIN_BYTES ((size_t)16 << 20)
#endif

typedef void (*apply_fn)(const void *, void *, int64_t, const uint8_t *, int, double);

#if defined(__AVX512F__)
/* 16 (8) mask bits from bit q of b; reads only bytes that hold some of them. */
static inline uint32_t bits16_at(const uint8_t *b, int64_t q)
{
    const uint8_t *p = b + (q >> 3);
    const int r = (int)(q & 7);
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if (r)
        v |= (uint32_t)p[2] << 16;
    return (v >> r) & 0xffffu;
}

static inline uint32_t bits8_at(const uint8_t *b, int64_t q)
{
    const uint8_t *p = b + (q >> 3);
    const int r = (int)(q & 7);
    uint32_t v = p[0];
    if (r)
        v |= (uint32_t)p[1] << 8;
    return (v >> r) & 0xffu;
}

/* apply_f32 / apply_f64 with non-temporal stores: ordinary apply up to the first 64-byte line of y,
 * streamed whole vectors, ordinary apply for the tail. Same values, same bits. */
static void apply_f32_nt(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const float *x = (const float *)xv;
    float *y = (float *)yv;
    int64_t h = (int64_t)(((64 - ((uintptr_t)y & 63)) & 63) / 4), j;
    if (h > n)
        h = n;
    if (h > 0)
        apply_f32(x, y, h, bits, phase, sd);
    const __m512 s = _mm512_set1_ps((float)sd);
    for (j = h; j + 16 <= n; j += 16)
        _mm512_stream_ps(y + j, _mm512_maskz_mul_ps((__mmask16)bits16_at(bits, phase + j), _mm512_loadu_ps(x + j), s));
    if (j < n)
        apply_f32(x + j, y + j, n - j, bits + ((phase + j) >> 3), (int)((phase + j) & 7), sd);
}

static void apply_f64_nt(const void *xv, void *yv, int64_t n, const uint8_t *bits, int phase, double sd)
{
    const double *x = (const double *)xv;
    double *y = (double *)yv;
    int64_t h = (int64_t)(((64 - ((uintptr_t)y & 63)) & 63) / 8), j;
    if (h > n)
        h = n;
    if (h > 0)
        apply_f64(x, y, h, bits, phase, sd);
    const __m512d s = _mm512_set1_pd(sd);
    for (j = h; j + 8 <= n; j += 8)
        _mm512_stream_pd(y + j, _mm512_maskz_mul_pd((__mmask8)bits8_at(bits, phase + j), _mm512_loadu_pd(x + j), s));
    if (j < n)
        apply_f64(x + j, y + j, n - j, bits + ((phase + j) >> 3), (int)((phase + j) & 7), sd);
}
#define FUSED_NT_F32 apply_f32_nt
#define FUSED_NT_F64 apply_f64_nt
#else
#define FUSED_NT_F32 NULL
#define FUSED_NT_F64 NULL
#endif

static inline __attribute__((always_inline)) void fused_body(const cd_key *key, uint64_t e0, const char *x,
                                                             char *y, int64_t n, double s, uint8_t *bits_out,
                                                             size_t es, apply_fn apply, int ties, int fmt)
{
    const int prefetch = (size_t)n * es >= CD_PF_MIN_BYTES;
    gen_ctx c;
    ars_ctx a;
    if (fmt == CD_FORMAT_V2)
        ars_ctx_init(&a, key);
    else
        gen_ctx_init(&c, key);
    uint8_t buf[64];
    int ph = (int)(e0 & 7);
    uint64_t b = e0 >> 3;
    const uint64_t bfirst = b;
    for (int64_t j = 0; j < n;) {
        int64_t cnt = FUSED_CHUNK - ph;
        if (cnt > n - j)
            cnt = n - j;
        int64_t nb = (ph + cnt + 7) >> 3;
        if (prefetch && j + FUSED_CHUNK < n) {
            /* the next chunk into L1, and the one three chunks on into L2 */
            const char *pf = x + (size_t)(j + FUSED_CHUNK) * es;
            for (size_t l = 0; l < FUSED_CHUNK * es; l += 64)
                __builtin_prefetch(pf + l, 0, 3);
            if (j + 3 * FUSED_CHUNK < n)
                for (size_t l = 0; l < FUSED_CHUNK * es; l += 64)
                    __builtin_prefetch(pf + 2 * FUSED_CHUNK * es + l, 0, 1);
        }
        uint8_t *bytes = bits_out != NULL ? bits_out + (b - bfirst) : buf;
        if (fmt == CD_FORMAT_V2)
            ars_loop(&a, key, b, nb, bytes, ties);
        else if (nb == 64)
            fused_gen_chunk(&c, key, b, bytes, ties, NULL, es);
        else
            gen_loop(&c, key, b, nb, bytes, ties);
        apply(x + (size_t)j * es, y + (size_t)j * es, cnt, bytes, ph, s);
        j += cnt;
        b += (uint64_t)nb;
        ph = 0;
    }
}

#ifndef FUSED_NT_WINDOW
#define FUSED_NT_WINDOW 1024 /* elements per streamed window: one extra block of gen per 128 */
#endif

/* The streamed form of fused_body (no bits_out): windows start at 64-byte lines of y, so every line
 * of y is written whole, by non-temporal stores, except a partial first and last line. (Windows
 * that followed the mask's 512-element chunks instead left a partial line, written with ordinary
 * stores and so read from memory first, in every chunk of an array not aligned to 64 bytes: 2.4x
 * slower.) Each window's mask bytes are generated for its own blocks. */
static inline __attribute__((always_inline)) void fused_body_nt(const cd_key *key, uint64_t e0, const char *x,
                                                                char *y, int64_t n, double s, size_t es,
                                                                apply_fn apply_nt, int ties, int fmt)
{
    gen_ctx c;
    ars_ctx a;
    if (fmt == CD_FORMAT_V2)
        ars_ctx_init(&a, key);
    else
        gen_ctx_init(&c, key);
    uint8_t bytes[FUSED_NT_WINDOW / 8 + 1];
    int64_t j = 0;
    while (j < n) {
        int64_t cnt = FUSED_NT_WINDOW;
        if (j == 0 && ((uintptr_t)y & 63) != 0)
            cnt = (int64_t)((64 - ((uintptr_t)y & 63)) / es); /* up to the first line of y */
        if (cnt > n - j)
            cnt = n - j;
        const uint64_t g = e0 + (uint64_t)j, b = g >> 3;
        const int64_t nb = (int64_t)(((g + (uint64_t)cnt - 1) >> 3) - b + 1);
        if (fmt == CD_FORMAT_V2)
            ars_loop(&a, key, b, nb, bytes, ties);
        else
            gen_loop(&c, key, b, nb, bytes, ties);
        apply_nt(x + (size_t)j * es, y + (size_t)j * es, cnt, bytes, (int)(g & 7), s);
        j += cnt;
    }
}

static inline __attribute__((always_inline)) void fused_fmt(const cd_key *key, uint64_t e0, const void *xv,
                                                            void *yv, int64_t n, double s, uint8_t *bits_out,
                                                            size_t es, apply_fn apply, apply_fn apply_nt, int fmt)
{
    const char *x = (const char *)xv;
    char *y = (char *)yv;
    if (n <= 0)
        return;
    /* keep-all and drop-all never reach a fused kernel: the driver handles them */
    const int streamed = apply_nt != NULL && x != y && bits_out == NULL && ((uintptr_t)y & (es - 1)) == 0 &&
                         (size_t)n * es >= CD_NT_MIN_BYTES;
    if (streamed && (((uintptr_t)y - (e0 & 7) * es) & 63) == 0) {
        /* the 512-element chunks after the first start at lines of y: stream them as they come */
        if (key->tlo != 0)
            fused_body(key, e0, x, y, n, s, NULL, es, apply_nt, 1, fmt);
        else
            fused_body(key, e0, x, y, n, s, NULL, es, apply_nt, 0, fmt);
        _mm_sfence(); /* streamed stores are weakly ordered: make them visible before returning */
        return;
    }
    if (streamed) {
        if (key->tlo != 0)
            fused_body_nt(key, e0, x, y, n, s, es, apply_nt, 1, fmt);
        else
            fused_body_nt(key, e0, x, y, n, s, es, apply_nt, 0, fmt);
        _mm_sfence(); /* streamed stores are weakly ordered: make them visible before returning */
        return;
    }
    if (key->tlo != 0) {
        fused_body(key, e0, x, y, n, s, bits_out, es, apply, 1, fmt);
    } else {
        fused_body(key, e0, x, y, n, s, bits_out, es, apply, 0, fmt);
    }
}

static inline __attribute__((always_inline)) void fused(const cd_key *key, uint64_t e0, const void *xv, void *yv,
                                                        int64_t n, double s, uint8_t *bits_out, size_t es,
                                                        apply_fn apply, apply_fn apply_nt)
{
    if (key->fmt == CD_FORMAT_V2)
        fused_fmt(key, e0, xv, yv, n, s, bits_out, es, apply, apply_nt, CD_FORMAT_V2);
    else
        fused_fmt(key, e0, xv, yv, n, s, bits_out, es, apply, apply_nt, CD_FORMAT_V1);
}

static void fused_f16(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 2, apply_f16, NULL);
}

static void fused_f32(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 4, apply_f32, FUSED_NT_F32);
}

static void fused_f64(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                      uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 8, apply_f64, FUSED_NT_F64);
}

static void fused_bf16(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                       uint8_t *bits_out)
{
    fused(key, e0, x, y, n, s, bits_out, 2, apply_bf16, NULL);
}

#endif
