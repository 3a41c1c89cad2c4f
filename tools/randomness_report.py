#!/usr/bin/env python3
"""Print the numbers behind tests/test_randomness.py (for docs/reliability.md).

  python tools/randomness_report.py [--log2n 24]

Keep-rate z for each p, runs-test z and the largest |z| of the lag 1..64 autocorrelations, the
smallest chi-square p-value of the neighbour-independence tables, and the tie counts over 2**24
elements. Same functions and seeds as the tests.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import test_randomness as tr  # noqa: E402 (after the path is set)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log2n", type=int, default=24)
    args = ap.parse_args()
    n = 1 << args.log2n
    t0 = time.time()
    print(f"n = 2**{args.log2n} = {n} elements per row")
    print("\n| p | T | keep rate | expected | z |\n|---|---|---|---|---|")
    zs = []
    for i, p in enumerate(tr.P_VALUES):
        m = tr.mask_of(n, p, 2024, stream=i)
        q = tr.keep_prob(p)
        z = tr.z_keep_rate(m, q)
        zs.append(z)
        print(f"| {p!r} | {tr.reference.threshold(p):#010x} | {m.mean():.7f} | {q:.7f} | {z:+.2f} |")
    print(f"\nkeep rate: {len(zs)} p values, max |z| = {max(abs(z) for z in zs):.2f}")

    print("\n| p | runs z | max abs(z) over lags 1..64 (lag) |\n|---|---|---|")
    for p in (0.5, 0.1, 0.9, 0.3, 1 - 0x12345678 / tr.TWO32):
        m = tr.mask_of(n, p, 1, offset=12345)
        za = tr.autocorr_z(m, tr.keep_prob(p), range(1, 65))
        k = int(np.argmax(np.abs(za)))
        print(f"| {p!r} | {tr.runs_z(m):+.2f} | {za[k]:+.2f} ({k + 1}) |")

    print("\n| neighbours | p=0.5 | p=0.1 | p=0.9 |\n|---|---|---|---|")
    for name, (ka, kb) in tr.NEIGHBOURS.items():
        pv = [tr.chi2_2x2_pvalue(tr.mask_of(n, p, *ka), tr.mask_of(n, p, *kb)) for p in (0.5, 0.1, 0.9)]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in pv) + " |")

    print("\n| p (T) | ties (u == Thi) in 2**24 | kept ties | expected kept | flags != direct count |")
    print("|---|---|---|---|---|")
    for p in (1 - 0x12345678 / tr.TWO32, 1 - 0x8000FFFF / tr.TWO32, 1 - 0x0001FFFF / tr.TWO32):
        direct, nt, kept = tr._direct_keep(1 << 24, p, 0xDEADBEEF, 3)
        got = tr.cdropout.MaskKey(0xDEADBEEF, 3, 0, p, (1 << 24,)).to_bool()
        T = tr.reference.threshold(p)
        diff = int(np.count_nonzero(got != direct))
        print(f"| {T:#010x} | {nt} | {kept} | {nt * (T & 0xFFFF) / 65536:.1f} | {diff} |")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
