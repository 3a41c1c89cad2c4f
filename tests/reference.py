"""Pure-NumPy reference of the cdropout mask stream, formats v1 and v2.

Written from the specification (docs/stream-format.md, issue "The core"), independently of
the C implementation, so that the tests can fail. Everything here is vectorised NumPy:
the 32x32->64 bit multiplies of Philox are done in uint64 arrays, and AES (for ARS, format v2)
is built from its FIPS-197 definition: the S-box is computed from the inverse in GF(2^8) and
the affine map, not copied from a table.

Format v1, in short:
  key = (seed & 0xffffffff, seed >> 32); element i of the mask (C order) has index e = offset + i;
  block b = e >> 3, half h = e & 7;
  primary = philox4x32_10((b & 0xffffffff, b >> 32, stream & 0xffffffff, stream >> 32), key);
  u = (primary[h >> 1] >> (16 * (h & 1))) & 0xffff;
  secondary = the same with bit 31 of counter word 1 set; v = its half h (only used on ties);
  T = floor((1 - p) * 2**32 + 0.5) in float64; Thi = T >> 16; Tlo = T & 0xffff;
  keep = T >= 2**32 or (T > 0 and (u < Thi or (u == Thi and v < Tlo))).
  y = keep ? x * s : +0.0, s = dtype(1 / (1 - p)).

Format v2 is the same with ars4x32_7(counter, (seed & 0xffffffff, seed >> 32, 0, 0)) in place of
philox4x32_10 (same counters, halves and keep rule).

The mask functions take `fmt` (1 or 2); None means the library's default format,
cdropout.FORMAT_VERSION, so the tests of "the default" follow it when it changes.
"""
import functools
import math

import numpy as np

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85

TWO32 = 1 << 32
TWO64 = 1 << 64
SECONDARY_BIT = 0x80000000  # bit 31 of counter word 1

