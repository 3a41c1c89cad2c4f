/* Standalone check + micro-benchmark of the kernel sets (not part of the build).
 *
 *   sh src_c/tests/build_check.sh && ./build/check_kernels [--quick] [--isa=NAME]
 *   ./build/check_kernels --no-check --bench [--big=ELEMENTS] [--threads=N] [--isa=NAME]
 *
 * Every ISA the CPU has is compared bit for bit against the portable kernels: gen (random keys,
 * thresholds with Tlo == 0 and != 0, ties forced at chosen blocks and halves, b0 near 2^32 and 2^61,
 * many n), apply and scale for all dtypes (n, phase 0..7, unaligned and in-place, NaN/Inf/-0.0,
 * subnormal and overflowing inputs). Inputs end and start next to PROT_NONE pages, and outputs are
 * surrounded by canaries, so a kernel that touches memory outside [0, n) fails. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../kernels.h"
#include "../philox.h"

static const cd_kernels *isas[CD_NISA];
/* whether the CPU has what set i's format v2 gen needs (VAES for avx512, AES-NI for avx2): the
 * library's driver moves v2 calls to a lower set otherwise (cd_isa_for_format) */
static int v2_ok[CD_NISA];
#define SKIP_V2(key, i) ((key)->fmt == CD_FORMAT_V2 && !v2_ok[i])

typedef cd_fused_fn fused_fn;
static fused_fn fused_of(int isa, int dt)
{
    return isas[isa] ? isas[isa]->fused[dt] : NULL;
}

/* Reference fused forward: portable gen + portable apply. */
static void fused_ref(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, int dt, double s,
                      uint8_t *bits)
{
    int ph = (int)(e0 & 7);
    int64_t nb = n > 0 ? (ph + n + 7) / 8 : 0;
    cd_kernels_portable.gen(key, e0 >> 3, nb, bits);
    cd_kernels_portable.apply[dt](x, y, n, bits, ph, s);
}
static const char *only_isa = NULL;
static long failures = 0, checks = 0;

/* ---- small deterministic RNG for the test inputs ---- */
static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static uint32_t rnd32(void) { return (uint32_t)(rnd64() >> 32); }

/* ---- guarded buffers: [PROT_NONE page][... data ending at a page boundary][PROT_NONE page] ---- */
typedef struct {
    unsigned char *base;
    size_t len;
} region;

static region guard_alloc(size_t bytes)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (bytes + pg - 1) / pg * pg;
    if (body == 0)
        body = pg;
    region r;
    r.len = body + 2 * pg;
    r.base = mmap(NULL, r.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r.base == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    mprotect(r.base, pg, PROT_NONE);
    mprotect(r.base + pg + body, pg, PROT_NONE);
    return r;
}
/* pointer to `bytes` bytes that end exactly at the upper guard page */
static void *guard_end(region r, size_t bytes)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return r.base + r.len - pg - bytes;
}
/* pointer to data starting exactly at the lower guard page */
static void *guard_start(region r)
{
    return r.base + sysconf(_SC_PAGESIZE);
}
static void guard_free(region r) { munmap(r.base, r.len); }

#define FAIL(...)                                                                                      \
    do {                                                                                               \
        if (failures++ < 30) {                                                                         \
            fprintf(stderr, "FAIL: ");                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                              \
            fputc('\n', stderr);                                                                       \
        }                                                                                              \
    } while (0)

/* ---- gen ---- */
static uint32_t half_u(const cd_philox_ctr *w, int h) { return (w->v[h >> 1] >> (16 * (h & 1))) & 0xffffu; }

static void check_gen_one(const cd_key *key, uint64_t b0, int64_t n, const char *what)
{
    static uint8_t ref[1 << 17], got[(1 << 17) + 64];
    if (n > (1 << 17))
        n = 1 << 17;
    cd_kernels_portable.gen(key, b0, n, ref);
    for (int i = 1; i < CD_NISA; i++) {
        if (!isas[i] || SKIP_V2(key, i))
            continue;
        memset(got, 0xA5, (size_t)n + 64);
        isas[i]->gen(key, b0, n, got);
        checks++;
        if (memcmp(got, ref, (size_t)n) != 0) {
            int64_t j = 0;
            while (got[j] == ref[j])
                j++;
            FAIL("gen %s %s: b0=%llu n=%lld thi=%u tlo=%u mode=%d: byte %lld got %02x want %02x", isas[i]->name,
                 what, (unsigned long long)b0, (long long)n, key->thi, key->tlo, key->mode, (long long)j, got[j],
                 ref[j]);
        }
        for (int k = 0; k < 64; k++)
            if (got[n + k] != 0xA5) {
                FAIL("gen %s %s: wrote past n=%lld", isas[i]->name, what, (long long)n);
                break;
            }
    }
}

