#!/usr/bin/env bash
# bench/ab_w1.sh BIN_A BIN_B [PAIRS] — is B's large-upload path faster than A's?
#
# W1's figures swing with the VM from one minute to the next (BENCHMARKS.md),
# so two binaries are compared in the same minutes: PAIRS rounds (default 10),
# each a plain copy of the W1 payload and then one upload to a fresh server of
# each binary, in the order A B, B A, A B, … Per upload it prints the MiB/s
# (curl's time_total), the server's CPU time (utime + stime from
# /proc/PID/stat) and its VmHWM; at the end the medians and how many pairs
# B won.
#
# Build the two binaries first, e.g.:
#   cargo build --release && cp target/release/aymara-mock /tmp/a
#   (change the code) cargo build --release && cp target/release/aymara-mock /tmp/b
#   bench/ab_w1.sh /tmp/a /tmp/b
# Inputs, storage and knobs (W1_SIZE_MIB, BENCH_STORAGE) as for bench/run.sh.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: bench/ab_w1.sh BIN_A BIN_B [PAIRS]" >&2
  exit 2
fi
BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
PAIRS=${3:-10}
for b in "$BIN_A" "$BIN_B"; do
  [[ -x $b ]] || { echo "bench/ab_w1.sh: $b is not an executable" >&2; exit 2; }
done
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "bench/ab_w1.sh: PAIRS must be a positive number, not '$PAIRS'" >&2; exit 2; }

BENCH_BUILD=${BENCH_BUILD:-0}
BUILT_BIN=$(realpath "$BIN_A")
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cat "$PAYLOAD" "$BODY" >/dev/null # warm the page cache

# upload_once NAME BINARY: one W1 upload to a fresh server; prints "MiB/s cpu_ms hwm_mib"
upload_once() {
  local name=$1 res code secs c0 c1 hwm
  BIN=$2
  start_server "ab-$name" warn
  c0=$(proc_ticks "$SRV_PID")
  res=$(w1_post "$OUT/ab-response.json")
  c1=$(proc_ticks "$SRV_PID")
  hwm=$(vm_hwm_kib)
  stop_server
  code=${res% *} secs=${res#* }
  [[ $code == 200 ]] || die "upload to $name answered $code: $(cat "$OUT/ab-response.json")"
  awk -v m="$W1_SIZE_MIB" -v s="$secs" -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v h="$hwm" \
    'BEGIN {printf "%.1f %d %.1f", m / s, 1000 * t / hz, h / 1024}'
}

copy_once() { # MiB/s of a plain copy of the payload to the storage filesystem
  awk -v m="$W1_SIZE_MIB" -v s="$(w1_copy_secs)" 'BEGIN {printf "%.1f", m / s}'
}

log "W1 A/B: $PAIRS pairs of ${W1_SIZE_MIB} MiB uploads; A=$BIN_A B=$BIN_B"
printf '%-5s %9s  %-26s %-26s\n' pair 'copy' 'A: MiB/s, CPU ms, VmHWM' 'B: MiB/s, CPU ms, VmHWM'
a_mibs=() b_mibs=() a_cpu=() b_cpu=() copies=() b_wins=0
for ((i = 1; i <= PAIRS; i++)); do
  copies+=("$(copy_once)")
  if ((i % 2)); then
    a=$(upload_once a "$BIN_A")
    b=$(upload_once b "$BIN_B")
  else
    b=$(upload_once b "$BIN_B")
    a=$(upload_once a "$BIN_A")
  fi
  read -r am ac ah <<<"$a"
  read -r bm bc bh <<<"$b"
  a_mibs+=("$am") b_mibs+=("$bm") a_cpu+=("$ac") b_cpu+=("$bc")
  if awk -v a="$am" -v b="$bm" 'BEGIN {exit !(b > a)}'; then b_wins=$((b_wins + 1)); fi
  printf '%-5s %9s  %8s %6s ms %5s MiB   %8s %6s ms %5s MiB\n' "$i" "${copies[-1]}" "$am" "$ac" "$ah" "$bm" "$bc" "$bh"
done
med() { printf '%s\n' "$@" | median; }
echo "median copy $(med "${copies[@]}") MiB/s"
echo "median A: $(med "${a_mibs[@]}") MiB/s, $(med "${a_cpu[@]}") ms CPU"
echo "median B: $(med "${b_mibs[@]}") MiB/s, $(med "${b_cpu[@]}") ms CPU"
echo "B faster in $b_wins of $PAIRS pairs"
