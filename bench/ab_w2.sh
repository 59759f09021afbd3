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

w2_once() { # w2_once NAME BINARY: prints "req/s p50 p99 errors hwm_mib"
  BIN=$2
  run_wrk "ab-$1" warn >&2
  printf '%s %s %s %s %s' "$R_RPS" "$R_P50" "$R_P99" "$R_ERRORS" "$R_HWM_MIB"
}

if ((W2_WARMUP > 0)); then
  log "W2 warm-up: ${W2_WARMUP} s of each binary, not measured"
  W2_DURATION=$W2_WARMUP w2_once warm-a "$BIN_A" >/dev/null
  W2_DURATION=$W2_WARMUP w2_once warm-b "$BIN_B" >/dev/null
fi
log "W2 A/B: $PAIRS pairs of ${W2_DURATION} s; A=$BIN_A B=$BIN_B"
printf '%-5s %-34s %-34s\n' pair 'A: req/s, p50, p99 ms, errors, VmHWM' 'B: req/s, p50, p99 ms, errors, VmHWM'
a_rps=() b_rps=() a_p99=() b_p99=() b_wins=0
for ((i = 1; i <= PAIRS; i++)); do
  if ((i % 2)); then
    a=$(w2_once a "$BIN_A")
    b=$(w2_once b "$BIN_B")
  else
    b=$(w2_once b "$BIN_B")
    a=$(w2_once a "$BIN_A")
  fi
  read -r ar a50 a99 ae ah <<<"$a"
  read -r br b50 b99 be bh <<<"$b"
  a_rps+=("$ar") b_rps+=("$br") a_p99+=("$a99") b_p99+=("$b99")
  if ((br > ar)); then b_wins=$((b_wins + 1)); fi
  printf '%-5s %7s %6s %6s %4s %6s MiB   %7s %6s %6s %4s %6s MiB\n' "$i" "$ar" "$a50" "$a99" "$ae" "$ah" "$br" "$b50" "$b99" "$be" "$bh"
done
med() { printf '%s\n' "$@" | median; }
echo "median A: $(med "${a_rps[@]}") req/s, p99 $(med "${a_p99[@]}") ms"
echo "median B: $(med "${b_rps[@]}") req/s, p99 $(med "${b_p99[@]}") ms"
echo "B faster in $b_wins of $PAIRS pairs"