static cd_key random_key(void)
{
    cd_key k;
    uint64_t seed = rnd64(), stream = (rnd32() & 1) ? rnd64() : (rnd64() & 7);
    k.k0 = (uint32_t)seed;
    k.k1 = (uint32_t)(seed >> 32);
    k.s0 = (uint32_t)stream;
    k.s1 = (uint32_t)(stream >> 32);
    uint32_t T;
    do
        T = rnd32();
    while (T == 0);
    switch (rnd32() % 6) {
    case 0: T &= 0xffff0000u; if (!T) T = 0x10000u; break;   /* Tlo == 0 */
    case 1: T = 0x80000000u; break;                         /* p = 0.5 */
    case 2: T = (T & 0xffffu) | 0x00010000u * (rnd32() & 1); if (!T) T = 1; break;   /* thi 0 or 1 */
    case 3: T |= 0xffff0000u; if (T == 0xffff0000u) T++; break;                        /* thi = 0xffff */
    default: break;
    }
    k.thi = T >> 16;
    k.tlo = T & 0xffffu;
    k.mode = CD_MASK_PHILOX;
    k.fmt = (rnd32() & 1) ? CD_FORMAT_V2 : CD_FORMAT_V1;
    return k;
}

/* Random123's known answers for ars4x32 (tests/kat_vectors, 10 rounds): the portable ARS that
 * every format v2 path is compared with. */
static void test_ars_kat(void)
{
    static const uint32_t kat[3][12] = {
        {0, 0, 0, 0, 0, 0, 0, 0, 0x8d73ee19u, 0x506401efu, 0x13c2dbe4u, 0x0cbe9c0du},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0x082efa98u, 0xec4e6c89u,
         0xa516e7d6u, 0x8357ad74u, 0x5b59b3ecu, 0x8763fff3u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0, 0, 0xbb3743b1u,
         0x9f635551u, 0xecbc87fcu, 0xa19478a9u},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        cd_ars4x32(10, kat[i], out, 1, kat[i] + 4);
        checks++;
        if (memcmp(out, kat[i] + 8, sizeof out) != 0)
            FAIL("ars4x32-10 known answer %d: got %08x %08x %08x %08x", i, out[0], out[1], out[2], out[3]);
    }
}

static void test_gen(int quick)
{
    static const int64_t ns[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 127, 128, 129, 1000};
    const int nn = (int)(sizeof ns / sizeof ns[0]);
    int rounds = quick ? 20 : 200;
    for (int r = 0; r < rounds; r++) {
        cd_key key = random_key();
        uint64_t bases[] = {0,
                            rnd64() >> 4,
                            (1ull << 32) - 1 - (rnd32() % 200),
                            (1ull << 32) - 16,
                            (1ull << 33) - 5 - (rnd32() % 40),
                            ((uint64_t)rnd32() << 32) - (rnd32() % 300),
                            (1ull << 61) - 1000 - (rnd32() % 100)};
        for (size_t bi = 0; bi < sizeof bases / sizeof bases[0]; bi++)
            for (int i = 0; i < nn; i++) {
                int64_t n = ns[i];
                uint64_t b0 = bases[bi];
                if (b0 + (uint64_t)n > (1ull << 61))
                    b0 = (1ull << 61) - (uint64_t)n;
                check_gen_one(&key, b0, n, "random");
            }
        /* the last blocks before 2^61 exactly */
        check_gen_one(&key, (1ull << 61) - 129, 129, "end");
    }
    /* keep-all and drop-all never reach the kernels: the driver handles them (cdropout.c) */
    /* forced ties: Thi = the half h of block bt, so that block has a tie at h (and maybe others) */
    int tie_rounds = quick ? 100 : 1500;
    for (int r = 0; r < tie_rounds; r++) {
        cd_key key = random_key();
        uint64_t bt = (r % 3 == 0) ? (1ull << 32) - 8 + (rnd32() % 16) : (r % 3 == 1) ? (rnd64() >> 3) : rnd32() % 4096;
        if (bt > (1ull << 61) - 200)
            bt = (1ull << 61) - 200;
        cd_philox_ctr c = {{(uint32_t)bt, (uint32_t)(bt >> 32), key.s0, key.s1}};
        cd_philox_ctr w = cd_philox4x32_10(c, key.k0, key.k1);
        int h = (int)(rnd32() & 7);
        key.thi = half_u(&w, h);
        key.tlo = (r % 4 == 0) ? 0 : (rnd32() & 0xffffu);
        if (key.tlo == 0 && key.thi == 0)
            key.tlo = 1; /* T must be > 0 */
        /* the tie block at every lane position of a step, inside and beyond n */
        int64_t off = rnd32() % 80;
        int64_t n = ns[rnd32() % nn];
        uint64_t b0 = bt >= (uint64_t)off ? bt - (uint64_t)off : 0;
        check_gen_one(&key, b0, n, "tie");
        check_gen_one(&key, b0, off + 1 + (rnd32() % 70), "tie2");
    }
    /* many natural ties: 2^16 blocks = 2^19 elements with Tlo != 0 (about 8 ties each) */
    int big_rounds = quick ? 4 : 24;
    for (int r = 0; r < big_rounds; r++) {
        cd_key key = random_key();
        if (key.tlo == 0)
            key.tlo = 0x1234;
        uint64_t b0 = (r & 1) ? (1ull << 32) - 30000 : rnd64() >> 3;
        check_gen_one(&key, b0, (1 << 16) + (r % 17), "big");
    }
}

