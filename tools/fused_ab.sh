#!/bin/sh
# Out-of-cache A/B of the AVX-512 fused kernels: sources of git revision REV (A) against the
# working tree (B), linked into one program (tools/fused_ab.c) and timed interleaved.
#   sh tools/fused_ab.sh REV [ELEMENTS [ROUNDS [THREADS]]]     e.g. sh tools/fused_ab.sh e4034d5
# Extra compiler flags for B (for example -DCD_NT_MIN_BYTES=0) go in BFLAGS.
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:?usage: sh tools/fused_ab.sh REV [ELEMENTS [ROUNDS [THREADS]]]}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$rev" src_c | tar -x -C "$tmp"
cc=${CC:-gcc}
base="-std=c11 -O3 -fno-strict-aliasing -DCD_HAVE_X86_KERNELS"
isa="-mavx512f -mavx512bw -mavx512dq -mavx512vl -mf16c -mbmi2 -maes -mvaes"
S=$root/src_c
$cc $base -I"$S" -c "$S/kernels_portable.c" -o "$tmp/p.o"
$cc $base -I"$S" -mavx2 -mfma -mf16c -mbmi2 -maes -c "$S/kernels_avx2.c" -o "$tmp/a2.o"
$cc $base -I"$S" $isa -c "$S/kernels_avx512.c" -o "$tmp/a5.o"
$cc $base -I"$S" -fopenmp -c "$S/cdropout.c" -o "$tmp/c.o"
$cc $base -I"$tmp/src_c" $isa -Dcd_kernels_avx512=AB_A -c "$tmp/src_c/kernels_avx512.c" -o "$tmp/A.o"
$cc $base -I"$S" $isa $BFLAGS -Dcd_kernels_avx512=AB_B -c "$S/kernels_avx512.c" -o "$tmp/B.o"
$cc $base -I"$S" -fopenmp -c "$root/tools/fused_ab.c" -o "$tmp/ab.o"
$cc -fopenmp "$tmp"/*.o -o "$tmp/fused_ab"
echo "A = $rev, B = working tree $BFLAGS; 1-min load average $(cut -d' ' -f1 /proc/loadavg)"
"$tmp/fused_ab" "${2:-67108864}" "${3:-8}" "${4:-1}"
