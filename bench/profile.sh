#!/usr/bin/env bash
# bench/profile.sh — where the server's time goes in W1, W2 and W4 (~1 min).
#
# Attaches `perf` to the release server (software clock sampling: this VM has
# no hardware counters) while bench/run.sh's workloads run, and writes to
# bench/out/:
#   perf-<w>-flat.txt     self time by dso and symbol (-F 1999)
#   perf-<w>-tree.txt     inclusive time (children) from DWARF call graphs (-F 499)
#   perf-<w>-buckets.txt  the call-graph samples sorted into kinds of work
#                         (sha256, file write, socket, malloc, multer, rules, …)
#                         by bench/perf_buckets.py
#   perf-<w>-threads.txt  self time by thread (samples at 1999 Hz: n/1999 = CPU seconds)
#   perf-<w>-stat.txt     syscall counts, context switches, page faults, CPU time
# with <w> = w1 (one 1 GiB upload per pass), w2 (4 KiB uploads, wrk 5 s per
# pass), w2info (W2 at --log-level info; call graph only) and w4 (W2 with
# 1,000 non-matching rules; no syscall counts).
#
# Needs perf (Debian: linux-perf; installed when root and missing).
# Knobs: PROFILE_SECS=5 (wrk seconds per pass), plus those of bench/run.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE_SECS=${PROFILE_SECS:-5}

if ! command -v perf >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "perf is missing: installing it (apt-get install -y linux-perf)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
  fi
  command -v perf >/dev/null 2>&1 || die "perf is missing (Debian: apt-get install linux-perf)"
fi

SYSCALLS=(read readv recvfrom write writev pwrite64 sendto sendmsg futex epoll_wait
  epoll_ctl sched_yield openat close mkdir mkdirat rename renameat2 unlink unlinkat
  statx newfstatat fstat mmap munmap madvise mremap brk getrandom accept4 ioctl)
STAT_EVENTS=task-clock,context-switches,cpu-migrations,page-faults
for s in "${SYSCALLS[@]}"; do
  if perf list "syscalls:sys_enter_$s" 2>/dev/null | grep -q "sys_enter_$s "; then
    STAT_EVENTS+=",syscalls:sys_enter_$s"
  fi
done

PERF_PID=
perf_start() { # perf_start OUTFILE perf-subcommand-args...
  local out=$1
  shift
  perf "$@" -p "$SRV_PID" >"$out.log" 2>&1 &
  PERF_PID=$!
  sleep 0.5 # let perf attach to every thread (profiling, not timing)
}
perf_stop() {
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=
}

report() { # report NAME: text reports from perf-NAME.data / perf-NAME-cg.data
  local name=$1
  perf report -i "$OUT/perf-$name.data" --stdio --no-children --sort dso,sym \
    --percent-limit 0.3 2>/dev/null | grep -v '^$' >"$OUT/perf-$name-flat.txt"
  perf report -i "$OUT/perf-$name.data" --stdio --no-children --sort pid --show-nr-samples \
    2>/dev/null | grep -v '^$' >"$OUT/perf-$name-threads.txt"
  if [[ -f $OUT/perf-$name-cg.data ]]; then
    perf report -i "$OUT/perf-$name-cg.data" --stdio --children --sort sym -g none --no-inline \
      --percent-limit 2 2>/dev/null | grep -v '^$' >"$OUT/perf-$name-tree.txt"
    perf script -i "$OUT/perf-$name-cg.data" -F tid,period,ip,sym,dso --no-inline 2>/dev/null |
      python3 "$HERE/perf_buckets.py" >"$OUT/perf-$name-buckets.txt"
  fi
}

w1_upload() { # prints "HTTP_CODE SECONDS"
  w1_post /dev/null
  echo
}

wrk_pass() {
  BENCH_FILE_BYTES=4096 BENCH_API_KEY=$API_KEY \
    wrk -t"$W2_THREADS" -c"$W2_CONNECTIONS" -d"${PROFILE_SECS}s" --latency \
    -s "$HERE/upload.lua" "$SRV_URL$UPLOAD_PATH" | grep -E '^(Requests/sec|BENCH)'
}

mkdir -p "$OUT"
cat "$PAYLOAD" "$BODY" >/dev/null # warm the page cache

log "W1 under perf: flat, call graph, syscall counts (one upload each)"
start_server prof-w1 warn
perf_start "$OUT/perf-w1" record -e cpu-clock -F 1999 -o "$OUT/perf-w1.data"
w1_upload
perf_stop
clear_uploads >/dev/null # outside the profiled window
perf_start "$OUT/perf-w1-cg" record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$OUT/perf-w1-cg.data"
w1_upload
perf_stop
clear_uploads >/dev/null # outside the profiled window
perf_start "$OUT/perf-w1-stat" stat -e "$STAT_EVENTS" -o "$OUT/perf-w1-stat.txt"
w1_upload
perf_stop
clear_uploads >/dev/null # outside the profiled window
stop_server
report w1

log "W2 under perf: flat, call graph, syscall counts (wrk ${PROFILE_SECS} s each)"
start_server prof-w2 warn
perf_start "$OUT/perf-w2" record -e cpu-clock -F 1999 -o "$OUT/perf-w2.data"
wrk_pass
perf_stop
clear_uploads >/dev/null # outside the profiled window
perf_start "$OUT/perf-w2-cg" record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$OUT/perf-w2-cg.data"
wrk_pass
perf_stop
clear_uploads >/dev/null # outside the profiled window
perf_start "$OUT/perf-w2-stat" stat -e "$STAT_EVENTS" -o "$OUT/perf-w2-stat.txt"
wrk_pass | tee "$OUT/perf-w2-stat-wrk.txt"
perf_stop
clear_uploads >/dev/null # outside the profiled window
stop_server
report w2

log "W2 at --log-level info under perf: call graph (wrk ${PROFILE_SECS} s)"
start_server prof-w2info info
perf_start "$OUT/perf-w2info-cg" record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$OUT/perf-w2info-cg.data"
wrk_pass
perf_stop
clear_uploads >/dev/null # outside the profiled window
stop_server
perf script -i "$OUT/perf-w2info-cg.data" -F tid,period,ip,sym,dso --no-inline 2>/dev/null |
  python3 "$HERE/perf_buckets.py" >"$OUT/perf-w2info-buckets.txt"

log "W4 under perf: flat, call graph (wrk ${PROFILE_SECS} s each)"
start_server prof-w4 warn --fixtures "$FIXTURE"
perf_start "$OUT/perf-w4" record -e cpu-clock -F 1999 -o "$OUT/perf-w4.data"
wrk_pass
perf_stop
clear_uploads >/dev/null # outside the profiled window
perf_start "$OUT/perf-w4-cg" record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$OUT/perf-w4-cg.data"
wrk_pass
perf_stop
clear_uploads >/dev/null # outside the profiled window
stop_server
report w4

for w in w1 w2 w2info w4; do
  echo "== $w: where the server's CPU time goes (bench/out/perf-$w-buckets.txt)"
  cat "$OUT/perf-$w-buckets.txt"
done
rm -f "$OUT"/perf-*.data.old
log "done: bench/out/perf-{w1,w2,w2info,w4}-*.txt"
