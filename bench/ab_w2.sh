#!/usr/bin/env bash
# bench/ab_w2.sh BIN_A BIN_B [PAIRS] — does B serve small uploads as fast as A?
#
# W2 (4 KiB uploads, W2_CONNECTIONS connections, W2_DURATION s of wrk) for two
# binaries in the same minutes: PAIRS rounds (default 5), each one W2 run of a
# fresh server of each binary, in the order A B, B A, A B, … so that drift of
# the VM touches both alike. Per run it prints req/s, p50, p99, errors and the
# server's VmHWM; at the end the medians and how many rounds B won.
#
# Build the two binaries first (as for bench/ab_w1.sh), then:
#   bench/ab_w2.sh /tmp/a /tmp/b
# Knobs (W2_DURATION, W2_CONNECTIONS, W2_THREADS, W2_WARMUP) as for bench/run.sh.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: bench/ab_w2.sh BIN_A BIN_B [PAIRS]" >&2
  exit 2
fi
BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
PAIRS=${3:-5}
for b in "$BIN_A" "$BIN_B"; do
  [[ -x $b ]] || { echo "bench/ab_w2.sh: $b is not an executable" >&2; exit 2; }
done
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "bench/ab_w2.sh: PAIRS must be a positive number, not '$PAIRS'" >&2; exit 2; }

BENCH_BUILD=${BENCH_BUILD:-0}
BUILT_BIN=$(realpath "$BIN_A")
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

w2_a() { BIN=$BIN_A run_wrk "ab-a-$1" warn; }
w2_b() { BIN=$BIN_B run_wrk "ab-b-$1" warn; }

log "W2 A/B: $PAIRS pairs of ${W2_DURATION} s; A=$BIN_A B=$BIN_B"
w2_rounds "$PAIRS" A w2_a B w2_b
b_wins=0
for ((i = 0; i < PAIRS; i++)); do
  if ((${W2_B[i]%% *} > ${W2_A[i]%% *})); then b_wins=$((b_wins + 1)); fi
done
echo "median A: $(w2_median W2_A 1) req/s, p99 $(w2_median W2_A 3) ms"
echo "median B: $(w2_median W2_B 1) req/s, p99 $(w2_median W2_B 3) ms"
echo "B faster in $b_wins of $PAIRS pairs"
