#!/bin/sh
# Build the standalone kernel checker: sh src_c/tests/build_check.sh [OUT] (default build/check_kernels).
# Flags as the package build uses them: ISA flags only on the ISA files, C11, no -march=native.
# PORTABLE=path overrides the portable kernels source; CFLAGS replaces -O3 (the package's level); CC.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build/check_kernels}
portable=${PORTABLE:-$here/kernels_portable.c}
opt=${CFLAGS:--O3}
cc=${CC:-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
common="-std=c11 $opt -Wall -Wextra -DCD_HAVE_X86_KERNELS -I$here"
$cc $common -c "$portable" -o "$tmp/portable.o"
$cc $common -mavx2 -mfma -mf16c -mbmi2 -maes -c "$here/kernels_avx2.c" -o "$tmp/avx2.o"
$cc $common -mavx512f -mavx512bw -mavx512dq -mavx512vl -mf16c -mbmi2 -maes -mvaes -c "$here/kernels_avx512.c" -o "$tmp/avx512.o"
# OpenMP only for the benchmark's --threads (the kernels themselves never use it)
omp=""
if echo 'int main(void){return 0;}' | $cc -fopenmp -x c - -o "$tmp/omp" 2>/dev/null; then omp=-fopenmp; fi
$cc -std=gnu11 $opt $omp -Wall -DCD_HAVE_X86_KERNELS -I$here -c "$here/tests/check_kernels.c" -o "$tmp/check.o"
$cc $omp "$tmp/check.o" "$tmp/portable.o" "$tmp/avx2.o" "$tmp/avx512.o" -lm -o "$out"
echo "built $out"