/* ---- apply / scale ---- */
static size_t esize(int dt) { return dt == CD_F16 || dt == CD_BF16 ? 2 : dt == CD_F32 ? 4 : 8; }
static const char *dname(int dt) { return dt == CD_F16 ? "f16" : dt == CD_F32 ? "f32" : dt == CD_BF16 ? "bf16" : "f64"; }

static void fill_special(int dt, void *p, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        uint32_t r = rnd32();
        int kind = r % 16;
        if (dt == CD_F64) {
            double v;
            uint64_t u = rnd64();
            switch (kind) {
            case 0: v = NAN; break;
            case 1: u = 0x7ff0000000000001ull | (u & 0x8007ffffffffffffull); memcpy(&v, &u, 8); break; /* sNaN */
            case 2: v = (r & 32) ? INFINITY : -INFINITY; break;
            case 3: v = -0.0; break;
            case 4: v = 0.0; break;
            case 5: u &= 0x800fffffffffffffull; memcpy(&v, &u, 8); break; /* subnormal */
            case 6: v = (r & 32) ? 1.7e308 : -1.7e308; break;
            default: memcpy(&v, &u, 8); if (isnan(v)) v = 1.5; break;
            }
            ((double *)p)[j] = v;
        } else if (dt == CD_F32) {
            float v;
            uint32_t u = rnd32();
            switch (kind) {
            case 0: v = NAN; break;
            case 1: u = 0x7f800001u | (u & 0x803fffffu); memcpy(&v, &u, 4); break;
            case 2: v = (r & 32) ? INFINITY : -INFINITY; break;
            case 3: v = -0.0f; break;
            case 4: v = 0.0f; break;
            case 5: u &= 0x807fffffu; memcpy(&v, &u, 4); break;
            case 6: v = (r & 32) ? 3.3e38f : -3.3e38f; break;
            default: memcpy(&v, &u, 4); if (isnan(v)) v = 1.5f; break;
            }
            ((float *)p)[j] = v;
        } else {
            uint16_t u = (uint16_t)rnd32();
            switch (kind) {
            case 0: u = 0x7e00; break;
            case 1: u = (uint16_t)(0x7c01u | (u & 0x81ffu)); break; /* sNaN */
            case 2: u = (r & 32) ? 0x7c00 : 0xfc00; break;
            case 3: u = 0x8000; break;
            case 4: u = 0; break;
            case 5: u &= 0x83ffu; break; /* subnormal */
            case 6: u = (r & 32) ? 0x7bff : 0xfbff; break;
            default: break;
            }
            ((uint16_t *)p)[j] = u;
        }
    }
}

static double pick_scale(int dt)
{
    static const double ss[] = {2.0, 1.0, 1.25, 1.0 / 0.9, 1.0 / 0.3, 100.0, 1.0 / 0.99, 3.0, 1e-3, 65504.0};
    double s = ss[rnd32() % (sizeof ss / sizeof ss[0])];
    if (dt == CD_F32)
        s = (double)(float)s;
    if (dt == CD_F16)
        s = (double)cd_half_to_float(cd_float_to_half((float)s));
    return s;
}

