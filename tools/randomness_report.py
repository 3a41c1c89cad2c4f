#!/usr/bin/env python3
"""Print the numbers behind tests/test_randomness.py (for docs/reliability.md).

  python tools/randomness_report.py [--format {1,2}] [--log2n 24] [--shift K] [--pooled]
                                    [--rounds-margin [--margin-log2n 20]]

Keep-rate z for each p, runs-test z and the largest |z| of the lag 1..64 autocorrelations, the
chi-square p-values of the neighbour-independence tables, and the tie counts over 2**24
elements, for stream format 1 (Philox4x32-10) or 2 (ARS-7). Same functions and seeds as the
tests.

--shift K (K > 0) retests with other seeds: the keep-rate seed 2024 + K, the runs seed 1 + K
(offset (1 + K) * 12345), the tie seed 0xDEADBEEF + K, and every neighbour pair moved by
K * 2**26 elements of offset (which keeps each pair's relation).
--pooled adds the lag 1..64 autocorrelations pooled over 8 seeds (p = 0.5).
--rounds-margin adds the smallest neighbour p-value and the largest |z| of the runs and lag
tests for the format's counter function with fewer rounds (the margin the full rounds have), on
2**20 elements per mask (--margin-log2n).
"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import test_randomness as tr  # noqa: E402 (after the path is set)

NEIGHBOUR_PS = (0.5, 0.1, 0.9)
POOLED_SEEDS = tuple(range(101, 109))


def _shifted(pair, shift):
    """A NEIGHBOURS entry with both offsets moved by `shift` * 2**26 elements."""
    d = shift << 26
    ka, kb = pair[0], pair[1]
    return ((ka[0], ka[1], ka[2] + d), (kb[0], kb[1], kb[2] + d)) + tuple(pair[2:])


def _max_abs(z):
    k = int(np.argmax(np.abs(z)))
    return z[k], k


def rounds_margin(fmt, n, rounds):
    print(f"\n| rounds | smallest neighbour p-value (pair, p) | max abs(runs z) | max abs(lag z) (lag) |")
    print("|---|---|---|---|")
    for r in rounds:
        mask = tr.reduced_rounds_mask(r)
        worst = (2.0, "", 0.0)
        for name, pair in tr.NEIGHBOURS.items():
            for p in NEIGHBOUR_PS:
                pv = tr.chi2_2x2_pvalue(*tr.neighbour_masks(n, p, pair, fmt, mask))
                if pv < worst[0]:
                    worst = (pv, name, p)
        zr, za = [], []
        for p in tr.RUNS_PS:
            m = mask(n, p, 1, offset=12345, fmt=fmt)
            zr.append(tr.runs_z(m))
            za.append(tr.autocorr_z(m, tr.keep_prob(p), range(1, 65)))
        za = np.concatenate(za)
        z, k = _max_abs(za)
        print(f"| {r} | {worst[0]:.1e} ({worst[1]}, {worst[2]}) | {max(abs(z) for z in zr):.1f} "
              f"| {abs(z):.1f} ({k % 64 + 1}) |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--format", type=int, choices=(1, 2), default=1, help="stream format (default 1)")
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--shift", type=int, default=0, help="retest with other seeds (K > 0)")
    ap.add_argument("--pooled", action="store_true", help="lag 1..64 pooled over 8 seeds")
    ap.add_argument("--rounds-margin", action="store_true",
                    help="the same checks with fewer rounds of the counter function")
    ap.add_argument("--margin-log2n", type=int, default=20, help="elements per mask of --rounds-margin")
    args = ap.parse_args()
    fmt, n, sh = args.format, 1 << args.log2n, args.shift
    t0 = time.time()
    name = {1: "Philox4x32-10", 2: "ARS-7"}[fmt]
    print(f"format {fmt} ({name}); n = 2**{args.log2n} = {n} elements per row"
          + (f"; shift {sh}" if sh else ""))
    seed_keep = 2024 + sh
    print(f"\n| p | T | keep rate | expected | z |   (seed {seed_keep}, stream i)\n|---|---|---|---|---|")
    zs = []
    for i, p in enumerate(tr.P_VALUES):
        m = tr.mask_of(n, p, seed_keep, stream=i, fmt=fmt)
        q = tr.keep_prob(p)
        z = tr.z_keep_rate(m, q)
        zs.append(z)
        print(f"| {p!r} | {tr.reference.threshold(p):#010x} | {m.mean():.7f} | {q:.7f} | {z:+.2f} |")
    print(f"\nkeep rate: {len(zs)} p values, max |z| = {max(abs(z) for z in zs):.2f}")

    seed_runs = 1 + sh
    off_runs = (seed_runs * 12345) % 2 ** 63
    print(f"\n| p | runs z | max abs(z) over lags 1..64 (lag) |   (seed {seed_runs}, offset {off_runs})")
    print("|---|---|---|")
    for p in tr.RUNS_PS:
        m = tr.mask_of(n, p, seed_runs, offset=off_runs, fmt=fmt)
        za = tr.autocorr_z(m, tr.keep_prob(p), range(1, 65))
        z, k = _max_abs(za)
        print(f"| {p!r} | {tr.runs_z(m):+.2f} | {z:+.2f} ({k + 1}) |")

    print("\n| neighbours | p=0.5 | p=0.1 | p=0.9 |\n|---|---|---|---|")
    smallest = (2.0, "")
    for pname, pair in tr.NEIGHBOURS.items():
        pair = _shifted(pair, sh)
        pv = [tr.chi2_2x2_pvalue(*tr.neighbour_masks(n, p, pair, fmt)) for p in NEIGHBOUR_PS]
        smallest = min(smallest, (min(pv), pname))
        print(f"| {pname} | " + " | ".join(f"{v:.3f}" for v in pv) + " |")
    print(f"\nneighbours: {len(tr.NEIGHBOURS) * len(NEIGHBOUR_PS)} p-values, smallest {smallest[0]:.4f} "
          f"({smallest[1]})")

    seed_ties = 0xDEADBEEF + sh
    print(f"\n| p (T) | ties (u == Thi) in 2**24 | kept ties | expected kept | flags != direct count |"
          f"   (seed {seed_ties:#x}, stream 3)")
    print("|---|---|---|---|---|")
    for p in (1 - 0x12345678 / tr.TWO32, 1 - 0x8000FFFF / tr.TWO32, 1 - 0x0001FFFF / tr.TWO32):
        direct, nt, kept = tr._direct_keep(1 << 24, p, seed_ties, 3, fmt)
        got = tr.mask_of(1 << 24, p, seed_ties, 3, fmt=fmt)
        T = tr.reference.threshold(p)
        diff = int(np.count_nonzero(got != direct))
        print(f"| {T:#010x} | {nt} | {kept} | {nt * (T & 0xFFFF) / 65536:.1f} | {diff} |")

    if args.pooled:
        z = np.concatenate([tr.autocorr_z(tr.mask_of(n, 0.5, s, fmt=fmt), 0.5, range(1, 65))
                            for s in POOLED_SEEDS])
        big = int(np.count_nonzero(np.abs(z) > 3))
        print(f"\nlags 1..64 pooled over seeds {POOLED_SEEDS[0]}..{POOLED_SEEDS[-1]} (p = 0.5, stream 0, "
              f"offset 0, {z.size} z values): mean {z.mean():+.3f} (standard error "
              f"{1 / math.sqrt(z.size):.3f}), standard deviation {z.std(ddof=1):.3f}, extremes "
              f"{z.min():+.2f} and {z.max():+.2f}, |z| > 3: {big} (expected {z.size * 0.0027:.1f})")

    if args.rounds_margin:
        nm = 1 << args.margin_log2n
        rounds_margin(fmt, nm, (3, 4, 5, 6, 7, 10) if fmt == 1 else (2, 3, 4, 5, 6, 7))
        print(f"({nm} elements per mask; ties resolved by the secondary draw of the same "
              "reduced-round function; the last row is the format itself)")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
