/* The driver: walks an n-d array in the memory order of its output (dimensions reversed, sorted and
 * merged), tracking each element's mask index m = mbase + sum idx[k] * mstrides[k]; splits the walk
 * into inner runs and thread chunks, generates the mask one L1-sized tile at a time and hands each
 * tile to the selected kernel set. Runs whose mask index steps by 1, 0 or -1 go straight to the
 * kernels; transposed layouts are worked in 2-D tiles (do_tile). One pass over the data, no
 * temporaries beyond tiles of mask bytes and a staging buffer on the stack. */
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

int cd_isa_for_format(int isa, int fmt)
{
    if (fmt != CD_FORMAT_V2)
        return isa;
#if defined(CD_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    /* libgcc's CPU model, read once at load: no CPUID per call (a CPUID under a hypervisor costs
     * a VM exit, measured at about 15 us a call here) */
    __builtin_cpu_init();
    if (isa == CD_ISA_AVX512 && !__builtin_cpu_supports("vaes"))
        isa = CD_ISA_AVX2;
    if (isa == CD_ISA_AVX2 && !__builtin_cpu_supports("aes"))
        isa = CD_ISA_PORTABLE;
    return isa;
#else
    return CD_ISA_PORTABLE;
#endif
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

cd_key cd_make_key(uint64_t seed, uint64_t stream, uint64_t T, int fmt)
{
    cd_key k;
    k.fmt = fmt == CD_FORMAT_V2 ? CD_FORMAT_V2 : CD_FORMAT_V1;
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
    int permuted;                  /* the walk is not C order (dimensions reversed or reordered) */
    int tiled;                     /* worked in tiles (do_tile) */
    int64_t nac, nbc, tile_units;  /* tiles along A and B; parallel_for elements per tile */
    int group;                     /* B's outer neighbour D continues B in the mask: tiles span both */
    int xtiled;                    /* x is read across (do_xtile): its contiguous dimension is nd - 2 */
    int64_t gsz;                   /* B's length, times D's with group */
} plan;

/* A tile of a transposed layout: CD_TA elements along the memory-inner dimension A (a multiple of
 * 8) by CD_TB along the mask-contiguous dimension B (rows of CD_TB bits span at most 16 blocks, one
 * AVX-512 gen step). 42 KiB of stack. */
#define CD_TA 1024
/* x staged for an out= of another layout: CD_XR rows of x's contiguous dimension by CD_XA. */
#define CD_XR 16
#define CD_XA 256
#define CD_TB 120

static int64_t itemsize_of(int dtype)
{
    return dtype == CD_F16 || dtype == CD_BF16 ? 2 : dtype == CD_F32 ? 4 : 8;
}

/* n elements of size es from src (stride ss bytes) to dst (stride ds bytes). A run read or written
 * backwards (stride -es, the other side contiguous) gets loops the compiler vectorizes. */
#define CD_REVERSE_COPY(T)                                                                            \
    do {                                                                                              \
        T *d_ = (T *)(void *)dst;                                                                     \
        const T *s_ = (const T *)(const void *)src;                                                   \
        if (ss < 0)                                                                                   \
            for (int64_t j = 0; j < n; j++)                                                           \
                d_[j] = s_[-j];                                                                       \
        else                                                                                          \
            for (int64_t j = 0; j < n; j++)                                                           \
                d_[-j] = s_[j];                                                                       \
    } while (0)