_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# Random123 tests/kat_vectors, philox4x32 lines: rounds, counter[0..3], key[0..1], expected[0..3]
KAT_VECTORS = [
    (7, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    (7, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
    (10, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox4x32(counter, key, rounds=10):
    """Philox4x32-R of a batch of counters: uint32 array (..., 4) -> uint32 array (..., 4)."""
    ctr = np.asarray(counter)
    if ctr.shape[-1:] != (4,):
        raise ValueError("counter must have shape (..., 4)")
    c0, c1, c2, c3 = (ctr[..., j].astype(np.uint64) for j in range(4))
    k0, k1 = (int(k) & 0xFFFFFFFF for k in key)
    m0 = np.uint64(PHILOX_M0)
    m1 = np.uint64(PHILOX_M1)
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
            k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
        p0 = c0 * m0  # < 2**64: exact in uint64
        p1 = c2 * m1
        c0, c1, c2, c3 = ((p1 >> _S32) ^ c1 ^ np.uint64(k0), p1 & _LO32,
                          (p0 >> _S32) ^ c3 ^ np.uint64(k1), p0 & _LO32)
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


# ---------------------------------------------------------------- AES rounds, ARS-R (format v2)
#
# The AES state is a uint8 array (..., 16): byte 4c + r is row r of column c (FIPS-197 3.4).
# ARS (Random123's ars4x32_R) takes the counter's and the key's four 32-bit words as one 128-bit
# value each, word 0 in the low 32 bits and each word little-endian: byte 4i + j of the state is
# byte j (bits 8j .. 8j+7) of word i (docs/stream-format.md, format v2).

AES_POLY = 0x11B                     # x^8 + x^4 + x^3 + x + 1 (FIPS-197 4.2)
AES_AFFINE_C = 0x63                  # the affine map's constant {63} (FIPS-197 5.1.1)
ARS_WEYL = (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)  # added to the key's low and high 64 bits
ARS_ROUNDS_V2 = 7
MASK64 = (1 << 64) - 1

# Random123 tests/kat_vectors, ars4x32 lines: rounds, counter[0..3], key[0..3], expected[0..3]
ARS_KAT_VECTORS = [
    (10, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000, 0x00000000, 0x00000000),
     (0x8D73EE19, 0x506401EF, 0x13C2DBE4, 0x0CBE9C0D)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0, 0x082EFA98, 0xEC4E6C89),
     (0xA516E7D6, 0x8357AD74, 0x5B59B3EC, 0x8763FFF3)),
    (10, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF, 0x00000000, 0x00000000),
     (0xBB3743B1, 0x9F635551, 0xECBC87FC, 0xA19478A9)),
]


def gf_mul(a, b):
    """a * b in GF(2^8) modulo AES's polynomial (Python ints, shift and add)."""
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= AES_POLY
        b >>= 1
    return r


def gf_inverse(a):
    """The multiplicative inverse in GF(2^8), a**254 (0 maps to 0, as FIPS-197 5.1.1 says)."""
    r, base, e = 1, a, 254
    while e:
        if e & 1:
            r = gf_mul(r, base)
        base = gf_mul(base, base)
        e >>= 1
    return r if a else 0


def aes_affine(b):
    """FIPS-197 (5.1): b'_i = b_i ^ b_(i+4) ^ b_(i+5) ^ b_(i+6) ^ b_(i+7) ^ c_i, indices mod 8."""
    out = 0
    for i in range(8):
        bit = (b >> i) ^ (b >> ((i + 4) % 8)) ^ (b >> ((i + 5) % 8)) ^ (b >> ((i + 6) % 8)) \
            ^ (b >> ((i + 7) % 8)) ^ (AES_AFFINE_C >> i)
        out |= (bit & 1) << i
    return out


SBOX = np.array([aes_affine(gf_inverse(a)) for a in range(256)], np.uint8)
XTIME = np.array([gf_mul(a, 2) for a in range(256)], np.uint8)   # multiplication by {02}
# ShiftRows: row r turns left by r, so the new byte r + 4c is the old byte r + 4((c + r) mod 4).
_SHIFT_ROWS = np.array([r + 4 * ((c + r) % 4) for c in range(4) for r in range(4)], np.intp)


def sub_bytes(s):
    return SBOX[s]


def shift_rows(s):
    return s[..., _SHIFT_ROWS]


def mix_columns(s):
    """Each column (s0, s1, s2, s3) -> s'_r = {02} s_r ^ {03} s_(r+1) ^ s_(r+2) ^ s_(r+3)."""
    a = s.reshape(s.shape[:-1] + (4, 4))  # [..., column, row]
    b = XTIME[a]
    out = np.empty_like(a)
    for r in range(4):
        r1, r2, r3 = (r + 1) % 4, (r + 2) % 4, (r + 3) % 4
        out[..., r] = b[..., r] ^ b[..., r1] ^ a[..., r1] ^ a[..., r2] ^ a[..., r3]
    return out.reshape(s.shape)


def add_round_key(s, k):
    return s ^ k


def aesenc(s, k):
    """One AES round as the x86 AESENC instruction: ShiftRows, SubBytes, MixColumns, xor k."""
    return add_round_key(mix_columns(sub_bytes(shift_rows(s))), k)


def aesenclast(s, k):
    """The last AES round (AESENCLAST): ShiftRows, SubBytes, xor k (no MixColumns)."""
    return add_round_key(sub_bytes(shift_rows(s)), k)


def aes128_key_expansion(key16):
    """The 11 round keys (uint8 (11, 16)) of FIPS-197 5.2 for a 16-byte key."""
    w = [list(key16[4 * i:4 * i + 4]) for i in range(4)]
    rcon = 1
    for i in range(4, 44):
        t = list(w[i - 1])
        if i % 4 == 0:
            t = [int(SBOX[b]) for b in t[1:] + t[:1]]  # SubWord(RotWord(w[i-1]))
            t[0] ^= rcon
            rcon = gf_mul(rcon, 2)
        w.append([a ^ b for a, b in zip(w[i - 4], t)])
    return np.array(w, np.uint8).reshape(11, 16)


def aes128_encrypt(plaintext16, key16):
    """AES-128 of one 16-byte block (bytes in, bytes out), built from the round functions above."""
    rk = aes128_key_expansion(bytes(key16))
    s = add_round_key(np.frombuffer(bytes(plaintext16), np.uint8), rk[0])
    for r in range(1, 10):
        s = aesenc(s, rk[r])
    return aesenclast(s, rk[10]).tobytes()


def words_to_state(words):
    """uint32 (..., 4) -> uint8 (..., 16): byte 4i + j is byte j of word i (little-endian)."""
    w = np.asarray(words).astype(np.uint32)
    shifts = np.arange(4, dtype=np.uint32) * np.uint32(8)
    return ((w[..., :, None] >> shifts) & np.uint32(0xFF)).astype(np.uint8).reshape(w.shape[:-1] + (16,))


def state_to_words(s):
    """Inverse of :func:`words_to_state`."""
    b = s.reshape(s.shape[:-1] + (4, 4)).astype(np.uint32)
    return b[..., 0] | (b[..., 1] << np.uint32(8)) | (b[..., 2] << np.uint32(16)) | (b[..., 3] << np.uint32(24))


def ars_round_keys(key, rounds):
    """The round keys k_1 .. k_rounds (uint8 (rounds, 16)): the key's low and high 64 bits each
    plus the Weyl increment, modulo 2**64, once per round."""
    k = [int(w) & 0xFFFFFFFF for w in key]
    if len(k) != 4:
        raise ValueError("ARS takes a key of four 32-bit words")
    lo, hi = k[0] | (k[1] << 32), k[2] | (k[3] << 32)
    out = []
    for _ in range(rounds):
        lo, hi = (lo + ARS_WEYL[0]) & MASK64, (hi + ARS_WEYL[1]) & MASK64
        out.append([lo & 0xFFFFFFFF, lo >> 32, hi & 0xFFFFFFFF, hi >> 32])
    return words_to_state(np.array(out, np.uint32).reshape(rounds, 4))


def ars4x32(counter, key, rounds=ARS_ROUNDS_V2):
    """ARS-R (Random123's ars4x32_R) of a batch of counters: uint32 (..., 4) -> uint32 (..., 4).

    v = C xor K; then rounds - 1 times k += W, v = AESENC(v, k); then k += W, v = AESENCLAST(v, k).
    """
    ctr = np.asarray(counter)
    if ctr.shape[-1:] != (4,):
        raise ValueError("counter must have shape (..., 4)")
    if not 1 <= rounds <= 10:
        raise ValueError("ARS rounds must be in [1, 10]")
    k0 = words_to_state(np.array([int(w) & 0xFFFFFFFF for w in key], np.uint32))
    rk = ars_round_keys(key, rounds)
    v = add_round_key(words_to_state(ctr), k0)
    for r in range(rounds - 1):
        v = aesenc(v, rk[r])
    return state_to_words(aesenclast(v, rk[rounds - 1]))


def threshold(p):
    """T = round((1 - p) * 2**32) in float64 (floor(q * 2**32 + 0.5)), as a Python int."""
    return int(math.floor((1.0 - float(p)) * 4294967296.0 + 0.5))


def p_for_threshold(t):
    """The p (a float64) with (1 - p) * 2**32 == t exactly; t may be a half-integer.

    threshold(p_for_threshold(T)) == T, and p_for_threshold(T +- 0.5) probes the rounding."""
    p = 1.0 - float(t) / 4294967296.0
    assert (1.0 - p) * 4294967296.0 == t, t
    return p


def _check_u64(name, v):
    v = int(v)
    if not 0 <= v < TWO64:
        raise ValueError(f"{name} out of range")
    return v


FORMATS = (1, 2)


def default_format():
    """The format of the library's calls without format=: cdropout.FORMAT_VERSION (only that
    constant is read from the library, so the tests of the default follow it if it changes)."""
    import cdropout
    return cdropout.FORMAT_VERSION


def _fmt(fmt):
    fmt = default_format() if fmt is None else fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return int(fmt)


def block_words(ctr, seed, fmt):
    """The four output words of the format's counter function for counters `ctr` (uint32 (..., 4))."""
    if fmt == 1:
        return philox4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32), 10)
    return ars4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32, 0, 0), ARS_ROUNDS_V2)


