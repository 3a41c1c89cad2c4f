/* The driver: splits an n-d array into contiguous inner runs and thread chunks, generates the
 * mask one L1-sized tile at a time and hands each tile to the selected kernel set. One pass
 * over the data, no temporaries beyond a tile of mask bytes on the stack. */
#include <string.h>

#include "cdropout.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_OPENMP) && defined(__unix__)
/* GNU libgomp keeps its thread pool across fork() but the child has none of its threads: a
 * parallel region in a child of a process that had started a team waits forever. So a process
 * remembers whether it started a team, and a fork child of such a process runs every call on
 * the calling thread (same results: the mask does not depend on the thread count). */
#include <pthread.h>
#include <signal.h>
#define CD_FORK_GUARD 1
static volatile sig_atomic_t team_started = 0;
static volatile sig_atomic_t pool_lost = 0;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void)
{
    if (team_started)
        pool_lost = 1;
}
static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}
#endif

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

int cd_default_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
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

/* Where a call's mask bits come from: the key's Philox stream, packed bits, or a constant
 * (keep-all T >= 2^32 and drop-all T == 0, decided here once for every kernel set). */
enum { SRC_KEY, SRC_BITS, SRC_CONST };

/* Elements of a strided run staged through a contiguous buffer per apply call. */
#define CD_STAGE 512

typedef struct {
    const cd_op *op;
    const cd_kernels *kern;
    int src;
    int keep_const;                /* SRC_CONST: 1 keep all, 0 drop all */
    int ndim;                      /* after merging dimensions; >= 1 */
    int64_t shape[CD_MAX_DIMS];
    int64_t xs[CD_MAX_DIMS], ys[CD_MAX_DIMS]; /* bytes */
    int64_t ms[CD_MAX_DIMS];       /* mask index strides (mod 2^64) */
    const char *x;                 /* the element at index 0 */
    char *y;
    uint64_t mbase;                /* its mask index */
    int64_t itemsize;
} plan;

static int64_t itemsize_of(int dtype)
{
    return dtype == CD_F16 ? 2 : dtype == CD_F32 ? 4 : 8;
}

/* n elements of size es from src (stride ss bytes) to dst (stride ds bytes). */
static void copy_strided(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, int64_t es)
{
    switch (es) {
    case 2:
        for (int64_t j = 0; j < n; j++)
            memcpy(dst + j * ds, src + j * ss, 2);
        break;
    case 4:
        for (int64_t j = 0; j < n; j++)
            memcpy(dst + j * ds, src + j * ss, 4);
        break;
    default:
        for (int64_t j = 0; j < n; j++)
            memcpy(dst + j * ds, src + j * ss, 8);
        break;
    }
}

/* y[j * sy] = bit(phase + j) ? x[j * sx] * s : +0 for j < n: the kernel's contiguous apply, through a
 * staging buffer on the side (or both sides) that is not contiguous. */
static void apply_run(const plan *pl, const char *x, int64_t sx, char *y, int64_t sy, int64_t n,
                      const uint8_t *bits, int phase)
{
    cd_apply_fn f = pl->kern->apply[pl->op->dtype];
    const int64_t es = pl->itemsize;
    const double s = pl->op->scale;
    if (sx == es && sy == es) {
        f(x, y, n, bits, phase, s);
        return;
    }
    _Alignas(64) char buf[CD_STAGE * 8];
    for (int64_t t = 0; t < n; t += CD_STAGE) {
        int64_t k = n - t < CD_STAGE ? n - t : CD_STAGE;
        int64_t p = phase + t;
        const char *xs = x + t * sx;
        char *ys = y + t * sy;
        if (sx != es) {
            copy_strided(buf, es, xs, sx, k, es);
            xs = buf;
        }
        f(xs, sy == es ? ys : buf, k, bits + (p >> 3), (int)(p & 7), s);
        if (sy != es)
            copy_strided(ys, sy, buf, es, k, es);
    }
}

/* One mask bit, for runs that use a single one (broadcast) and the general fallback. */
static int mask_bit(const plan *pl, uint64_t m)
{
    if (pl->src == SRC_CONST)
        return pl->keep_const;
    const uint8_t *bytes = pl->src == SRC_BITS ? pl->op->bits_in + (m >> 3) : NULL;
    uint8_t byte = bytes != NULL ? *bytes : cd_block_byte(pl->op->key, m >> 3);
    return (byte >> (m & 7)) & 1;
}

