"""Write the frozen known-answer files of tests/data/ (run ONCE; never regenerate them).

    python tools/make_known_answers.py            # refuses to overwrite existing files
    python tools/make_known_answers.py --check    # recompute and compare, write nothing

Like numpy/random/tests/data/*-testset-*.csv: the expected values come from the independent
pure-NumPy/pure-Python references of the tests (tests/reference.py for format v1 and v2 masks and
alpha dropout's constants, tests/test_variants.py's scalar evaluation of docs/variants.md for
Gaussian noise), never from cdropout itself. tests/test_known_answers.py then checks the library against
the files on every kernel path and several thread counts, so any change to a stream fails loudly.
If the format must ever change, that is a new format version with new files, not an edit here.

Files (text, one case per line, '#' lines are comments):
  format-v1-masks.csv   seed,stream,offset,p,n,sha256,bits
                        p as float.hex; bits: the packed mask (np.packbits(keep, bitorder='little'),
                        i.e. a BitMask's bytes) in hex when n <= 2048, else empty;
                        sha256 of those bytes always.
  format-v2-masks.csv   the same grid and columns for format v2 (ARS-7).
  gaussian-v1.csv       seed,stream,offset,p,n,sha256,noise
                        the float64 noise of gaussian_noise(n, p, ...) as little-endian bytes:
                        sha256 always, the values as float.hex (space separated) when n <= 16.
  alpha-constants.csv   p,a,b,c   (float.hex) the constants of docs/variants.md.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DATA = TESTS / "data"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT))

import reference  # noqa: E402

U64 = 1 << 64
FULL_BITS_MAX_N = 2048
FULL_NOISE_MAX_N = 16


def _mask_grid():
    """(seed, stream, offset, p, n): every p class of format v1, offsets at the 2**32 element and
    block boundaries and at the top of the index space, sizes that are not multiples of 8."""
    t = reference.threshold
    pft = reference.p_for_threshold
    ps = [
        0.0, 1.0, 0.5, 0.1, 0.9, 1 / 3, 0.3, 0.05, 0.99,
        2.0 ** -33,                       # T = round(2**32 - 0.5) = 2**32: keep all
        2.0 ** -32,                       # T = 2**32 - 1
        1.0 - 2.0 ** -32,                 # T = 1: almost never kept
        1.0 - 2.0 ** -33,                 # T = round(0.5) = 0: drop all
        math.nextafter(0.0, 1.0), math.nextafter(1.0, 0.0),
        pft(0x8000_0000 + 0.5), pft(0x8000_0000 - 0.5),     # ties of the T rounding
        pft(0x1234_5678), pft(0x1234_5678 + 0.5),
        pft(0xABCD_0001), pft(0xABCD_FFFF), pft(0x0001_0000), pft(0xFFFF_0000),  # Tlo edges
        pft(0x0000_FFFF), pft(0x7FFF_8000),
    ]
    for p in ps:
        assert 0.0 <= p <= 1.0 and (p in (0.0, 1.0) or 0 <= t(p) <= 1 << 32), p
    keys = [(0, 0), (1, 1), (0xDEADBEEF, 7), (1 << 32, (1 << 32) - 1), (12345678901234567, 1 << 63),
            (U64 - 1, U64 - 1)]
    offsets = [0, 1, 7, 8, 9, (1 << 32) - 5, 8 * (1 << 32) - 3, (1 << 35) + 1, (1 << 61) + 3]
    sizes = [1, 7, 8, 9, 63, 64, 65, 127, 1000, 4097, 20_003]
    cases = []
    i = 0
    for p in ps:
        for seed, stream in keys:
            offset = offsets[i % len(offsets)]
            n = sizes[(i * 7) % len(sizes)]
            cases.append((seed, stream, offset, p, n))
            i += 1
    # the very top of the index space: the last elements, a ragged tail ending at 2**64 - 1
    for n in (1, 13, 64, 1001):
        cases.append((99, 3, U64 - n, 0.5, n))
        cases.append((U64 - 1, 0, U64 - n - 3, 1 / 3, n))
    # large ones, which every thread count splits (with the test's small chunks)
    cases.append((31337, 0, 11, 1 / 3, 300_007))
    cases.append((2024, 5, (1 << 32) - 100_000, 0.7, 200_003))
    cases.append((7, U64 - 2, U64 - 150_001, pft(0x9999_0000 + 0.5), 150_001))
    return cases


def _gaussian_grid():
    cases = []
    for seed, stream, offset, p, n in [(0, 0, 0, 0.5, 16), (1, 2, 3, 0.1, 13), (2**63 + 5, 2**40, 2, 0.9, 7),
                                       (7, 0, (1 << 32) * 4 - 6, 0.3, 1000),
                                       (U64 - 1, U64 - 1, U64 - 103, 0.5, 103),
                                       (12345, 7, 1 << 61, 0.25, 4099), (3, 1, (1 << 40) + 3, 0.999, 2048)]:
        cases.append((seed, stream, offset, p, n))
    return cases


def _alpha_ps():
    return [0.0, 5e-324, 1e-300, 2.0 ** -53, 1e-10, 0.01, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.3, 0.4, 0.5,
            math.nextafter(0.5, 1.0), 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99, 0.999999,
            1 - 2.0 ** -20, 1 - 1e-12, 1 - 2.0 ** -52, 1 - 2.0 ** -53]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def mask_lines(fmt=1):
    yield "seed,stream,offset,p,n,sha256,bits"
    for seed, stream, offset, p, n in _mask_grid():
        data = reference.packbits(reference.keep_flat(n, p, seed, stream, offset, fmt)).tobytes()
        full = data.hex() if n <= FULL_BITS_MAX_N else ""
        yield f"{seed},{stream},{offset},{float(p).hex()},{n},{_sha(data)},{full}"


def gaussian_lines():
    import test_variants  # the scalar pure-Python evaluation of docs/variants.md
    yield "seed,stream,offset,p,n,sha256,noise"
    for seed, stream, offset, p, n in _gaussian_grid():
        m = test_variants.noise_reference(seed, stream, offset, p, (n,)).astype("<f8")
        full = " ".join(float(v).hex() for v in m) if n <= FULL_NOISE_MAX_N else ""
        yield f"{seed},{stream},{offset},{float(p).hex()},{n},{_sha(m.tobytes())},{full}"


def alpha_lines():
    yield "p,a,b,c"
    for p in _alpha_ps():
        a, b, c = reference.alpha_constants(p)
        yield f"{float(p).hex()},{a.hex()},{b.hex()},{c.hex()}"


HEADER = ("# Frozen known answers of cdropout ({what}), written once by tools/make_known_answers.py\n"
          "# from the independent test references. Never edit or regenerate: a mismatch means the\n"
          "# stream changed. Format: see tools/make_known_answers.py.\n")

FILES = {
    "format-v1-masks.csv": ("format v1 packed keep masks", lambda: mask_lines(1)),
    "format-v2-masks.csv": ("format v2 (ARS-7) packed keep masks", lambda: mask_lines(2)),
    "gaussian-v1.csv": ("Gaussian dropout noise, float64", gaussian_lines),
    "alpha-constants.csv": ("alpha dropout constants a, b, c", alpha_lines),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare; write nothing")
    args = ap.parse_args()
    status = 0
    DATA.mkdir(exist_ok=True)
    for name, (what, lines) in FILES.items():
        text = HEADER.format(what=what) + "\n".join(lines()) + "\n"
        path = DATA / name
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{name}: {'same' if same else 'DIFFERENT'}")
            status |= not same
        elif path.exists():
            print(f"{name}: exists, not overwritten (frozen)")
        else:
            path.write_text(text)
            print(f"{name}: written, {text.count(chr(10)) - 4} cases")
    return status


if __name__ == "__main__":
    sys.exit(main())