/* out: y buffer with 64 canary bytes each side */
static void check_apply_one(int dt, int64_t n, int phase, int inplace, int xoff_mode)
{
    size_t es = esize(dt), nb = (size_t)(phase + n + 7) / 8;
    region rx = guard_alloc((size_t)n * es + 64), rb = guard_alloc(nb + 1);
    /* x either ends at the guard page or starts at it (+1 element unaligned variants) */
    unsigned char *x = xoff_mode == 0 ? guard_end(rx, (size_t)n * es) : (unsigned char *)guard_start(rx) + (xoff_mode == 2 ? es : 0);
    uint8_t *bits = (xoff_mode == 0) ? guard_end(rb, nb) : guard_start(rb);
    fill_special(dt, x, n);
    for (size_t i = 0; i < nb; i++)
        bits[i] = (uint8_t)rnd32();
    if (rnd32() % 4 == 0)
        for (size_t i = 0; i < nb; i++)
            bits[i] = (rnd32() & 1) ? 0xff : 0x00;
    double s = pick_scale(dt);
    size_t bytes = (size_t)n * es;
    unsigned char *ref = malloc(bytes + 1), *xin = malloc(bytes + 1), *buf = malloc(bytes + 128 + es);
    memcpy(xin, x, bytes);
    cd_kernels_portable.apply[dt](xin, ref, n, bits, phase, s);
    for (int i = 1; i < CD_NISA; i++) {
        if (!isas[i])
            continue;
        unsigned char *y;
        if (inplace) {
            memcpy(x, xin, bytes);
            y = x;
            isas[i]->apply[dt](x, x, n, bits, phase, s);
        } else {
            memset(buf, 0xA5, bytes + 128 + es);
            y = buf + 64 + (xoff_mode == 2 ? es : 0);
            isas[i]->apply[dt](x, y, n, bits, phase, s);
            for (int k = 0; k < 64; k++)
                if (y[-1 - k] != 0xA5 || y[bytes + k] != 0xA5) {
                    FAIL("apply %s %s n=%lld phase=%d: wrote outside", isas[i]->name, dname(dt), (long long)n, phase);
                    break;
                }
            if (memcmp(x, xin, bytes) != 0)
                FAIL("apply %s %s: modified x", isas[i]->name, dname(dt));
        }
        checks++;
        if (memcmp(y, ref, bytes) != 0) {
            size_t j = 0;
            while (memcmp(y + j * es, ref + j * es, es) == 0)
                j++;
            unsigned long long gv = 0, rv = 0, xv = 0;
            memcpy(&gv, y + j * es, es);
            memcpy(&rv, ref + j * es, es);
            memcpy(&xv, xin + j * es, es);
            FAIL("apply %s %s n=%lld phase=%d inplace=%d s=%.17g: elem %zu x=%llx got %llx want %llx", isas[i]->name,
                 dname(dt), (long long)n, phase, inplace, s, j, xv, gv, rv);
        }
    }
    free(ref);
    free(xin);
    free(buf);
    guard_free(rx);
    guard_free(rb);
}

static void check_scale_one(int dt, int64_t n, int xoff_mode)
{
    size_t es = esize(dt), bytes = (size_t)n * es;
    region ry = guard_alloc(bytes + 64);
    unsigned char *y = xoff_mode == 0 ? guard_end(ry, bytes) : (unsigned char *)guard_start(ry) + (xoff_mode == 2 ? es : 0);
    fill_special(dt, y, n);
    double s = pick_scale(dt);
    unsigned char *ref = malloc(bytes + 1), *yin = malloc(bytes + 1);
    memcpy(yin, y, bytes);
    memcpy(ref, y, bytes);
    cd_kernels_portable.scale[dt](ref, n, s);
    for (int i = 1; i < CD_NISA; i++) {
        if (!isas[i])
            continue;
        memcpy(y, yin, bytes);
        isas[i]->scale[dt](y, n, s);
        checks++;
        if (memcmp(y, ref, bytes) != 0)
            FAIL("scale %s %s n=%lld s=%g", isas[i]->name, dname(dt), (long long)n, s);
    }
    free(ref);
    free(yin);
    guard_free(ry);
}

static void check_fused_one(int dt, const cd_key *key, uint64_t e0, int64_t n, int inplace, int xoff_mode,
                            int with_bits)
{
    size_t es = esize(dt), bytes = (size_t)n * es;
    region rx = guard_alloc(bytes + 64);
    unsigned char *x = xoff_mode == 0 ? guard_end(rx, bytes) : (unsigned char *)guard_start(rx) + (xoff_mode == 2 ? es : 0);
    fill_special(dt, x, n);
    double s = pick_scale(dt);
    unsigned char *ref = malloc(bytes + 1), *xin = malloc(bytes + 1), *buf = malloc(bytes + 128 + es);
    int64_t nb = n > 0 ? (int64_t)(((e0 & 7) + (uint64_t)n + 7) / 8) : 0;
    uint8_t *bref = malloc((size_t)nb + 1), *bgot = malloc((size_t)nb + 64);
    memcpy(xin, x, bytes);
    fused_ref(key, e0, xin, ref, n, dt, s, bref);
    for (int i = 0; i < CD_NISA; i++) { /* every set that has fused kernels, portable included */
        fused_fn f = fused_of(i, dt);
        if (f == NULL || SKIP_V2(key, i))
            continue;
        unsigned char *y;
        uint8_t *bo = with_bits ? bgot : NULL;
        memset(bgot, 0xA5, (size_t)nb + 64);
        if (inplace) {
            memcpy(x, xin, bytes);
            y = x;
            f(key, e0, x, x, n, s, bo);
        } else {
            memset(buf, 0xA5, bytes + 128 + es);
            y = buf + 64 + (xoff_mode == 2 ? es : 0);
            f(key, e0, x, y, n, s, bo);
            for (int k = 0; k < 64; k++)
                if (y[-1 - k] != 0xA5 || y[bytes + k] != 0xA5) {
                    FAIL("fused %s %s n=%lld: wrote outside", isas[i]->name, dname(dt), (long long)n);
                    break;
                }
        }
        checks++;
        if (memcmp(y, ref, bytes) != 0) {
            size_t j = 0;
            while (memcmp(y + j * es, ref + j * es, es) == 0)
                j++;
            FAIL("fused %s %s e0=%llu n=%lld mode=%d thi=%u tlo=%u: elem %zu differs", isas[i]->name, dname(dt),
                 (unsigned long long)e0, (long long)n, key->mode, key->thi, key->tlo, j);
        }
        if (with_bits) {
            if (memcmp(bgot, bref, (size_t)nb) != 0)
                FAIL("fused %s %s e0=%llu n=%lld: bits_out differs", isas[i]->name, dname(dt), (unsigned long long)e0,
                     (long long)n);
            for (int k = 0; k < 64; k++)
                if (bgot[nb + k] != 0xA5) {
                    FAIL("fused %s %s n=%lld: wrote past bits_out", isas[i]->name, dname(dt), (long long)n);
                    break;
                }
        } else {
            for (int k = 0; k < 64; k++)
                if (bgot[k] != 0xA5) {
                    FAIL("fused %s: wrote to a bits_out it was not given", isas[i]->name);
                    break;
                }
        }
    }
    free(ref);
    free(xin);
    free(buf);
    free(bref);
    free(bgot);
    guard_free(rx);
}

