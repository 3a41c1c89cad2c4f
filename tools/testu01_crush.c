/* TestU01 batteries on cdropout's format v2 stream (ARS-7), generated in C by cdropout's own portable
 * kernels (src_c/kernels_portable.c), so that the billions of numbers a battery reads cost seconds.
 *
 *   tools/testu01.sh [small|crush|big|poker] [raw|mask] [seed]
 *
 *   poker  Crush's two SimpPoker tests with d = 16 alone (tests 23 and 24: n = 4e7, r = 0 and 26,
 *          d = k = 16), to retest a suspect p-value on other seeds in seconds
 *
 *   raw   ARS-7 output of blocks 0, 1, 2, ... of (seed, stream 0): the four 32-bit words of each
 *         block, word 0 first (exactly format v2's primary draws; docs/stream-format.md).
 *   mask  the packed keep mask at p = 0.5 of elements 0, 1, 2, ... (bit i = element i), read as
 *         little-endian 32-bit words (the bytes of BitMask.data).
 * TestU01 reads 32-bit words; it tests their top 30 or 32 bits as each battery documents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bbattery.h"
#include "sknuth.h"
#include "unif01.h"

#include "kernels.h"

#define NBLOCKS 4096
static uint32_t buf[4 * NBLOCKS];
static int pos = 4 * NBLOCKS;
static uint64_t next_block = 0;
static int mask_mode = 0;
static cd_key key;
static uint32_t ars_key[4];

static void refill(void)
{
    if (mask_mode) {
        /* 4 * NBLOCKS words = 16 * NBLOCKS bytes = 16 * NBLOCKS mask blocks */
        cd_kernels_portable.gen(&key, next_block, 16 * NBLOCKS, (uint8_t *)buf);
        next_block += 16 * NBLOCKS;
    } else {
        static uint32_t ctr[4 * NBLOCKS];
        for (int i = 0; i < NBLOCKS; i++) {
            uint64_t b = next_block + (uint64_t)i;
            ctr[4 * i] = (uint32_t)b;
            ctr[4 * i + 1] = (uint32_t)(b >> 32);
            ctr[4 * i + 2] = key.s0;
            ctr[4 * i + 3] = key.s1;
        }
        cd_ars4x32(CD_ARS_ROUNDS, ctr, buf, NBLOCKS, ars_key);
        next_block += NBLOCKS;
    }
    pos = 0;
}

static unsigned int next_word(void)
{
    if (pos == 4 * NBLOCKS)
        refill();
    return buf[pos++]; /* little-endian machines: the stream's bytes in order */
}

int main(int argc, char **argv)
{
    const char *battery = argc > 1 ? argv[1] : "small";
    const char *what = argc > 2 ? argv[2] : "raw";
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 42;
    mask_mode = strcmp(what, "mask") == 0;
    memset(&key, 0, sizeof key);
    key.k0 = (uint32_t)seed;
    key.k1 = (uint32_t)(seed >> 32);
    key.thi = 0x8000; /* p = 0.5: T = 2^31 */
    key.tlo = 0;
    key.mode = CD_MASK_PHILOX;
    key.fmt = CD_FORMAT_V2;
    ars_key[0] = key.k0;
    ars_key[1] = key.k1;
    char name[96];
    snprintf(name, sizeof name, "cdropout format v2 %s, seed %llu", mask_mode ? "p=0.5 mask" : "raw ARS-7",
             (unsigned long long)seed);
    unif01_Gen *gen = unif01_CreateExternGenBits(name, next_word);
    if (strcmp(battery, "crush") == 0)
        bbattery_Crush(gen);
    else if (strcmp(battery, "poker") == 0) {
        sknuth_SimpPoker(gen, NULL, 1, 40000000L, 0, 16, 16);
        sknuth_SimpPoker(gen, NULL, 1, 40000000L, 26, 16, 16);
    }
    else if (strcmp(battery, "big") == 0)
        bbattery_BigCrush(gen);
    else
        bbattery_SmallCrush(gen);
    unif01_DeleteExternGenBits(gen);
    return 0;
}