static void copy_strided(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, int64_t es)
{
    if ((ss == -es && ds == es) || (ss == es && ds == -es)) {   /* elements are aligned (checked in _core) */
        if (es == 2)
            CD_REVERSE_COPY(uint16_t);
        else if (es == 4)
            CD_REVERSE_COPY(uint32_t);
        else
            CD_REVERSE_COPY(uint64_t);
        return;
    }
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
    cd_apply_strided_fn fs = pl->kern->apply_strided[pl->op->dtype];
    if (fs != NULL && sx == sy && sx > es && sx <= 8 * es && sx % es == 0) {
        fs(x, y, sx / es, n, bits, phase, s);
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

/* reverse8[b] = the bits of byte b in reverse order */
#define CD_R2(n) n, n + 2 * 64, n + 1 * 64, n + 3 * 64
#define CD_R4(n) CD_R2(n), CD_R2(n + 2 * 16), CD_R2(n + 1 * 16), CD_R2(n + 3 * 16)
#define CD_R6(n) CD_R4(n), CD_R4(n + 2 * 4), CD_R4(n + 1 * 4), CD_R4(n + 3 * 4)
static const uint8_t reverse8[256] = {CD_R6(0), CD_R6(2), CD_R6(1), CD_R6(3)};
#undef CD_R2
#undef CD_R4
#undef CD_R6

/* out bit (phase + j) = keep(m - j) for j < n (n <= CD_TILE): a run whose mask index goes down.
 * Returns phase. */
static int fetch_reversed(const plan *pl, uint64_t m, int64_t n, uint8_t *out)
{
    uint8_t tmp[CD_TILE / 8 + 2];
    const uint64_t lo = m - (uint64_t)(n - 1);
    const uint8_t *src = fetch_bits(pl, lo, n, tmp);
    const int h = (int)(lo & 7);
    const int64_t nb = (n + 7) >> 3;
    /* aligned byte k of the n bits from lo, reversed, is out[nb - 1 - k]: the reversed bits then
     * start after 8 * nb - n padding bits */
    for (int64_t k = 0; k < nb - 1; k++)
        out[nb - 1 - k] = reverse8[(((unsigned)src[k] | (unsigned)src[k + 1] << 8) >> h) & 0xffu];
    unsigned v = (unsigned)src[nb - 1] >> h;
    if (h != 0 && ((h + n - 1) >> 3) > nb - 1)    /* the last bits go on in the next byte */
        v |= (unsigned)src[nb] << (8 - h);
    out[0] = reverse8[v & 0xffu];
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
static void do_run(const plan *pl, const char *x, int64_t sx, char *y, int64_t n, uint64_t m, int64_t i)
{
    const int nd = pl->ndim;
    const int64_t sy = pl->ys[nd - 1], ms = pl->ms[nd - 1];
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
        do_run(pl, x ? x + col * xi : NULL, xi, y ? y + col * yi : NULL, n, m + (uint64_t)col * mi, i);
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

/* Reverse dimension d of the plan: the same elements, walked from the other end. */
static void flip_dim(plan *pl, int d)
{
    const int64_t k = pl->shape[d] - 1;
    if (pl->x) pl->x += k * pl->xs[d];
    if (pl->y) pl->y += k * pl->ys[d];
    pl->mbase += (uint64_t)k * (uint64_t)pl->ms[d];
    pl->xs[d] = -pl->xs[d];
    pl->ys[d] = -pl->ys[d];
    pl->ms[d] = (int64_t)(0 - (uint64_t)pl->ms[d]);
}

static void swap64(int64_t *a, int i, int j)
{
    int64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static void swap_dims(plan *pl, int i, int j)
{
    swap64(pl->shape, i, j);
    swap64(pl->xs, i, j);
    swap64(pl->ys, i, j);
    swap64(pl->ms, i, j);
}

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

/* Which dimension of the plan is walked innermost matters for memory, not for the result (the mask
 * index travels with each element), so the plan walks y in memory order: dimensions with negative
 * y strides are reversed and the dimensions sorted by decreasing |y stride| (then |x stride|), as
 * NumPy's iterator does. Then dimensions that continue each other in x, y and the mask index merge,
 * and size-1 dimensions go. Without x (bits only) strides are taken as contiguous.
 *
 * Where the innermost dimension's mask stride is neither 0 nor +-1 (a transposed layout) but another
 * dimension's is +-1, that one becomes the second innermost and the array is worked in tiles
 * (do_tile). pl->permuted says whether the walk differs from C order. */
static void make_plan(plan *pl, const cd_op *op, int isa)
{
    pl->op = op;
    pl->kern = kernels_for(op->key != NULL ? cd_isa_for_format(isa, op->key->fmt) : isa);
    pl->itemsize = itemsize_of(op->dtype);
    pl->src = op->key == NULL ? SRC_BITS : op->key->mode == CD_MASK_PHILOX ? SRC_KEY : SRC_CONST;
    pl->keep_const = op->key != NULL && op->key->mode == CD_MASK_KEEP_ALL;
    pl->x = op->x;
    pl->y = op->y;
    pl->mbase = op->mbase;
    pl->permuted = 0;
    pl->tiled = 0;
    int64_t c = 1;
    int nd = 0;
    for (int d = op->ndim - 1; d >= 0; d--) {   /* C-order mask strides as the default */
        pl->ms[d] = c;
        c *= op->shape[d];
    }
    for (int d = 0; d < op->ndim; d++) {
        if (op->shape[d] == 1)
            continue;
        pl->shape[nd] = op->shape[d];
        pl->xs[nd] = op->x ? op->xstrides[d] : pl->itemsize;
        pl->ys[nd] = op->y ? op->ystrides[d] : pl->itemsize;
        pl->ms[nd] = op->mstrides ? op->mstrides[d] : pl->ms[d];
        nd++;
    }
    for (int d = 0; d < nd && op->x != NULL; d++)
        if (pl->ys[d] < 0) {
            flip_dim(pl, d);
            pl->permuted = 1;
        }
    for (int d = 1; d < nd; d++)                 /* insertion sort: stable, few dimensions */
        for (int e = d; e > 0; e--) {
            int64_t ya = abs64(pl->ys[e - 1]), yb = abs64(pl->ys[e]);
            if (ya > yb || (ya == yb && abs64(pl->xs[e - 1]) >= abs64(pl->xs[e])))
                break;
            swap_dims(pl, e - 1, e);
            pl->permuted = 1;
        }
    int md = 0;
    for (int d = 0; d < nd; d++) {
        const uint64_t n = (uint64_t)pl->shape[d];
        if (md > 0 && (uint64_t)pl->xs[md - 1] == (uint64_t)pl->xs[d] * n &&
            (uint64_t)pl->ys[md - 1] == (uint64_t)pl->ys[d] * n && (uint64_t)pl->ms[md - 1] == (uint64_t)pl->ms[d] * n) {
            pl->shape[md - 1] *= pl->shape[d];
            pl->xs[md - 1] = pl->xs[d];
            pl->ys[md - 1] = pl->ys[d];
            pl->ms[md - 1] = pl->ms[d];
            continue;
        }
        if (md != d) {
            pl->shape[md] = pl->shape[d];
            pl->xs[md] = pl->xs[d];
            pl->ys[md] = pl->ys[d];
            pl->ms[md] = pl->ms[d];
        }
        md++;
    }
    nd = md;
    if (nd == 0) {                           /* 0-d, or every dimension 1: one element */
        pl->shape[0] = 1;
        pl->xs[0] = pl->ys[0] = pl->itemsize;
        pl->ms[0] = 1;
        nd = 1;
    }
    pl->ndim = nd;
    const int64_t mi = pl->ms[nd - 1];
    if (pl->src != SRC_CONST && op->x != NULL && mi != 0 && mi != 1 && mi != -1) {
        for (int d = nd - 2; d >= 0; d--)
            if (pl->ms[d] == 1 || pl->ms[d] == -1) {
                if (pl->ms[d] == -1)
                    flip_dim(pl, d);
                for (int e = d; e < nd - 2; e++)
                    swap_dims(pl, e, e + 1);
                pl->tiled = 1;
                pl->permuted = 1;
                break;
            }
    }
    pl->xtiled = 0;
    if (!pl->tiled && op->x != NULL && nd >= 2 && abs64(pl->xs[nd - 1]) > 8 * pl->itemsize) {
        /* y's inner dimension strides across x, and x is contiguous along another dimension D (out=
         * of another layout than x): x is staged a block of D at a time, read in its own order */
        for (int d = nd - 2; d >= 0; d--)
            if (abs64(pl->xs[d]) == pl->itemsize) {
                if (pl->xs[d] < 0)
                    flip_dim(pl, d);
                for (int e = d; e < nd - 2; e++)
                    swap_dims(pl, e, e + 1);
                pl->xtiled = 1;
                pl->permuted = 1;
                pl->gsz = pl->shape[nd - 2];
                pl->nac = (pl->shape[nd - 1] + CD_XA - 1) / CD_XA;
                pl->nbc = (pl->gsz + CD_XR - 1) / CD_XR;
                const int64_t na = pl->shape[nd - 1] < CD_XA ? pl->shape[nd - 1] : CD_XA;
                const int64_t nr = pl->gsz < CD_XR ? pl->gsz : CD_XR;
                pl->tile_units = (na * nr + CD_TILE - 1) / CD_TILE * CD_TILE;
                break;
            }
    }
    pl->group = 0;
    if (pl->tiled && nd >= 3) {
        /* a dimension D whose mask stride is B's length continues B in the mask (a 3-D transpose):
         * the rows of a tile then run over D and B together, and are longer */
        const uint64_t nbb = (uint64_t)pl->shape[nd - 2];
        for (int d = nd - 3; d >= 0; d--)
            if ((uint64_t)pl->ms[d] == nbb || (uint64_t)pl->ms[d] == 0 - nbb) {
                if ((uint64_t)pl->ms[d] != nbb)
                    flip_dim(pl, d);
                for (int e = d; e < nd - 3; e++)
                    swap_dims(pl, e, e + 1);
                pl->group = 1;
                break;
            }
    }
    if (pl->tiled) {
        const int64_t gsz = pl->group ? pl->shape[nd - 3] * pl->shape[nd - 2] : pl->shape[nd - 2];
        const int64_t na = pl->shape[nd - 1] < CD_TA ? pl->shape[nd - 1] : CD_TA;
        const int64_t nb = gsz < CD_TB ? gsz : CD_TB;
        pl->gsz = gsz;
        pl->nac = (pl->shape[nd - 1] + CD_TA - 1) / CD_TA;
        pl->nbc = (gsz + CD_TB - 1) / CD_TB;
        pl->tile_units = (na * nb + CD_TILE - 1) / CD_TILE * CD_TILE;  /* elements, rounded up to whole CD_TILEs */
    }
}

/* byte r = row r (bit c = column c) -> byte c = column c (bit r = row r) */
static inline uint64_t transpose8(uint64_t v)
{
    uint64_t t;
    t = (v ^ (v >> 7)) & 0x00AA00AA00AA00AAull;
    v ^= t ^ (t << 7);
    t = (v ^ (v >> 14)) & 0x0000CCCC0000CCCCull;
    v ^= t ^ (t << 14);
    t = (v ^ (v >> 28)) & 0x00000000F0F0F0F0ull;
    v ^= t ^ (t << 28);
    return v;
}

/* Where outer index o (over the plan's first nouter dimensions, C order) starts: x, y, mask index. */
static void tile_origin(const plan *pl, int64_t o, int nouter, const char **x, char **y, uint64_t *m)
{
    *x = pl->x;
    *y = pl->y;
    *m = pl->mbase;
    for (int d = nouter - 1; d >= 0; d--) {
        int64_t k = o % pl->shape[d];
        o /= pl->shape[d];
        *x += k * pl->xs[d];
        *y += k * pl->ys[d];
        *m += (uint64_t)k * (uint64_t)pl->ms[d];
    }
}

/* w[r] byte j <-> w[j] byte r: an 8 x 8 byte matrix transposed in place. */
static inline void transpose_bytes8(uint64_t w[8])
{
    static const uint64_t mask[3] = {0x00FF00FF00FF00FFull, 0x0000FFFF0000FFFFull, 0x00000000FFFFFFFFull};
    for (int l = 0; l < 3; l++) {
        const int s = 1 << l;
        for (int r = 0; r < 8; r++)
            if (!(r & s)) {
                uint64_t t = ((w[r] >> (8 * s)) ^ w[r + s]) & mask[l];
                w[r + s] ^= t;
                w[r] ^= t << (8 * s);
            }
    }
}

/* Tile t of a tiled plan: up to CD_TA elements along the innermost dimension A (memory order) by
 * CD_TB along B (mask stride 1). The mask of each A index is up to CD_TB consecutive mask indices:
 * they are generated for all rows at once (or read from the bits), the bit matrix is transposed 8 x 8
 * at a time, and each B index's run along A is applied in memory order; where the tile is one
 * contiguous block of memory (A whole and B following it), in a single apply call. */
static void do_tile(const plan *pl, int64_t t)
{
    const int nd = pl->ndim;
    const int64_t xa = pl->xs[nd - 1], ya = pl->ys[nd - 1], xb = pl->xs[nd - 2], yb = pl->ys[nd - 2];
    const int64_t ia = t % pl->nac, ib = t / pl->nac % pl->nbc;
    int64_t o = t / pl->nac / pl->nbc;
    const char *x;
    char *y;
    uint64_t m;
    tile_origin(pl, o, nd - 2 - pl->group, &x, &y, &m);
    const int64_t a0 = ia * CD_TA, b0 = ib * CD_TB;
    const int64_t na = pl->shape[nd - 1] - a0 < CD_TA ? pl->shape[nd - 1] - a0 : CD_TA;
    const int64_t nb = pl->gsz - b0 < CD_TB ? pl->gsz - b0 : CD_TB;
    const uint64_t msa = (uint64_t)pl->ms[nd - 1];
    /* B index g of the tile's row is D index g / nbb, B index g % nbb (group), or just g */
    const int64_t nbb = pl->shape[nd - 2];
    const int64_t xd = pl->group ? pl->xs[nd - 3] : 0, yd = pl->group ? pl->ys[nd - 3] : 0;
    int64_t gd = b0 / nbb, gb = b0 % nbb;
    x += a0 * xa;
    y += a0 * ya;
    m += (uint64_t)a0 * msa + (uint64_t)b0;

    uint8_t rows[CD_TA][CD_TB / 8 + 10];
    const uint8_t *rp[CD_TA];
    int ph[CD_TA];
    /* rows that follow each other in the mask (msa == nb) are one range: generated in one go */
    const int joined = pl->src == SRC_KEY && msa == (uint64_t)nb;
    if (joined)
        pl->kern->gen(pl->op->key, m >> 3, (int64_t)(((m + (uint64_t)(na * nb) - 1) >> 3) - (m >> 3) + 1), rows[0]);
    else if (pl->src == SRC_KEY)
        pl->kern->gen_rows(pl->op->key, m, msa, na, nb, rows[0], CD_TB / 8 + 10);
    for (int64_t a = 0; a < na; a++) {
        uint64_t mr = m + (uint64_t)a * msa;
        rp[a] = joined ? rows[0] + ((mr >> 3) - (m >> 3)) : pl->src == SRC_KEY ? rows[a] : pl->op->bits_in + (mr >> 3);
        ph[a] = (int)(mr & 7);
    }
    /* cols + b * cs: the bits of B index b along A */
    uint8_t cols[CD_TB * (CD_TA / 8)];
    const int64_t cs = (na + 7) >> 3, nbytes = (nb + 7) >> 3, last = (nb - 1) >> 3;
    for (int64_t a8 = 0; a8 < na; a8 += 8) {
        const int nr = na - a8 < 8 ? (int)(na - a8) : 8;
        uint8_t *col = cols + (a8 >> 3);
        int64_t k = 0;
        if (nr == 8) {  /* whole groups of 8 rows, before each row's last byte: no edge to watch */
            const uint8_t *p0 = rp[a8], *p1 = rp[a8 + 1], *p2 = rp[a8 + 2], *p3 = rp[a8 + 3];
            const uint8_t *p4 = rp[a8 + 4], *p5 = rp[a8 + 5], *p6 = rp[a8 + 6], *p7 = rp[a8 + 7];
            const int h0 = ph[a8], h1 = ph[a8 + 1], h2 = ph[a8 + 2], h3 = ph[a8 + 3];
            const int h4 = ph[a8 + 4], h5 = ph[a8 + 5], h6 = ph[a8 + 6], h7 = ph[a8 + 7];
            const uint8_t *pr[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
            const int hr[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
            /* 8 bytes of each row: 8 x 8 blocks at once. Generated rows have 8 bytes of slack, so
             * the last group may read past the row (those columns are not stored); rows in the
             * caller's bits stop before their last byte. */
            const int64_t kend = pl->src == SRC_KEY ? nbytes : last - 7;
            for (; k < kend; k += 8) {
                uint64_t w[8];
                for (int r = 0; r < 8; r++) {
                    uint64_t lo8;
                    memcpy(&lo8, pr[r] + k, 8);  /* little-endian: byte j = the row's byte k + j */
                    w[r] = hr[r] ? lo8 >> hr[r] | (uint64_t)pr[r][k + 8] << (64 - hr[r]) : lo8;
                }
                transpose_bytes8(w);         /* w[j] byte r = row r's byte k + j */
                for (int j = 0; j < 8; j++) {
                    uint64_t v = transpose8(w[j]);
                    const int64_t b = 8 * (k + j);
                    if (b + 8 <= nb)
                        for (int c = 0; c < 8; c++)
                            col[(b + c) * cs] = (uint8_t)(v >> (8 * c));
                    else
                        for (int c = 0; b + c < nb; c++)
                            col[(b + c) * cs] = (uint8_t)(v >> (8 * c));
                }
            }
            if (k > nbytes)
                k = nbytes;
#define ROWBYTE(p, h, r) ((uint64_t)((((unsigned)(p)[k] | (unsigned)(p)[k + 1] << 8) >> (h)) & 0xffu) << (8 * (r)))
            for (; k < last; k++) {
                uint64_t v = ROWBYTE(p0, h0, 0) | ROWBYTE(p1, h1, 1) | ROWBYTE(p2, h2, 2) | ROWBYTE(p3, h3, 3) |
                             ROWBYTE(p4, h4, 4) | ROWBYTE(p5, h5, 5) | ROWBYTE(p6, h6, 6) | ROWBYTE(p7, h7, 7);
                v = transpose8(v);
                for (int c = 0; c < 8; c++)
                    col[(8 * k + c) * cs] = (uint8_t)(v >> (8 * c));
            }
#undef ROWBYTE
        }
        for (; k < nbytes; k++) {
            uint64_t v = 0;
            for (int r = 0; r < nr; r++) {
                const uint8_t *p = rp[a8 + r];
                const int h = ph[a8 + r];
                unsigned byte = (unsigned)p[k] >> h;
                if (h != 0 && ((h + nb - 1) >> 3) > k)  /* the row's bits go on in p[k + 1] */
                    byte |= (unsigned)p[k + 1] << (8 - h);
                v |= (uint64_t)(byte & 0xffu) << (8 * r);
            }
            v = transpose8(v);
            for (int c = 0; c < 8 && 8 * k + c < nb; c++)
                col[(8 * k + c) * cs] = (uint8_t)(v >> (8 * c));
        }
    }
    if (!pl->group && (na & 7) == 0 && xb == na * xa && yb == na * ya) {
        apply_run(pl, x + b0 * xb, xa, y + b0 * yb, ya, na * nb, cols, 0);
    } else if (!pl->group && xb == pl->itemsize && abs64(xa) > 8 * pl->itemsize) {
        /* x is contiguous along B (out= of another layout than x): stage blocks of x read in its
         * own order, CD_XR B indices by CD_XA A indices at a time */
        const int64_t es = pl->itemsize;
        _Alignas(64) char buf[CD_XR * CD_XA * 8];
        for (int64_t a1 = 0; a1 < na; a1 += CD_XA) {
            const int64_t n1 = na - a1 < CD_XA ? na - a1 : CD_XA;
            for (int64_t b1 = 0; b1 < nb; b1 += CD_XR) {
                const int64_t m1 = nb - b1 < CD_XR ? nb - b1 : CD_XR;
                const char *xs = x + a1 * xa + (b0 + b1) * xb;
                for (int64_t a = 0; a < n1; a++)
                    copy_strided(buf + a * es, n1 * es, xs + a * xa, es, m1, es);
                for (int64_t b = 0; b < m1; b++)
                    apply_run(pl, buf + b * n1 * es, es, y + a1 * ya + (b0 + b1 + b) * yb, ya, n1,
                              cols + (b1 + b) * cs + (a1 >> 3), 0);
            }
        }
    } else
        for (int64_t b = 0; b < nb; b++) {
            apply_run(pl, x + gd * xd + gb * xb, xa, y + gd * yd + gb * yb, ya, na, cols + b * cs, 0);
            if (++gb == nbb) {
                gb = 0;
                gd++;
            }
        }
}


#include "parallel_impl.h"


static void run_chunk(const void *ctx, int64_t i0, int64_t i1)
{
    do_range((const plan *)ctx, i0, i1);
}

/* Chunk [i0, i1) of the units of a tiled plan: the tiles whose first unit lies in it. */
/* Tile t of an x-staged plan: CD_XA elements along y's inner dimension A by CD_XR along D, where x
 * is contiguous. x's block is copied into a buffer in y's order (reading x in its own memory
 * order), then each row along A is one run from the buffer. */
static void do_xtile(const plan *pl, int64_t t)
{
    const int nd = pl->ndim;
    const int64_t es = pl->itemsize;
    const int64_t ia = t % pl->nac, ir = t / pl->nac % pl->nbc;
    int64_t o = t / pl->nac / pl->nbc;
    const char *x;
    char *y;
    uint64_t m;
    tile_origin(pl, o, nd - 2, &x, &y, &m);
    const int64_t a0 = ia * CD_XA, r0 = ir * CD_XR;
    const int64_t na = pl->shape[nd - 1] - a0 < CD_XA ? pl->shape[nd - 1] - a0 : CD_XA;
    const int64_t nr = pl->gsz - r0 < CD_XR ? pl->gsz - r0 : CD_XR;
    const int64_t xa = pl->xs[nd - 1], xr = pl->xs[nd - 2]; /* xr == es */
    x += a0 * xa + r0 * xr;
    y += a0 * pl->ys[nd - 1] + r0 * pl->ys[nd - 2];
    m += (uint64_t)a0 * (uint64_t)pl->ms[nd - 1] + (uint64_t)r0 * (uint64_t)pl->ms[nd - 2];
    _Alignas(64) char buf[CD_XR * CD_XA * 8];
    for (int64_t a = 0; a < na; a++)            /* x's nr contiguous elements at each a */
        copy_strided(buf + a * es, na * es, x + a * xa, es, nr, es);
    for (int64_t r = 0; r < nr; r++)
        do_run(pl, buf + r * na * es, es, y + r * pl->ys[nd - 2], na, m + (uint64_t)r * (uint64_t)pl->ms[nd - 2], 0);
}

static void xtile_chunk(const void *ctx, int64_t i0, int64_t i1)
{
    const plan *pl = (const plan *)ctx;
    const int64_t u = pl->tile_units;
    for (int64_t t = (i0 + u - 1) / u; t < (i1 + u - 1) / u; t++)
        do_xtile(pl, t);
}

static void tile_chunk(const void *ctx, int64_t i0, int64_t i1)
{
    const plan *pl = (const plan *)ctx;
    const int64_t u = pl->tile_units;
    for (int64_t t = (i0 + u - 1) / u; t < (i1 + u - 1) / u; t++)
        do_tile(pl, t);
}

int cd_run(const cd_op *op, const cd_exec *ex)
{
    plan pl;
    make_plan(&pl, op, ex->isa);
    int64_t n = 1;
    for (int d = 0; d < pl.ndim; d++)
        n *= pl.shape[d];
    if (n == 0)
        return 0;
    if (op->bits_out != NULL && pl.permuted && pl.src == SRC_KEY) {
        /* bits_out is in C order: generate it first, then apply from it in memory order */
        cd_gen_bits(op->key, op->mbase, op->bits_out, n, ex);
        cd_op from_bits = *op;
        from_bits.key = NULL;
        from_bits.bits_in = op->bits_out;
        from_bits.mbase = 0;
        from_bits.mstrides = NULL;
        from_bits.bits_out = NULL;
        return cd_run(&from_bits, ex);
    }
    if (op->bits_out != NULL && pl.src == SRC_CONST)
        memset(op->bits_out, pl.keep_const ? 0xff : 0x00, (size_t)((n + 7) >> 3));
    if (pl.xtiled)
        parallel_for(pl.nac * pl.nbc * (n / pl.shape[pl.ndim - 1] / pl.gsz) * pl.tile_units, ex, xtile_chunk, &pl);
    else if (pl.tiled)
        parallel_for(pl.nac * pl.nbc * (n / pl.shape[pl.ndim - 1] / pl.gsz) * pl.tile_units, ex,
                     tile_chunk, &pl);
    else if (op->x != NULL || pl.src != SRC_CONST)
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