/* The keep bits of mask indices m .. m + n - 1 (n <= CD_TILE) at bit phase m & 7 of the result:
 * bits_in itself, or generated into tmp (CD_TILE / 8 + 2 bytes). */
static const uint8_t *fetch_bits(const plan *pl, uint64_t m, int64_t n, uint8_t *tmp)
{
    if (pl->src == SRC_BITS)
        return pl->op->bits_in + (m >> 3);
    uint64_t b0 = m >> 3;
    pl->kern->gen(pl->op->key, b0, (int64_t)(((m + (uint64_t)n - 1) >> 3) - b0 + 1), tmp);
    return tmp;
}

static inline uint8_t reverse8(unsigned b)
{
    b = ((b & 0xF0u) >> 4) | ((b & 0x0Fu) << 4);
    b = ((b & 0xCCu) >> 2) | ((b & 0x33u) << 2);
    b = ((b & 0xAAu) >> 1) | ((b & 0x55u) << 1);
    return (uint8_t)b;
}

/* out bit (phase + j) = keep(m - j) for j < n (n <= CD_TILE): a run whose mask index goes down.
 * Returns phase. */
static int fetch_reversed(const plan *pl, uint64_t m, int64_t n, uint8_t *out)
{
    uint8_t tmp[CD_TILE / 8 + 2], aligned[CD_TILE / 8 + 2];
    const uint64_t lo = m - (uint64_t)(n - 1);
    const uint8_t *src = fetch_bits(pl, lo, n, tmp);
    const int64_t nb = (n + 7) >> 3;
    if (lo & 7) {
        copy_bits(aligned, 0, src, (int)(lo & 7), n);
        src = aligned;
    }
    /* the nb bytes reversed hold the n bits reversed after 8 * nb - n leading padding bits */
    for (int64_t k = 0; k < nb; k++)
        out[k] = reverse8(src[nb - 1 - k]);
    return (int)(8 * nb - n);
}

/* y = keep ? x * s : 0 with one mask bit for all n elements (a broadcast run, or keep-all/drop-all). */
static void apply_const(const plan *pl, const char *x, int64_t sx, char *y, int64_t sy, int64_t n, int keep)
{
    uint8_t c[CD_TILE / 8];
    memset(c, keep ? 0xff : 0x00, sizeof c);
    for (int64_t t = 0; t < n; t += CD_TILE)
        apply_run(pl, x + t * sx, sx, y + t * sy, sy, n - t < CD_TILE ? n - t : CD_TILE, c, 0);
}

/* A run whose mask indices go up by one: m, m + 1, ...; i is the C-order index of its first
 * element (where bits_out is written, which only happens here). */
static void run_forward(const plan *pl, const char *x, int64_t sx, char *y, int64_t sy, int64_t n, uint64_t m,
                        int64_t i)
{
    const cd_op *op = pl->op;
    if (pl->src == SRC_BITS) {
        apply_run(pl, x, sx, y, sy, n, op->bits_in + (m >> 3), (int)(m & 7));
        return;
    }
    /* The set's fused kernel, where it has one. It writes whole mask bytes of global blocks, which
     * are the output's bytes when mbase % 8 == 0; bits it writes beyond this run belong to the
     * next run (same values: the mask depends on the index only) or are padding, cleared by
     * cd_run. Chunks of threads start at multiples of 8 elements, so no byte is shared. */
    cd_fused_fn fused = pl->kern->fused[op->dtype];
    const int contiguous = sx == pl->itemsize && sy == pl->itemsize;
    if (fused != NULL && contiguous && x != NULL && (op->bits_out == NULL || (op->mbase & 7) == 0)) {
        fused(op->key, m, x, y, n, op->scale, op->bits_out != NULL ? op->bits_out + (i >> 3) : NULL);
        return;
    }
    uint8_t buf[CD_TILE / 8 + 2];
    int64_t t = 0;
    while (t < n) {
        uint64_t e0 = m + (uint64_t)t;
        int64_t k = CD_TILE - (int64_t)(e0 % CD_TILE);
        if (k > n - t)
            k = n - t;
        int phase = (int)(e0 & 7);
        fetch_bits(pl, e0, k, buf);
        if (x != NULL)
            apply_run(pl, x + t * sx, sx, y + t * sy, sy, k, buf, phase);
        if (op->bits_out != NULL)
            copy_bits(op->bits_out, (uint64_t)(i + t), buf, phase, k);
        t += k;
    }
}