static void test_fused(int quick)
{
    static const int64_t ns[] = {0, 1, 7, 8, 9, 127, 128, 129, 511, 512, 513, 1000, 2048, 4097, 5000, 20000};
    const int nn = (int)(sizeof ns / sizeof ns[0]);
    int rounds = quick ? 6 : 40;
    for (int r = 0; r < rounds; r++)
        for (int dt = 0; dt < CD_NDTYPES; dt++)
            for (int i = 0; i < nn; i++) {
                cd_key key = random_key();
                uint64_t e0;
                switch (r % 4) {
                case 0: e0 = rnd32() % 64; break;
                case 1: e0 = (1ull << 35) - (rnd32() % 5000); break; /* blocks cross 2^32 */
                case 2: e0 = (uint64_t)0 - (uint64_t)ns[i] - 8 - (rnd32() % 100); break; /* blocks end near 2^61 */
                default: e0 = rnd64() >> 4; break;
                }
                check_fused_one(dt, &key, e0, ns[i], (int)(rnd32() & 1), (int)(rnd32() % 3), (int)(rnd32() & 1));
            }
    /* ties through the fused path: many elements with Tlo != 0 */
    for (int r = 0; r < (quick ? 2 : 8); r++) {
        cd_key key = random_key();
        if (key.tlo == 0)
            key.tlo = 0x4321;
        check_fused_one(r % 3, &key, rnd64() >> 8, (1 << 19) + 3 * r, r & 1, 0, r & 2);
    }
}

/* gen_rows of every set against the portable gen, row by row: phases, strides of any size and sign
 * (mod 2^64), rows crossing 2^32 blocks; bytes outside each row's blocks untouched. */
static void test_gen_rows(int quick)
{
    enum { STRIDE = 48 };
    static const int64_t nbits[] = {1, 7, 8, 9, 63, 64, 65, 120, 127, 128, 129, 300};
    uint8_t got[20 * STRIDE], want[STRIDE];
    for (int r = 0; r < (quick ? 40 : 400); r++) {
        cd_key key = random_key();
        int64_t nb = nbits[r % (int)(sizeof nbits / sizeof nbits[0])];
        int64_t nrows = 1 + (int64_t)(rnd32() % 20);
        uint64_t m0 = (r % 3 == 0) ? (1ull << 35) - (rnd32() % 3000) : rnd64() >> 4;
        uint64_t ms = (r % 4 == 0) ? (uint64_t)0 - (uint64_t)(rnd32() % 5000) : (uint64_t)(rnd32() % 70000);
        for (int i = 0; i < CD_NISA; i++) {
            if (!isas[i] || SKIP_V2(&key, i))
                continue;
            memset(got, 0xA5, sizeof got);
            isas[i]->gen_rows(&key, m0, ms, nrows, nb, got, STRIDE);
            for (int64_t row = 0; row < nrows; row++) {
                uint64_t m = m0 + (uint64_t)row * ms, b = m >> 3;
                int64_t n = (int64_t)(((m + (uint64_t)nb - 1) >> 3) - b + 1);
                cd_kernels_portable.gen(&key, b, n, want);
                checks++;
                if (memcmp(got + row * STRIDE, want, (size_t)n) != 0 ||
                    (n < STRIDE && got[row * STRIDE + n] != 0xA5)) {
                    FAIL("gen_rows %s: m0=%llu mstride=%llu nbits=%lld row %lld differs or overruns", isas[i]->name,
                         (unsigned long long)m0, (unsigned long long)ms, (long long)nb, (long long)row);
                    break;
                }
            }
        }
    }
}