def _block_halves(seed, stream, blocks, secondary, fmt=1):
    """The eight 16-bit halves of every block in `blocks` (uint64 array): uint16 (len, 8)."""
    ctr = np.empty(blocks.shape + (4,), np.uint32)
    ctr[..., 0] = blocks & _LO32
    ctr[..., 1] = blocks >> _S32
    if secondary:
        ctr[..., 1] |= np.uint32(SECONDARY_BIT)
    ctr[..., 2] = stream & 0xFFFFFFFF
    ctr[..., 3] = stream >> 32
    words = block_words(ctr, seed, fmt)
    halves = np.empty(blocks.shape + (8,), np.uint16)
    halves[..., 0::2] = words & np.uint32(0xFFFF)  # half 2w = low 16 bits of word w
    halves[..., 1::2] = words >> np.uint32(16)     # half 2w+1 = high 16 bits of word w
    return halves


def draws(n, seed, stream=0, offset=0, fmt=None):
    """(u, tie_v) for elements offset .. offset+n-1 of format `fmt` (None: the default).

    u: uint16 (n,) primary halves. tie_v: function(index array) -> the secondary halves v of
    those elements (computed lazily, only for the blocks asked for)."""
    fmt = _fmt(fmt)
    seed = _check_u64("seed", seed)
    stream = _check_u64("stream", stream)
    offset = _check_u64("offset", offset)
    n = int(n)
    if offset + n > TWO64:
        raise ValueError("offset + size beyond 2**64")
    if n == 0:
        return np.zeros(0, np.uint16), lambda idx: np.zeros(0, np.uint16)
    first = offset >> 3
    last = (offset + n - 1) >> 3
    blocks = np.arange(last - first + 1, dtype=np.uint64) + np.uint64(first)
    u = _block_halves(seed, stream, blocks, False, fmt).reshape(-1)[(offset & 7):(offset & 7) + n]

    def tie_v(idx):
        idx = np.asarray(idx, dtype=np.uint64)
        e = np.uint64(offset) + idx
        halves = _block_halves(seed, stream, e >> np.uint64(3), True, fmt)
        return halves[np.arange(len(idx)), (e & np.uint64(7)).astype(np.intp)]

    return u, tie_v


