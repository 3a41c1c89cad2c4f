#!/usr/bin/env bash
# Memory-safety runs of cdropout's C core, in a throw-away copy of the tree (the normal
# in-place build is not touched).
#
#   tools/sanitize.sh [asan|valgrind|all] [tests...]
#
#   asan      build with -fsanitize=address,undefined -fno-omit-frame-pointer (UBSan errors
#             are fatal), then run the tests with libasan preloaded, once per kernel path this
#             CPU offers (CDROPOUT_ISA=portable, avx2, avx512). Default tests: the suite (not
#             slow/stats, per addopts) minus the example, bench CLI and torch tests -- every
#             kernel path (also through forced_isa), dtype, layout, thread count, error path.
#   valgrind  the normal build (-O3, no sanitizer) under valgrind memcheck on the portable
#             path (valgrind does not know AVX-512), on a small subset (VALGRIND_TESTS).
#   all       both.
#
# Environment: KEEP=1 keeps the temp dir; HYPOTHESIS_PROFILE (default ci) sizes the fuzzing.
# Exit status non-zero on the first failing run. Prints the time of each run.
set -euo pipefail
mode=${1:-asan}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
PY=${PYTHON:-python3}
PY=$("$PY" -c 'import sys; print(sys.executable)')  # the real binary, not a pyenv/venv shim script

