/* Internal interface between the driver (cdropout.c) and the per-ISA kernel files.
 * A kernel set is a const table: no mutable global state anywhere. */
#ifndef CDROPOUT_KERNELS_H
#define CDROPOUT_KERNELS_H

#include <stdint.h>
#include <stddef.h>

/* What decides the mask: see docs/stream-format.md. The kernels (gen, fused) handle only
 * CD_MASK_PHILOX (random bits, of the key's format); the driver (cdropout.c) handles keep-all and
 * drop-all for every kernel set. */
enum { CD_MASK_PHILOX = 0, CD_MASK_KEEP_ALL = 1, CD_MASK_DROP_ALL = 2 };

/* Stream formats (docs/stream-format.md): the function that turns a block's counter into its four
 * words. Everything else (blocks, halves, keep rule, ties) is the same for both. */
enum { CD_FORMAT_V1 = 1, /* Philox4x32-10 */ CD_FORMAT_V2 = 2 /* ARS-7 */ };
#define CD_ARS_ROUNDS 7
#define CD_ARS_W0 0x9E3779B97F4A7C15ull /* Weyl increments of the ARS key, low and high 64 bits */
#define CD_ARS_W1 0xBB67AE8584CAA73Bull

typedef struct {
    uint32_t k0, k1;   /* key = (seed & 0xffffffff, seed >> 32) */
    uint32_t s0, s1;   /* counter words 2, 3 = (stream & 0xffffffff, stream >> 32) */
    uint32_t thi, tlo; /* T >> 16, T & 0xffff (only for CD_MASK_PHILOX, where 0 < T < 2^32) */
    int mode;
    int fmt;           /* CD_FORMAT_V1 or CD_FORMAT_V2: ARS key = (k0, k1, 0, 0), counter as v1's */
} cd_key;

/* Keep bytes of blocks [b0, b0 + n): bit h of out[j] is keep(8 * (b0 + j) + h).
 * b0 + n <= 2^61. One byte per block is exactly np.packbits(..., bitorder='little'). */
typedef void (*cd_gen_fn)(const cd_key *key, uint64_t b0, int64_t n, uint8_t *out);

/* gen for nrows rows of nbits mask indices each: row r starts at mask index m = m0 + r * mstride
 * (mod 2^64) and receives the keep bytes of blocks m / 8 .. (m + nbits - 1) / 8 at out + r * ostride,
 * exactly as gen writes them (the row's first bit at bit m % 8). nbits >= 1. */
typedef void (*cd_gen_rows_fn)(const cd_key *key, uint64_t m0, uint64_t mstride, int64_t nrows, int64_t nbits,
                               uint8_t *out, int64_t ostride);

/* Contiguous apply: for j in [0, n), with bit(j) = (bits[(phase + j) >> 3] >> ((phase + j) & 7)) & 1:
 *   y[j] = bit(j) ? x[j] * s : +0.0      (select, not multiply)
 * x may equal y (in place); phase in [0, 8). s is already rounded to the dtype (an exact double).
 * float16: y = round_to_half((float)x * (float)s), one rounding, as NumPy does. */
typedef void (*cd_apply_fn)(const void *x, void *y, int64_t n, const uint8_t *bits, int phase, double s);

/* Strided apply over x and y of one stride of k elements (2 <= k <= 8): element j is x[j * k], and
 * the elements in between are neither read nor written. Otherwise as cd_apply_fn. Optional. */
typedef void (*cd_apply_strided_fn)(const void *x, void *y, int64_t k, int64_t n, const uint8_t *bits, int phase,
                                    double s);

/* Contiguous in-place y[j] *= s (the benchmark's memory floor). */
typedef void (*cd_scale_fn)(void *y, int64_t n, double s);

/* Fused forward from a key over one contiguous run, in one pass:
 *   y[j] = keep(e0 + j) ? x[j] * s : +0.0 for j in [0, n), e0 = the global index of x[0];
 * bits_out, when not NULL, receives the keep bytes of blocks e0 / 8 .. (e0 + n - 1) / 8, whole
 * bytes exactly as gen writes them. A set may leave this NULL: the driver then generates one tile
 * of mask bytes at a time and applies it. */
typedef void (*cd_fused_fn)(const cd_key *key, uint64_t e0, const void *x, void *y, int64_t n, double s,
                            uint8_t *bits_out);

/* CD_BF16: bfloat16, computed as float16 is: widened to float32, multiplied, rounded once (to
 * nearest even; NaN -> sign | 0x7fc0, as ml_dtypes does). */
enum { CD_F16 = 0, CD_F32 = 1, CD_F64 = 2, CD_BF16 = 3, CD_NDTYPES = 4 };
enum { CD_ISA_PORTABLE = 0, CD_ISA_AVX2 = 1, CD_ISA_AVX512 = 2, CD_NISA = 3 };

typedef struct {
    const char *name;
    cd_gen_fn gen;
    cd_apply_fn apply[CD_NDTYPES];
    cd_scale_fn scale[CD_NDTYPES];
    cd_fused_fn fused[CD_NDTYPES]; /* optional (NULL entries); SIMD sets: src_c/fused_impl.h */
    cd_gen_rows_fn gen_rows;
    cd_apply_strided_fn apply_strided[CD_NDTYPES]; /* optional (NULL entries) */
} cd_kernels;

extern const cd_kernels cd_kernels_portable;
#if defined(CD_HAVE_X86_KERNELS)
extern const cd_kernels cd_kernels_avx2;
extern const cd_kernels cd_kernels_avx512;
#endif

/* Scalar helpers shared by every kernel file (defined in kernels_portable.c). */
uint16_t cd_float_to_half(float f);   /* round to nearest even, like NumPy */
float cd_half_to_float(uint16_t h);
/* Keep byte of one block, scalar, in the key's format: the reference path and the tie side path of
 * SIMD kernels. */
uint8_t cd_block_byte(const cd_key *key, uint64_t b);
/* Resolve ties of one block given its primary output words (the secondary draw in the key's
 * format): returns the final keep byte. */
uint8_t cd_block_byte_ties(const cd_key *key, uint64_t b, uint8_t lt_bits, uint8_t eq_bits);
/* bfloat16 <-> float32 (round to nearest even, NaN -> sign | 0x7fc0) and the portable bfloat16
 * y *= s, which every kernel set uses (the benchmark floor only). */
uint16_t cd_float_to_bf16(float f);
float cd_bf16_to_float(uint16_t h);
void cd_scale_bf16(void *y, int64_t n, double s);
/* ARS-rounds (Random123's ars4x32_R, 1 <= rounds <= 10), portable C: out[i] = ARS(ctr[i], key) for
 * n counters of four words each (word 0 first). */
void cd_ars4x32(int rounds, const uint32_t *ctr, uint32_t *out, int64_t n, const uint32_t key[4]);

#endif