def _keep_and_ties(n, p, seed, stream, offset, fmt):
    T = threshold(p)
    u, tie_v = draws(n, seed, stream, offset, fmt)  # validates the arguments
    if T >= TWO32:
        return np.ones(n, bool), np.zeros(0, np.intp), np.zeros(0, bool)
    if T <= 0:
        return np.zeros(n, bool), np.zeros(0, np.intp), np.zeros(0, bool)
    thi, tlo = T >> 16, T & 0xFFFF
    keep = u < thi
    ties = np.flatnonzero(u == thi)
    tie_keep = tie_v(ties) < tlo if len(ties) else np.zeros(0, bool)
    keep[ties] = tie_keep
    return keep, ties, tie_keep


def keep_flat(n, p, seed, stream=0, offset=0, fmt=None):
    """Keep flags of elements offset .. offset+n-1 of format `fmt` (read-only bool array, cached)."""
    return _keep_flat(n, p, seed, stream, offset, _fmt(fmt))


@functools.lru_cache(maxsize=256)
def _keep_flat(n, p, seed, stream, offset, fmt):
    keep, _, _ = _keep_and_ties(n, p, seed, stream, offset, fmt)
    keep.flags.writeable = False
    return keep


def tie_stats(n, p, seed, stream=0, offset=0, fmt=None):
    """(number of ties u == Thi, how many are kept) in the sample; (0, 0) if T has no ties."""
    _, ties, tie_keep = _keep_and_ties(n, p, seed, stream, offset, _fmt(fmt))
    return len(ties), int(np.count_nonzero(tie_keep))