ASAN_TESTS=("$@")
# default: the whole suite but the example (trains an MLP), the bench CLI and PyTorch interop
# (torch brings its own OpenMP runtime and is not what is being checked here)
[ ${#ASAN_TESTS[@]} -eq 0 ] && ASAN_TESTS=(tests --ignore=tests/test_example.py
    --ignore=tests/test_bench_cli.py --ignore=tests/test_torch_interop.py)
VALGRIND_TESTS=${VALGRIND_TESTS:-"tests/test_arbitrary_inputs.py tests/test_philox_kat.py tests/test_fuzz.py::test_valid_calls_match_reference tests/test_fuzz.py::test_invalid_calls_raise_and_leave_input"}

"$PY" -c "import Cython, numpy, setuptools" 2>/dev/null || {
    echo "tools/sanitize.sh builds the extension itself: pip install 'Cython>=3' numpy setuptools" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdropout-sanitize.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "work dir: $work"; else trap 'rm -rf "$work"' EXIT; fi

copy_tree() {  # $1 = destination: the work tree without .git and without built objects
    mkdir -p "$1"
    (cd "$root" && tar cf - --exclude='.git' --exclude='*.so' --exclude='__pycache__' --exclude='./build' \
        --exclude='.hypothesis' --exclude='.pytest_cache' --exclude='cdropout/_core.c' \
        --exclude='.benchmarks' --exclude='.venv*' .) | (cd "$1" && tar xf -)
}

isas() {  # the kernel paths this CPU and build offer
    (cd "$1" && "$PY" -c "import cdropout; print(' '.join(cdropout.simd_info()['available']))")
}

timed() {  # label, command...
    local label=$1; shift
    local t0=$SECONDS
    echo "== $label: $*"
    "$@"
    echo "== $label: ok in $((SECONDS - t0)) s"
}

run_asan() {
    local dir=$work/asan
    copy_tree "$dir"
    local san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
    local t0=$SECONDS
    # The flags go into CC too: setup.py's OpenMP probe links an executable with CC only (not
    # LDFLAGS), and without libasan on that link the probe fails and the build drops OpenMP.
    (cd "$dir" && CC="${CC:-gcc} $san" CFLAGS="$san" LDFLAGS="$san" "$PY" setup.py build_ext --inplace \
        >build.log 2>&1) || { tail -30 "$dir/build.log"; exit 1; }
    echo "== asan build: $((SECONDS - t0)) s"
    local libasan
    libasan=$(${CC:-gcc} -print-file-name=libasan.so)
    [ -f "$libasan" ] || { echo "libasan not found ($libasan)" >&2; exit 1; }
    # allocator_may_return_null: an impossible allocation (tests/test_huge.py asks NumPy for
    # 2 PiB) returns NULL -> MemoryError, as without ASan, instead of aborting
    export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    export PYTHONMALLOC=malloc   # Python objects through malloc too, so ASan sees them
    local paths omp
    paths=$(LD_PRELOAD=$libasan isas "$dir")
    omp=$(cd "$dir" && LD_PRELOAD=$libasan "$PY" -c "import cdropout; print(cdropout.simd_info()['openmp'])")
    echo "== kernel paths: $paths; OpenMP: $omp"
    if [ "$omp" != True ] && [ "${SANITIZE_ALLOW_NO_OPENMP:-0}" != 1 ]; then
        echo "the sanitized build has no OpenMP (see $dir/build.log); SANITIZE_ALLOW_NO_OPENMP=1 to go on" >&2
        exit 1
    fi
    for isa in $paths; do
        (cd "$dir" && timed "asan+ubsan CDROPOUT_ISA=$isa" env LD_PRELOAD="$libasan" CDROPOUT_ISA="$isa" \
            "$PY" -m pytest -q -p no:cacheprovider -p no:warnings "${ASAN_TESTS[@]}")
    done
    # one deliberate error: proves the sanitizer is live in this build (must abort)
    (cd "$dir" && PYTHONPATH="$dir" LD_PRELOAD=$libasan "$PY" tools/overrun_canary.py >/dev/null 2>"$dir/canary.log") || true
    if grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$dir/canary.log"; then
        echo "== canary: ASan caught a deliberate heap overrun in the extension (as it must)"
    else
        echo "== canary: ASan did NOT catch a deliberate overrun:" >&2; tail -5 "$dir/canary.log" >&2; exit 1
    fi
}

run_valgrind() {
    command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }
    local dir=$work/valgrind
    copy_tree "$dir"
    local t0=$SECONDS
    (cd "$dir" && "$PY" setup.py build_ext --inplace >build.log 2>&1) || { tail -30 "$dir/build.log"; exit 1; }
    echo "== valgrind build: $((SECONDS - t0)) s"
    # CPython, NumPy and ld.so have known memcheck reports of their own (strncmp in dl-load.c,
    # uninitialised padding of NumPy long double scalars, ...): an error record fails the run
    # only if one of its frames is in cdropout's extension or C sources; the others are counted.
    (cd "$dir" && timed "valgrind memcheck CDROPOUT_ISA=portable" env CDROPOUT_ISA=portable PYTHONMALLOC=malloc \
        HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-valgrind}" \
        valgrind --tool=memcheck --leak-check=no --track-origins=yes --trace-children=yes \
            --log-file="$dir/valgrind.%p.log" \
            "$PY" -m pytest -q -x -p no:cacheprovider -p no:warnings $VALGRIND_TESTS)
    # the canary: memcheck must see an overrun in the extension, or the check is blind
    (cd "$dir" && PYTHONPATH="$dir" PYTHONMALLOC=malloc valgrind --tool=memcheck --log-file="$dir/canary.vg" \
        "$PY" tools/overrun_canary.py >/dev/null 2>&1) || true
    if grep -A8 "Invalid \(read\|write\)" "$dir/canary.vg" | grep -q "kernels_portable\|_core\.cpython"; then
        echo "== canary: memcheck caught a deliberate overrun in the extension (as it must)"
    else
        echo "== canary: memcheck did NOT see a deliberate overrun" >&2; exit 1
    fi
    "$PY" - "$dir" <<'PYEOF'
import glob, re, sys
ours, others, summaries = [], 0, []
for log in sorted(glob.glob(sys.argv[1] + "/valgrind.*.log")):
    text = open(log).read()
    summaries += re.findall(r"ERROR SUMMARY: .*", text)
    # error records: lines of one pid between blank '==pid==' lines, starting with a message
    for rec in re.split(r"\n==\d+== *\n", text):
        lines = [l for l in rec.splitlines() if l.startswith("==")]
        if not lines or not re.match(r"==\d+== (Invalid|Conditional|Use of uninit|Syscall param|Source and dest|Mismatched|Argument)", lines[0]):
            continue
        if re.search(r"_core\.cpython|src_c/|cdropout\.c|kernels_\w+\.c|philox\.h", rec):
            ours.append(rec)
        else:
            others += 1
print("== valgrind error summaries (one per process):")
for s in summaries:
    print("   " + s)
print(f"== valgrind: {len(ours)} error records with a frame in cdropout's extension, "
      f"{others} elsewhere (CPython/NumPy/ld.so)")
if ours:
    print("\n\n".join(ours[:10]), file=sys.stderr)
    sys.exit(1)
PYEOF
}

case $mode in
    asan) run_asan ;;
    valgrind) run_valgrind ;;
    all) run_asan; run_valgrind ;;
    *) echo "usage: $0 [asan|valgrind|all] [tests...]" >&2; exit 2 ;;
esac