/* apply_strided (where a set has it) against the portable contiguous apply of the gathered elements:
 * the elements in between keep their canary bytes; bits end at a guard page; in place and not. */
static void check_strided_one(int dt, int64_t k, int64_t n, int phase, int inplace)
{
    size_t es = esize(dt), nb = (size_t)(phase + n + 7) / 8, span = n > 0 ? (size_t)((n - 1) * k + 1) * es : 0;
    region rb = guard_alloc(nb + 1);
    uint8_t *bits = guard_end(rb, nb);
    for (size_t i = 0; i < nb; i++)
        bits[i] = (uint8_t)rnd32();
    unsigned char *xd = malloc((size_t)n * es + 1), *ref = malloc((size_t)n * es + 1);
    unsigned char *x = malloc(span + 1), *y = malloc(span + 1);
    fill_special(dt, xd, n);
    double s = pick_scale(dt);
    cd_kernels_portable.apply[dt](xd, ref, n, bits, phase, s);
    for (int i = 1; i < CD_NISA; i++) {
        if (!isas[i] || !isas[i]->apply_strided[dt])
            continue;
        memset(x, 0x5A, span + 1);
        memset(y, 0xA5, span + 1);
        for (int64_t j = 0; j < n; j++)
            memcpy(x + (size_t)(j * k) * es, xd + (size_t)j * es, es);
        unsigned char *out = inplace ? x : y;
        isas[i]->apply_strided[dt](x, out, k, n, bits, phase, s);
        checks++;
        for (int64_t j = 0; j < (n > 0 ? (n - 1) * k + 1 : 0); j++) {
            const unsigned char *e = out + (size_t)j * es;
            int ok = j % k == 0 ? memcmp(e, ref + (size_t)(j / k) * es, es) == 0
                                : (e[0] == (inplace ? 0x5A : 0xA5) && e[es - 1] == (inplace ? 0x5A : 0xA5));
            if (!ok) {
                FAIL("apply_strided %s %s k=%lld n=%lld phase=%d inplace=%d: element %lld wrong", isas[i]->name,
                     dname(dt), (long long)k, (long long)n, phase, inplace, (long long)j);
                break;
            }
        }
        if (!inplace && (y[span] != 0xA5))
            FAIL("apply_strided %s: wrote past the last element", isas[i]->name);
    }
    free(xd);
    free(ref);
    free(x);
    free(y);
    guard_free(rb);
}

static void test_strided(int quick)
{
    static const int64_t ns[] = {0, 1, 2, 7, 8, 15, 16, 17, 31, 33, 64, 100, 129, 1000};
    for (int dt = 0; dt < CD_NDTYPES; dt++)
        for (int64_t k = 2; k <= 8; k++)
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                for (int phase = 0; phase < 8; phase += quick ? 3 : 1)
                    check_strided_one(dt, k, ns[i], phase, (int)(rnd32() & 1));
}

static void test_apply_scale(int quick)
{
    static const int64_t ns[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000, 4097};
    const int nn = (int)(sizeof ns / sizeof ns[0]);
    int reps = quick ? 1 : 3;
    for (int rep = 0; rep < reps; rep++)
        for (int dt = 0; dt < CD_NDTYPES; dt++)
            for (int i = 0; i < nn; i++) {
                for (int phase = 0; phase < 8; phase++)
                    for (int inplace = 0; inplace < 2; inplace++)
                        for (int xm = 0; xm < 3; xm++)
                            check_apply_one(dt, ns[i], phase, inplace, xm);
                for (int xm = 0; xm < 3; xm++)
                    check_scale_one(dt, ns[i], xm);
            }
    /* exhaustive float16: every half value times a few scales, all kept */
    region rb = guard_alloc(8192);
    uint8_t *bits = guard_start(rb);
    memset(bits, 0xff, 8192);
    uint16_t *x = malloc(65536 * 2), *ref = malloc(65536 * 2), *y = malloc(65536 * 2);
    for (int j = 0; j < 65536; j++)
        x[j] = (uint16_t)j;
    static const float hs[] = {2.0f, 1.0f, 1.25f, 1.1113281f, 3.3339844f, 100.0f, 1.0097656f, 0.5f, 65504.0f, 6.1035156e-05f};
    for (size_t k = 0; k < sizeof hs / sizeof hs[0]; k++) {
        double s = (double)cd_half_to_float(cd_float_to_half(hs[k]));
        cd_kernels_portable.apply[CD_F16](x, ref, 65536, bits, 0, s);
        for (int i = 1; i < CD_NISA; i++) {
            if (!isas[i])
                continue;
            isas[i]->apply[CD_F16](x, y, 65536, bits, 0, s);
            checks++;
            if (memcmp(y, ref, 65536 * 2) != 0) {
                int j = 0;
                while (y[j] == ref[j])
                    j++;
                FAIL("apply f16 exhaustive %s s=%g: x=%04x got %04x want %04x", isas[i]->name, s, x[j], y[j], ref[j]);
            }
            memcpy(y, x, 65536 * 2);
            isas[i]->scale[CD_F16](y, 65536, s);
            cd_kernels_portable.scale[CD_F16](ref, 0, s);
            memcpy(ref, x, 65536 * 2);
            cd_kernels_portable.scale[CD_F16](ref, 65536, s);
            checks++;
            if (memcmp(y, ref, 65536 * 2) != 0)
                FAIL("scale f16 exhaustive %s s=%g", isas[i]->name, s);
        }
    }
    free(x);
    free(ref);
    free(y);
    guard_free(rb);
}

