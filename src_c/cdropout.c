/* The driver: splits an n-d array into contiguous inner runs and thread chunks, generates the
 * mask one L1-sized tile at a time and hands each tile to the selected kernel set. One pass
 * over the data, no temporaries beyond a tile of mask bytes on the stack. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime(CLOCK_THREAD_CPUTIME_ID): src_c/parallel_impl.h */
#include <string.h>

#include "cdropout.h"

/* A tile is 1024 elements = 128 blocks = 128 mask bytes; tiles start at global indices that are
 * multiples of CD_TILE (after a shorter first tile), so SIMD generators see whole groups. */
#define CD_TILE 1024

static const cd_kernels *kernels_for(int isa)
{
#if defined(CD_HAVE_X86_KERNELS)
    if (isa == CD_ISA_AVX512)
        return &cd_kernels_avx512;
    if (isa == CD_ISA_AVX2)
        return &cd_kernels_avx2;
#endif
    (void)isa;
    return &cd_kernels_portable;
}

#if defined(CD_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

/* F16C (CPUID.1:ECX bit 29); __builtin_cpu_supports has no portable name for it. */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

int cd_best_isa(void)
{
#if defined(CD_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!has_f16c() || !__builtin_cpu_supports("bmi2"))
        return CD_ISA_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return CD_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return CD_ISA_AVX2;
#endif
    return CD_ISA_PORTABLE;
}

const char *cd_isa_name(int isa)
{
    return kernels_for(isa)->name;
}

int cd_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T)
{
    cd_key k;
    k.k0 = (uint32_t)seed;
    k.k1 = (uint32_t)(seed >> 32);
    k.s0 = (uint32_t)stream;
    k.s1 = (uint32_t)(stream >> 32);
    k.thi = (uint32_t)((T >> 16) & 0xffffu);
    k.tlo = (uint32_t)(T & 0xffffu);
    k.mode = T >= ((uint64_t)1 << 32) ? CD_MASK_KEEP_ALL : T == 0 ? CD_MASK_DROP_ALL : CD_MASK_PHILOX;
    return k;
}

/* Bit s of src to bit d of dst, leaving dst's other bits as they are. */
static inline void copy_bit(uint8_t *dst, uint64_t d, const uint8_t *src, uint64_t s)
{
    uint8_t bit = (uint8_t)(1u << (d & 7));
    dst[d >> 3] = (uint8_t)((src[s >> 3] >> (s & 7)) & 1 ? dst[d >> 3] | bit : dst[d >> 3] & ~bit);
}

/* Copy m bits from src (starting at bit p) to dst (starting at bit q), leaving the other bits of
 * dst's edge bytes as they are. */
static void copy_bits(uint8_t *dst, uint64_t q, const uint8_t *src, int p, int64_t m)
{
    int64_t k = 0;
    for (; k < m && ((q + (uint64_t)k) & 7); k++)     /* up to the first whole byte of dst */
        copy_bit(dst, q + (uint64_t)k, src, (uint64_t)p + (uint64_t)k);
    uint8_t *d8 = dst + ((q + (uint64_t)k) >> 3);
    for (; k + 8 <= m; k += 8) {
        uint64_t s = (uint64_t)p + (uint64_t)k;
        unsigned r = (unsigned)(s & 7), v = src[s >> 3] >> r;
        if (r)
            v |= (unsigned)src[(s >> 3) + 1] << (8 - r);
        *d8++ = (uint8_t)v;
    }
    for (; k < m; k++)                                  /* the last partial byte */
        copy_bit(dst, q + (uint64_t)k, src, (uint64_t)p + (uint64_t)k);
}

typedef struct {
    const cd_op *op;
    const cd_kernels *kern;
    int ndim;                      /* after merging dimensions; >= 1 */
    int64_t shape[CD_MAX_DIMS];
    int64_t xs[CD_MAX_DIMS], ys[CD_MAX_DIMS];
    int64_t itemsize;
} plan;

/* Strided fallback for inner runs that are not contiguous. */
static void apply_strided(const plan *pl, const char *x, int64_t sx, char *y, int64_t sy, int64_t n,
                          const uint8_t *bits, int phase)
{
    cd_apply_fn f = pl->kern->apply[pl->op->dtype];
    for (int64_t j = 0; j < n; j++) {
        int64_t k = phase + j;
        f(x + j * sx, y + j * sy, 1, bits + (k >> 3), (int)(k & 7), pl->op->scale);
    }
}