def keep_mask(shape, p, seed, stream=0, offset=0, fmt=None):
    """Keep flags of a mask of `shape` (C order) of format `fmt`, read-only."""
    shape = tuple(int(d) for d in shape)
    return keep_flat(math.prod(shape), float(p), int(seed), int(stream), int(offset), fmt).reshape(shape)


def scale_factor(dtype, p):
    """s = 1 / (1 - p) computed in float64, rounded to dtype (1 when p == 1: nothing is kept)."""
    dt = np.dtype(dtype).type
    p = float(p)
    return dt(1.0) if p >= 1.0 else dt(1.0 / (1.0 - p))


def apply_mask(x, keep, p, scale=True):
    """where(keep, x * s, +0.0), elementwise over x's logical shape; result C-contiguous."""
    x = np.array(x, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError("reference only handles float16/32/64")
    keep = np.broadcast_to(keep, x.shape)
    if not scale:
        kept = x.copy()
    else:
        with np.errstate(all="ignore"):
            if x.dtype == np.float16:
                # the product in float32 (exact: 11 x 11 significand bits), rounded once
                s = np.float32(scale_factor(np.float16, p))
                kept = (x.astype(np.float32) * s).astype(np.float16)
            else:
                kept = x * scale_factor(x.dtype, p)
    return np.where(keep, kept, x.dtype.type(0.0))


def dropout(x, p, seed, stream=0, offset=0, *, scale=True, noise_shape=None, fmt=None):
    """Reference forward: the expected output of cdropout.dropout for these arguments."""
    x = np.asarray(x)
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    return apply_mask(x, keep_mask(shape, p, seed, stream, offset, fmt), p, scale=scale)


def packbits(keep):
    """The bytes of a BitMask: np.packbits(mask.ravel(), bitorder='little')."""
    return np.packbits(np.asarray(keep, bool).ravel(), bitorder="little")


def seed_from_seedsequence(ss):
    """The uint64 seed cdropout takes from a numpy SeedSequence: w0 | w1 << 32."""
    w = ss.generate_state(2, np.uint32)
    return int(w[0]) | (int(w[1]) << 32)


def bits_of(a):
    """The raw bits of a float array (C-contiguous copy viewed as unsigned ints)."""
    a = np.array(a, order="C")
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


# ---------------------------------------------------------------- alpha dropout's constants

ALPHA_PRIME = -1.7580993408473766  # SELU's -lambda * alpha, as the double docs/variants.md names
ALPHA_DIGITS = 80                  # decimal digits of the reference before the final rounding


def alpha_constants_decimal(p, digits=ALPHA_DIGITS):
    """(a, b, c) of docs/variants.md as Decimals to `digits` significant digits (p < 1).

    a = ((1 - p) * (1 + p * alpha'**2)) ** -0.5, b = -a * alpha' * p, c = a * alpha' * (1 - p),
    with p and alpha' the exact values of their doubles (Decimal(float) is exact).
    """
    import decimal
    with decimal.localcontext() as ctx:
        ctx.prec = digits
        ctx.rounding = decimal.ROUND_HALF_EVEN
        P, A = decimal.Decimal(float(p)), decimal.Decimal(ALPHA_PRIME)
        q = (1 - P) * (1 + P * A * A)
        a = 1 / q.sqrt()
        return +a, -a * A * P, a * A * (1 - P)


def nearest_double(d):
    """The float64 nearest to the Decimal d (CPython's str -> float conversion rounds correctly)."""
    return float(str(d))


def alpha_constants(p):
    """(a, b, c) as floats: the reference values rounded once to float64."""
    return tuple(nearest_double(v) for v in alpha_constants_decimal(p))