/* ---- benchmark ---- */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* best-of-reps time per call */
#define BEST(reps, inner, stmt)                                                                        \
    ({                                                                                                 \
        double best_ = 1e30;                                                                           \
        for (int r_ = 0; r_ < (reps); r_++) {                                                          \
            double t0_ = now();                                                                        \
            for (long i_ = 0; i_ < (inner); i_++) {                                                    \
                stmt;                                                                                  \
            }                                                                                          \
            double t_ = (now() - t0_) / (inner);                                                       \
            if (t_ < best_)                                                                            \
                best_ = t_;                                                                            \
        }                                                                                              \
        best_;                                                                                         \
    })

/* The big-array rows run on g_threads OpenMP threads (when built with -fopenmp), each on its own
 * 1024-aligned part [lo, hi) of the array, like the driver splits. */
static int g_threads = 1;
#ifdef _OPENMP
#define PAR_PARTS(big, lo, hi, stmt)                                                                   \
    do {                                                                                               \
        _Pragma("omp parallel num_threads(g_threads)")                                                 \
        {                                                                                              \
            int64_t tiles_ = (big) / 1024, t_ = omp_get_thread_num(), nt_ = omp_get_num_threads();     \
            int64_t lo = tiles_ * t_ / nt_ * 1024, hi = t_ == nt_ - 1 ? (big) : tiles_ * (t_ + 1) / nt_ * 1024; \
            stmt;                                                                                      \
        }                                                                                              \
    } while (0)
#else
#define PAR_PARTS(big, lo, hi, stmt)                                                                   \
    do {                                                                                               \
        int64_t lo = 0, hi = (big);                                                                    \
        stmt;                                                                                          \
    } while (0)
#endif