/* One inner run of n elements whose first element has C-order index i. */
static void do_run(const plan *pl, const char *x, char *y, int64_t n, int64_t i)
{
    const cd_op *op = pl->op;
    const int64_t sx = pl->xs[pl->ndim - 1], sy = pl->ys[pl->ndim - 1];
    const int contiguous = sx == pl->itemsize && sy == pl->itemsize;
    cd_apply_fn apply = pl->kern->apply[op->dtype];

    if (op->key == NULL) {        /* mask given as packed bits, indexed by i */
        const uint8_t *bits = op->bits_in + (i >> 3);
        if (contiguous)
            apply(x, y, n, bits, (int)(i & 7), op->scale);
        else
            apply_strided(pl, x, sx, y, sy, n, bits, (int)(i & 7));
        return;
    }
    /* The set's fused kernel, where it has one. It writes whole mask bytes of global blocks, which
     * are the output's bytes when offset % 8 == 0; bits it writes beyond this run belong to the
     * next run (same values: the mask depends on the index only) or are padding, cleared by
     * cd_run. Chunks of threads start at multiples of 8 elements, so no byte is shared. */
    cd_fused_fn fused = pl->kern->fused[op->dtype];
    if (fused != NULL && contiguous && x != NULL && (op->bits_out == NULL || (op->offset & 7) == 0)) {
        fused(op->key, op->offset + (uint64_t)i, x, y, n, op->scale,
              op->bits_out != NULL ? op->bits_out + (i >> 3) : NULL);
        return;
    }
    uint8_t buf[CD_TILE / 8 + 2];
    int64_t t = 0;
    while (t < n) {
        uint64_t e0 = op->offset + (uint64_t)(i + t);
        int64_t m = CD_TILE - (int64_t)(e0 % CD_TILE);
        if (m > n - t)
            m = n - t;
        uint64_t b0 = e0 >> 3;
        int64_t nb = (int64_t)(((e0 + (uint64_t)m - 1) >> 3) - b0 + 1);
        int phase = (int)(e0 & 7);
        pl->kern->gen(op->key, b0, nb, buf);
        if (x != NULL) {
            if (contiguous)
                apply(x + t * sx, y + t * sy, m, buf, phase, op->scale);
            else
                apply_strided(pl, x + t * sx, sx, y + t * sy, sy, m, buf, phase);
        }
        if (op->bits_out != NULL)
            copy_bits(op->bits_out, (uint64_t)(i + t), buf, phase, m);
        t += m;
    }
}

/* Elements [i0, i1) in C order. */
static void do_range(const plan *pl, int64_t i0, int64_t i1)
{
    const int nd = pl->ndim;
    const int64_t inner = pl->shape[nd - 1];
    int64_t idx[CD_MAX_DIMS];
    int64_t r = i0 / inner, col = i0 % inner;
    const char *x = pl->op->x;
    char *y = pl->op->y;
    for (int d = nd - 2; d >= 0; d--) {      /* unravel the row number */
        idx[d] = r % pl->shape[d];
        r /= pl->shape[d];
        if (x) x += idx[d] * pl->xs[d];
        if (y) y += idx[d] * pl->ys[d];
    }
    int64_t i = i0;
    while (i < i1) {
        int64_t n = inner - col;
        if (n > i1 - i)
            n = i1 - i;
        do_run(pl, x ? x + col * pl->xs[nd - 1] : NULL, y ? y + col * pl->ys[nd - 1] : NULL, n, i);
        i += n;
        col = 0;
        for (int d = nd - 2; d >= 0; d--) {  /* next row: odometer step */
            if (x) x += pl->xs[d];
            if (y) y += pl->ys[d];
            if (++idx[d] < pl->shape[d])
                break;
            if (x) x -= pl->shape[d] * pl->xs[d];
            if (y) y -= pl->shape[d] * pl->ys[d];
            idx[d] = 0;
        }
    }
}

static int64_t itemsize_of(int dtype)
{
    return dtype == CD_F16 ? 2 : dtype == CD_F32 ? 4 : 8;
}

/* Merge dimensions that are contiguous with their inner neighbour in both x and y and drop
 * size-1 dimensions; the C order of elements is unchanged. Without x (bits only) the array is
 * one flat run. */
static void make_plan(plan *pl, const cd_op *op, int isa)
{
    pl->op = op;
    pl->kern = kernels_for(isa);
    pl->itemsize = itemsize_of(op->dtype);
    int nd = 0;
    for (int d = 0; d < op->ndim; d++) {
        int64_t xs = op->x ? op->xstrides[d] : pl->itemsize;
        int64_t ys = op->y ? op->ystrides[d] : pl->itemsize;
        if (op->shape[d] == 1)
            continue;
        if (nd > 0 && (op->x == NULL ||
                       (pl->xs[nd - 1] == xs * op->shape[d] && pl->ys[nd - 1] == ys * op->shape[d]))) {
            pl->shape[nd - 1] *= op->shape[d];
            pl->xs[nd - 1] = xs;
            pl->ys[nd - 1] = ys;
            continue;
        }
        pl->shape[nd] = op->shape[d];
        pl->xs[nd] = xs;
        pl->ys[nd] = ys;
        nd++;
    }
    if (nd == 0) {                           /* 0-d, or every dimension 1: one element */
        pl->shape[0] = 1;
        pl->xs[0] = pl->ys[0] = pl->itemsize;
        nd = 1;
    }
    pl->ndim = nd;
}

#include "parallel_impl.h"

static void run_chunk(const void *ctx, int64_t i0, int64_t i1)
{
    do_range((const plan *)ctx, i0, i1);
}

int cd_run(const cd_op *op, const cd_exec *ex)
{
    plan pl;
    make_plan(&pl, op, ex->isa);
    int64_t n = 1;
    for (int d = 0; d < pl.ndim; d++)
        n *= pl.shape[d];
    parallel_for(n, ex, run_chunk, &pl);
    if (op->bits_out != NULL && (n & 7))     /* padding bits of the last byte are 0 */
        op->bits_out[n >> 3] &= (uint8_t)((1u << (n & 7)) - 1u);
    return 0;
}

typedef struct {
    cd_scale_fn fn;
    char *y;
    int64_t itemsize;
    double s;
} scale_ctx;

static void scale_chunk(const void *ctx, int64_t i0, int64_t i1)
{
    const scale_ctx *c = (const scale_ctx *)ctx;
    c->fn(c->y + i0 * c->itemsize, i1 - i0, c->s);
}

void cd_scale(int dtype, void *y, int64_t n, double s, const cd_exec *ex)
{
    scale_ctx c = {kernels_for(ex->isa)->scale[dtype], (char *)y, itemsize_of(dtype), s};
    parallel_for(n, ex, scale_chunk, &c);
}