/* One inner run of n elements: the first at x, y with mask index m and C-order index i. */
static void do_run(const plan *pl, const char *x, char *y, int64_t n, uint64_t m, int64_t i)
{
    const int nd = pl->ndim;
    const int64_t sx = pl->xs[nd - 1], sy = pl->ys[nd - 1], ms = pl->ms[nd - 1];
    if (pl->src == SRC_CONST || ms == 0) {
        if (x != NULL)
            apply_const(pl, x, sx, y, sy, n, mask_bit(pl, m));
        return;
    }
    if (ms == 1) {
        run_forward(pl, x, sx, y, sy, n, m, i);
        return;
    }
    uint8_t buf[CD_TILE / 8 + 2];
    for (int64_t t = 0; t < n; t += CD_TILE) {
        int64_t k = n - t < CD_TILE ? n - t : CD_TILE;
        uint64_t mt = m + (uint64_t)t * (uint64_t)ms;
        int phase = 0;
        if (ms == -1) {
            phase = fetch_reversed(pl, mt, k, buf);
        } else {                  /* any other stride: bit by bit */
            memset(buf, 0, (size_t)((k + 7) >> 3));
            for (int64_t j = 0; j < k; j++)
                buf[j >> 3] |= (uint8_t)(mask_bit(pl, mt + (uint64_t)j * (uint64_t)ms) << (j & 7));
        }
        apply_run(pl, x + t * sx, sx, y + t * sy, sy, k, buf, phase);
    }
}

/* Elements [i0, i1) in the plan's order. */
static void do_range(const plan *pl, int64_t i0, int64_t i1)
{
    const int nd = pl->ndim;
    const int64_t inner = pl->shape[nd - 1];
    int64_t idx[CD_MAX_DIMS];
    int64_t r = i0 / inner, col = i0 % inner;
    const char *x = pl->x;
    char *y = pl->y;
    uint64_t m = pl->mbase;
    for (int d = nd - 2; d >= 0; d--) {      /* unravel the row number */
        idx[d] = r % pl->shape[d];
        r /= pl->shape[d];
        if (x) x += idx[d] * pl->xs[d];
        if (y) y += idx[d] * pl->ys[d];
        m += (uint64_t)idx[d] * (uint64_t)pl->ms[d];
    }
    const int64_t xi = pl->xs[nd - 1], yi = pl->ys[nd - 1];
    const uint64_t mi = (uint64_t)pl->ms[nd - 1];
    int64_t i = i0;
    while (i < i1) {
        int64_t n = inner - col;
        if (n > i1 - i)
            n = i1 - i;
        do_run(pl, x ? x + col * xi : NULL, y ? y + col * yi : NULL, n, m + (uint64_t)col * mi, i);
        i += n;
        col = 0;
        for (int d = nd - 2; d >= 0; d--) {  /* next row: odometer step */
            if (x) x += pl->xs[d];
            if (y) y += pl->ys[d];
            m += (uint64_t)pl->ms[d];
            if (++idx[d] < pl->shape[d])
                break;
            if (x) x -= pl->shape[d] * pl->xs[d];
            if (y) y -= pl->shape[d] * pl->ys[d];
            m -= (uint64_t)pl->shape[d] * (uint64_t)pl->ms[d];
            idx[d] = 0;
        }
    }
}

/* Drop size-1 dimensions and merge each dimension into its outer neighbour where x, y and the
 * mask index all continue across the boundary; the order of elements is unchanged. Without x
 * (bits only) strides are taken as contiguous. */
