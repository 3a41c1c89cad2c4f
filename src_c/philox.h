/* Philox4x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
 * bitwise compatible with Random123's philox4x32_R. Scalar, header-only, no state. */
#ifndef CDROPOUT_PHILOX_H
#define CDROPOUT_PHILOX_H

#include <stdint.h>

#define CD_PHILOX_M0 0xD2511F53u
#define CD_PHILOX_M1 0xCD9E8D57u
#define CD_PHILOX_W0 0x9E3779B9u
#define CD_PHILOX_W1 0xBB67AE85u

typedef struct { uint32_t v[4]; } cd_philox_ctr;

static inline uint32_t cd_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* One round: the key is bumped between rounds, as Random123 does. */
static inline cd_philox_ctr cd_philox4x32_round(cd_philox_ctr c, uint32_t k0, uint32_t k1)
{
    uint32_t hi0, hi1;
    uint32_t lo0 = cd_mulhilo32(CD_PHILOX_M0, c.v[0], &hi0);
    uint32_t lo1 = cd_mulhilo32(CD_PHILOX_M1, c.v[2], &hi1);
    cd_philox_ctr r = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    return r;
}

static inline cd_philox_ctr cd_philox4x32_R(int rounds, cd_philox_ctr c, uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < rounds; r++) {
        if (r > 0) { k0 += CD_PHILOX_W0; k1 += CD_PHILOX_W1; }
        c = cd_philox4x32_round(c, k0, k1);
    }
    return c;
}

static inline cd_philox_ctr cd_philox4x32_10(cd_philox_ctr c, uint32_t k0, uint32_t k1)
{
    return cd_philox4x32_R(10, c, k0, k1);
}

#endif
