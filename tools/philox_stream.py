#!/usr/bin/env python3
"""Write cdropout's random streams to stdout as raw bytes, for dieharder -g 200 (stdin_input_raw).

  raw   The counter function's output of blocks 0, 1, 2, ... of (seed, stream): the four 32-bit
        words of each block, word 0 first, little-endian (exactly the primary draws of the
        format): Philox4x32-10 with key (seed lo, seed hi) for --format 1, ARS-7 with key
        (seed lo, seed hi, 0, 0) for --format 2; counter (b lo, b hi, stream lo, stream hi).
  mask  The packed keep mask of dropout at probability p (element i = bit i, LSB first),
        elements 0, 1, 2, ... of (seed, stream) in the format: the bytes of BitMask.data.

Writes until --bytes are written (default: forever) or the reader closes the pipe. Uses
cdropout's compiled core (the kernels the library runs), not the test reference.

  python tools/philox_stream.py raw --seed 42 | dieharder -g 200 -d 0
  python tools/philox_stream.py raw --seed 42 --format 2 | dieharder -g 200 -d 0
  python tools/philox_stream.py mask --p 0.5 --seed 42 --format 2 | dieharder -g 200 -a
"""
import argparse
import os
import sys

import numpy as np

import cdropout
from cdropout import _core

CHUNK_BLOCKS = 1 << 18  # 4 MiB of raw output per chunk
ARS_ROUNDS = 7          # format 2's ARS-7


def raw_chunks(seed, stream, start_block=0, fmt=1):
    ctr = np.empty((CHUNK_BLOCKS, 4), np.uint32)
    out = np.empty_like(ctr)
    ctr[:, 2] = stream & 0xFFFFFFFF
    ctr[:, 3] = stream >> 32
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    b = start_block
    while True:
        blocks = np.arange(b, b + CHUNK_BLOCKS, dtype=np.uint64)
        ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
        ctr[:, 1] = blocks >> np.uint64(32)
        if fmt == 1:
            _core.philox(ctr, out, lo, hi, 10)
        else:
            _core.ars(ctr, out, lo, hi, 0, 0, ARS_ROUNDS)
        yield out.astype("<u4").tobytes()
        b += CHUNK_BLOCKS


def mask_chunks(seed, stream, p, start_element=0, fmt=1):
    n = CHUNK_BLOCKS * 32  # elements per chunk: 1 MiB of mask
    e = start_element
    while True:
        yield cdropout.MaskKey(seed, stream, e, p, (n,), version=fmt).to_bits().data.tobytes()
        e += n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("raw", "mask"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stream", type=int, default=0)
    ap.add_argument("--p", type=float, default=0.5, help="drop probability (mask only)")
    ap.add_argument("--format", type=int, choices=(1, 2), default=1,
                    help="stream format: 1 Philox4x32-10 (default), 2 ARS-7")
    ap.add_argument("--bytes", type=int, default=0, help="stop after this many bytes (0: never)")
    args = ap.parse_args(argv)
    chunks = raw_chunks(args.seed, args.stream, fmt=args.format) if args.kind == "raw" else \
        mask_chunks(args.seed, args.stream, args.p, fmt=args.format)
    out = sys.stdout.buffer
    left = args.bytes or None
    try:
        for chunk in chunks:
            if left is not None:
                chunk = chunk[:left]
                left -= len(chunk)
            out.write(chunk)
            if left == 0:
                break
        out.flush()
    except BrokenPipeError:  # the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