static void make_plan(plan *pl, const cd_op *op, int isa)
{
    pl->op = op;
    pl->kern = kernels_for(isa);
    pl->itemsize = itemsize_of(op->dtype);
    pl->src = op->key == NULL ? SRC_BITS : op->key->mode == CD_MASK_PHILOX ? SRC_KEY : SRC_CONST;
    pl->keep_const = op->key != NULL && op->key->mode == CD_MASK_KEEP_ALL;
    pl->x = op->x;
    pl->y = op->y;
    pl->mbase = op->mbase;
    int64_t cms[CD_MAX_DIMS];                /* C-order mask strides */
    int64_t c = 1;
    for (int d = op->ndim - 1; d >= 0; d--) {
        cms[d] = c;
        c *= op->shape[d];
    }
    int nd = 0;
    for (int d = 0; d < op->ndim; d++) {
        const int64_t n = op->shape[d];
        int64_t xs = op->x ? op->xstrides[d] : pl->itemsize;
        int64_t ys = op->y ? op->ystrides[d] : pl->itemsize;
        int64_t ms = op->mstrides ? op->mstrides[d] : cms[d];
        if (n == 1)
            continue;
        if (nd > 0 && (uint64_t)pl->xs[nd - 1] == (uint64_t)xs * (uint64_t)n &&
            (uint64_t)pl->ys[nd - 1] == (uint64_t)ys * (uint64_t)n &&
            (uint64_t)pl->ms[nd - 1] == (uint64_t)ms * (uint64_t)n) {
            pl->shape[nd - 1] *= n;
            pl->xs[nd - 1] = xs;
            pl->ys[nd - 1] = ys;
            pl->ms[nd - 1] = ms;
            continue;
        }
        pl->shape[nd] = n;
        pl->xs[nd] = xs;
        pl->ys[nd] = ys;
        pl->ms[nd] = ms;
        nd++;
    }
    if (nd == 0) {                           /* 0-d, or every dimension 1: one element */
        pl->shape[0] = 1;
        pl->xs[0] = pl->ys[0] = pl->itemsize;
        pl->ms[0] = 1;
        nd = 1;
    }
    pl->ndim = nd;
}


typedef void (*chunk_fn)(const void *ctx, int64_t i0, int64_t i1);

/* Split [0, n) over at most ex->nthreads threads, each with at least ex->min_per_thread
 * elements, in chunks aligned to CD_TILE (so no two threads share a byte of a packed mask), and
 * call fn once per chunk. An array too small for two chunks runs on the calling thread without
 * waking the OpenMP pool. */
static void parallel_for(int64_t n, const cd_exec *ex, chunk_fn fn, const void *ctx)
{
    const int64_t tiles = (n + CD_TILE - 1) / CD_TILE;
    const int64_t min = ex->min_per_thread > CD_TILE ? ex->min_per_thread : CD_TILE;
    int64_t nt = ex->nthreads > 0 ? ex->nthreads : cd_default_threads();
    if (nt > n / min)
        nt = n / min;
#ifdef CD_FORK_GUARD
    pthread_once(&atfork_once, register_atfork);
    if (pool_lost)
        nt = 1;
    else if (nt > 1)
        team_started = 1;
#endif
    if (nt <= 1) {
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads((int)nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    for (int64_t t = 0, T = nt; t < T; t++) {
#endif
        int64_t i0 = tiles * t / T * CD_TILE, i1 = tiles * (t + 1) / T * CD_TILE;
        if (i1 > n)
            i1 = n;
        if (i0 < i1)
            fn(ctx, i0, i1);
    }
}

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
    if (op->bits_out != NULL && pl.src == SRC_CONST)
        memset(op->bits_out, pl.keep_const ? 0xff : 0x00, (size_t)((n + 7) >> 3));
    if (op->x != NULL || pl.src != SRC_CONST)
        parallel_for(n, ex, run_chunk, &pl);
    if (op->bits_out != NULL && (n & 7))     /* padding bits of the last byte are 0 */
        op->bits_out[n >> 3] &= (uint8_t)((1u << (n & 7)) - 1u);
    return 0;
}

void cd_gen_bits(const cd_key *key, uint64_t offset, uint8_t *out, int64_t n, const cd_exec *ex)
{
    const int64_t shape[1] = {n};
    cd_op op;
    memset(&op, 0, sizeof op);
    op.dtype = CD_F32;
    op.ndim = 1;
    op.shape = shape;
    op.key = key;
    op.mbase = offset;
    op.bits_out = out;
    cd_run(&op, ex);
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