static void bench(int64_t big)
{
    cd_key key = {0x12345678u, 0x9abcdef0u, 7, 0, 0x8000u, 0, CD_MASK_PHILOX};
    cd_key key_lo = key;
    key_lo.thi = 0xe666;
    key_lo.tlo = 0x6666; /* p = 0.1: Tlo != 0, the tie check is on */
    const int64_t tile = 1024;
    uint8_t *bits = malloc((size_t)(big / 8 + 64));
    float *xs = aligned_alloc(64, (size_t)tile * 8 + 64);
    void *xb = aligned_alloc(64, (size_t)big * 8);
    memset(xb, 0, (size_t)big * 8);
    for (int64_t j = 0; j < tile * 2; j++)
        xs[j] = (float)j;
    printf("\n%-9s %-28s %10s %10s\n", "isa", "case", "ns/elem", "elem/ns");
    for (int i = 0; i < CD_NISA; i++) {
        if (!isas[i])
            continue;
        const cd_kernels *K = isas[i];
        double t;
#define ROW(label, secs, nel) printf("%-9s %-28s %10.4f %10.3f\n", K->name, label, 1e9 * (secs) / (nel), (nel) / (1e9 * (secs)))
        t = BEST(7, 2000, K->gen(&key, 1000 + (uint64_t)i_ * 128, tile / 8, bits));
        ROW("gen L1 tile (p=.5,Tlo=0)", t, tile);
        t = BEST(7, 2000, K->gen(&key_lo, 1000 + (uint64_t)i_ * 128, tile / 8, bits));
        ROW("gen L1 tile (p=.1,Tlo!=0)", t, tile);
        t = BEST(3, 2, PAR_PARTS(big, lo, hi, K->gen(&key_lo, (uint64_t)lo / 8, (hi - lo) / 8, bits + lo / 8)));
        ROW("gen big (p=.1)", t, big);
        for (int dt = 0; dt < CD_NDTYPES; dt++) {
            char nm[64];
            void *x1 = xs;
            if (dt == CD_F16)
                for (int64_t j = 0; j < tile; j++)
                    ((uint16_t *)x1)[j] = 0x3c00;
            t = BEST(7, 4000, K->apply[dt](x1, x1, tile, bits, 0, 1.0));
            snprintf(nm, sizeof nm, "apply %s L1 in place", dname(dt));
            ROW(nm, t, tile);
            t = BEST(3, 2, PAR_PARTS(big, lo, hi, {
                char *p = (char *)xb + lo * (int64_t)esize(dt);
                K->apply[dt](p, p, hi - lo, bits + lo / 8, 0, 1.0);
            }));
            snprintf(nm, sizeof nm, "apply %s big in place", dname(dt));
            ROW(nm, t, big);
            t = BEST(7, 4000, K->scale[dt](x1, tile, 1.0));
            snprintf(nm, sizeof nm, "scale %s L1", dname(dt));
            ROW(nm, t, tile);
            t = BEST(3, 2, PAR_PARTS(big, lo, hi, K->scale[dt]((char *)xb + lo * (int64_t)esize(dt), hi - lo, 1.0)));
            snprintf(nm, sizeof nm, "scale %s big", dname(dt));
            ROW(nm, t, big);
            /* the fused pass the driver does: gen 128 bytes, apply 1024 elements, per tile */
            t = BEST(7, 2000, {
                K->gen(&key_lo, (uint64_t)i_ * 128, tile / 8, bits);
                K->apply[dt](x1, x1, tile, bits, 0, 1.0);
            });
            snprintf(nm, sizeof nm, "gen+apply %s L1 tile", dname(dt));
            ROW(nm, t, tile);
            t = BEST(3, 2, PAR_PARTS(big, lo, hi, {
                uint8_t tb[1024 / 8];
                for (int64_t o = lo; o < hi; o += tile) {
                    K->gen(&key_lo, (uint64_t)o / 8, tile / 8, tb);
                    K->apply[dt]((char *)xb + o * esize(dt), (char *)xb + o * esize(dt), tile, tb, 0, 1.0);
                }
            }));
            snprintf(nm, sizeof nm, "gen+apply %s big (tiled)", dname(dt));
            ROW(nm, t, big);
            fused_fn f = fused_of(i, dt);
            if (f != NULL) {
                t = BEST(7, 2000, f(&key_lo, (uint64_t)i_ * tile, x1, x1, tile, 1.0, NULL));
                snprintf(nm, sizeof nm, "fused %s L1 tile", dname(dt));
                ROW(nm, t, tile);
                t = BEST(3, 2, PAR_PARTS(big, lo, hi, {
                    char *p = (char *)xb + lo * (int64_t)esize(dt);
                    f(&key_lo, (uint64_t)lo, p, p, hi - lo, 1.0, NULL);
                }));
                snprintf(nm, sizeof nm, "fused %s big in place", dname(dt));
                ROW(nm, t, big);
            }
        }
#undef ROW
    }
    free(bits);
    free(xs);
    free(xb);
}

int main(int argc, char **argv)
{
    int do_bench = 0, quick = 0, no_check = 0;
    int64_t big = 1 << 25;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench"))
            do_bench = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-check"))
            no_check = 1;
        else if (!strncmp(argv[i], "--isa=", 6))
            only_isa = argv[i] + 6;
        else if (!strncmp(argv[i], "--big=", 6))
            big = atoll(argv[i] + 6);
        else if (!strncmp(argv[i], "--threads=", 10))
            g_threads = atoi(argv[i] + 10);
    }
    __builtin_cpu_init();
    isas[CD_ISA_PORTABLE] = &cd_kernels_portable;
    v2_ok[CD_ISA_PORTABLE] = 1;
    v2_ok[CD_ISA_AVX2] = __builtin_cpu_supports("aes");
    v2_ok[CD_ISA_AVX512] = __builtin_cpu_supports("vaes");
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isas[CD_ISA_AVX2] = &cd_kernels_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        isas[CD_ISA_AVX512] = &cd_kernels_avx512;
    if (only_isa)
        for (int i = 1; i < CD_NISA; i++)
            if (isas[i] && strcmp(isas[i]->name, only_isa) != 0)
                isas[i] = NULL;
    for (int i = 0; i < CD_NISA; i++)
        if (isas[i])
            printf("isa: %s\n", isas[i]->name);
    if (!no_check) {
        test_ars_kat();
        test_gen(quick);
        test_apply_scale(quick);
        test_fused(quick);
        test_gen_rows(quick);
        test_strided(quick);
        printf("%ld checks, %ld failures\n", checks, failures);
    }
    if (do_bench) {
        if (only_isa == NULL || strcmp(only_isa, "portable") != 0) {
            /* the portable rows are slow at this size: give it a smaller array */
        }
        bench(big);
    }
    return failures != 0;
}
