#!/usr/bin/env bash
# Pipe cdropout's raw stream (Philox4x32-10 in format 1, ARS-7 in format 2) and its p = 0.5 bit
# mask through Debian's dieharder (stdin_input_raw, -g 200).
#
#   tools/dieharder.sh [raw|mask|both] [quick|all] [seed] [format]
#
#   format 1 (default) or 2, the stream format (tools/philox_stream.py --format); the
#          environment variable CDROPOUT_STREAM_FORMAT is used when the argument is absent
#
#   quick  a bounded selection (~1 min per stream): diehard birthdays, operm5, rank 6x8,
#          bitstream, count-1s stream, runs; sts monobit, runs; rgb lagged sum; dab dct
#   all    the whole battery: dieharder -a -Y 1 (weak results re-tested); an hour or more
#          per stream on one core
#
# Needs dieharder (apt-get install -y dieharder) and cdropout importable (built in place or
# installed). Prints dieharder's tables; exits 1 if any test FAILED, 0 otherwise (WEAK is
# expected now and then: about 1 in 100 results at dieharder's 0.5% two-sided threshold).
set -euo pipefail
kind=${1:-both}
mode=${2:-quick}
seed=${3:-42}
format=${4:-${CDROPOUT_STREAM_FORMAT:-1}}
case "$format" in 1|2) ;; *) echo "format must be 1 or 2, got $format" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
command -v dieharder >/dev/null || { echo "dieharder not found: apt-get install -y dieharder" >&2; exit 2; }

QUICK_TESTS=(0 1 3 4 8 15 100 101 203 206)

run_one() {  # $1 = raw|mask, remaining: dieharder args
    local what=$1; shift
    local gen=(python3 "$here/philox_stream.py" "$what" --seed "$seed" --format "$format")
    [ "$what" = mask ] && gen+=(--p 0.5)
    echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) ${gen[*]} | dieharder -g 200 $*"
    # the generator ends with a broken pipe when dieharder stops reading
    "${gen[@]}" | dieharder -g 200 "$@" || true
}

kinds=("$kind"); [ "$kind" = both ] && kinds=(raw mask)
log=$(mktemp); trap 'rm -f "$log"' EXIT
start=$SECONDS
for k in "${kinds[@]}"; do
    if [ "$mode" = all ]; then
        run_one "$k" -a -Y 1 | tee -a "$log"
    else
        for d in "${QUICK_TESTS[@]}"; do
            run_one "$k" -d "$d" | tee -a "$log"
        done
    fi
done
passed=$(grep -c 'PASSED' "$log" || true)
weak=$(grep -c 'WEAK' "$log" || true)
failed=$(grep -c 'FAILED' "$log" || true)
echo "## summary: $passed PASSED, $weak WEAK, $failed FAILED in $((SECONDS - start)) s (seed $seed, $kind, $mode, format $format)"
[ "$failed" -eq 0 ]
