#!/usr/bin/env bash
# bench/concurrency.sh [BIN...] — many uploads at once (issue 30): the
# emulator against nginx keeping the bodies it receives, on one filesystem.
#
# For each body size (CONC_SIZES_MIB) and connection count (CONC_CONNECTIONS),
# wrk posts one pre-built multipart upload (bench/upload.lua) over C
# connections for CONC_DURATION seconds, to nginx and then to each binary in
# turn (fresh processes each time; the order rotates from one point to the
# next so that drift of the VM touches all alike). Per run it reports:
#   MiB/s     bytes the server wrote (wchar in /proc/PID/io: its files, plus
#             its few answers) per second of the run: what it stored, also of
#             uploads still in flight when the run ends (with 256 x 20 MiB,
#             few or none complete within a run when every upload gets its
#             fair share)
#   CPU s/GiB the server's CPU time (utime + stime, all its processes) per GiB
#             written: what the work costs, whatever else shares the machine
#   done/s    completed requests x body size / wrk's duration (MiB/s)
#   p99       wrk's 99th percentile latency (ms) of the completed requests
#   RSS       peak resident memory (VmHWM; nginx: its workers' added up), MiB
#   threads   peak thread count (sampled every 0.1 s; nginx: its workers' added up)
#   after     resident memory 5 s after the load ended, and before it (idle), MiB
#   errors    socket errors + non-2xx answers
# then one table of every run.
#
# nginx: `worker_processes auto`, the body saved in a file that is kept
# (`client_body_in_file_only on`) under the storage filesystem, then a
# one-line request without the body (`proxy_pass_request_body off`) to an
# empty `return 200` location of the same nginx: the usual nginx upload
# recipe. It hashes nothing; the emulator takes each body's SHA-256.
#
# CONC_METHOD=put measures the presigned PUT instead (bench/put.lua): the
# raw body PUT again and again to one `file_url` from `POST /v2/files` (each
# PUT replaces the file: the emulator writes, hashes (SHA-256 and, past
# 256 KiB on a spare thread, MD5) and commits every one), and to nginx
# keeping it as above.
#
# BIN...: binaries to compare (e.g. the commit before and after a change);
# none: target/release/aymara-mock, built first (BENCH_BUILD=1).
#
# Knobs (environment), besides bench/run.sh's BENCH_STORAGE:
#   CONC_SIZES_MIB="2 20"  CONC_CONNECTIONS="32 256"  CONC_DURATION=10
#   CONC_ROUNDS=1          runs of each point
#   CONC_TMPFS_SIZE=16g    size of the tmpfs (BENCH_STORAGE=tmpfs, as root):
#                          both servers keep everything for the whole run
#   CONC_SETTLE=5          seconds after the load before the `after` RSS
# Writes under bench/out/ (reports) and the storage dir only; needs nginx
# (installed with apt-get when missing and root).
set -euo pipefail

CONC_SIZES_MIB=${CONC_SIZES_MIB:-"2 20"}
CONC_CONNECTIONS=${CONC_CONNECTIONS:-"32 256"}
CONC_DURATION=${CONC_DURATION:-10}
CONC_ROUNDS=${CONC_ROUNDS:-1}
CONC_TMPFS_SIZE=${CONC_TMPFS_SIZE:-16g}
CONC_SETTLE=${CONC_SETTLE:-5}
CONC_METHOD=${CONC_METHOD:-post}
case $CONC_METHOD in
  post) CONC_SCRIPT=upload.lua ;;
  put) CONC_SCRIPT=put.lua ;;
  *) echo "bench/concurrency.sh: CONC_METHOD must be post or put, not $CONC_METHOD" >&2; exit 2 ;;
esac
# lib.sh prepares W1's payload: a small one will do here.
W1_SIZE_MIB=${W1_SIZE_MIB:-1}
BENCH_NGINX=1
if [[ $# -gt 0 ]]; then
  BENCH_BUILD=${BENCH_BUILD:-0}
  BUILT_BIN=$(realpath "$1")
fi
BINS=("$@")
for b in "${BINS[@]}"; do
  [[ -x $b ]] || { echo "bench/concurrency.sh: $b is not an executable" >&2; exit 2; }
done

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_nginx
if [[ -n $MOUNTED ]]; then mount -o "remount,size=$CONC_TMPFS_SIZE" "$MOUNTED"; fi
if [[ ${#BINS[@]} -eq 0 ]]; then BINS=("$BIN"); fi

# sample_peaks OUTFILE PID...: until stopped, writes "threads rss_kib", each
# the peak of the PIDs' sum, to OUTFILE every 0.1 s.
sample_peaks() {
  local out=$1
  shift
  local peak_t=0 peak_r=0 t r
  while :; do
    read -r t r < <(for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done |
      awk '/^Threads:/ {t += $2} /^VmRSS:/ {r += $2} END {print t + 0, r + 0}')
    ((t > peak_t)) && peak_t=$t
    ((r > peak_r)) && peak_r=$r
    echo "$peak_t $peak_r" >"$out.tmp" && mv "$out.tmp" "$out"
    sleep 0.1
  done
}
rss_kib() { # the PIDs' VmRSS added up
  for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done | awk '/^VmRSS:/ {r += $2} END {print r + 0}'
}
written_bytes() { # the PIDs' wchar added up
  for p in "$@"; do cat "/proc/$p/io" 2>/dev/null; done | awk '/^wchar:/ {w += $2} END {printf "%.0f", w}'
}
cpu_ticks() { # the PIDs' utime + stime added up
  for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'
}
hwm_kib() { # the PIDs' VmHWM added up
  for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done | awk '/^VmHWM:/ {r += $2} END {print r + 0}'
}

# nginx keeping every body in a file (see the top).
CONC_NGX_PID=
start_nginx_keeping() {
  NGX_DIR=$STORAGE_BASE/nginx
  rm -rf "$NGX_DIR" && mkdir -p "$NGX_DIR/bodies"
  local port user='' i
  if [[ $(id -u) -eq 0 ]]; then user='user root;'; fi
  for ((i = 0; i < 5; i++)); do
    port=$(free_port)
    cat >"$OUT/nginx-conc.conf" <<CONF
$user
worker_processes auto;
daemon off;
pid $NGX_DIR/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $NGX_DIR/bodies;
  client_body_in_file_only on;
  server {
    listen 127.0.0.1:$port;
    location = /stored { return 200 '{"stored":true}'; }
    location / {
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Body-File \$request_body_file;
      rewrite ^ /stored break;
      proxy_pass http://127.0.0.1:$port;
    }
  }
}
CONF
    nginx -c "$OUT/nginx-conc.conf" -p "$NGX_DIR" -e "$OUT/nginx-error.log" 2>>"$OUT/nginx-error.log" &
    CONC_NGX_PID=$!
    NGX_PID=$CONC_NGX_PID
    NGX_URL=http://127.0.0.1:$port
    while kill -0 "$CONC_NGX_PID" 2>/dev/null; do
      if curl -s -o /dev/null "$NGX_URL/stored"; then return 0; fi
      sleep 0.05
    done
    wait "$CONC_NGX_PID" 2>/dev/null || true
  done
  die "nginx did not start; see $OUT/nginx-error.log"
}

# one_run WHO SIZE_MIB CONNECTIONS: one point for nginx (WHO=nginx) or a
# binary (WHO=its index in BINS); appends a row to $TABLE.
one_run() {
  local who=$1 size=$2 conns=$3 name url pids label
  name=conc-$who-${size}MiB-c$conns
  if [[ $who == nginx ]]; then
    start_nginx_keeping
    url=$NGX_URL/upload
    # The workers (the master only forks them).
    mapfile -t pids < <(pgrep -P "$CONC_NGX_PID")
    label=nginx
  else
    BIN=${BINS[$who]}
    start_server "$name" warn --no-auth
    url=$SRV_URL$UPLOAD_PATH
    if [[ $CONC_METHOD == put ]]; then url=$(presigned_url); fi
    pids=("$SRV_PID")
    label=$(basename "$BIN")
  fi
  local idle after peaks=$OUT/$name.peaks sampler line w0 w1 t0 t1 c0 c1
  idle=$(rss_kib "${pids[@]}")
  sample_peaks "$peaks" "${pids[@]}" &
  sampler=$!
  w0=$(written_bytes "${pids[@]}") t0=$(now_ns) c0=$(cpu_ticks "${pids[@]}")
  BENCH_FILE_BYTES=$((size * 1024 * 1024)) BENCH_API_KEY=$API_KEY \
    wrk -t2 -c"$conns" -d"${CONC_DURATION}s" --timeout 60s --latency \
    -s "$HERE/$CONC_SCRIPT" "$url" >"$OUT/$name-wrk.txt" 2>&1 ||
    die "wrk failed: $(cat "$OUT/$name-wrk.txt")"
  w1=$(written_bytes "${pids[@]}") t1=$(now_ns) c1=$(cpu_ticks "${pids[@]}")
  sleep "$CONC_SETTLE"
  after=$(rss_kib "${pids[@]}")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local hwm threads
  hwm=$(hwm_kib "${pids[@]}")
  read -r threads _ <"$peaks"
  if [[ $who == nginx ]]; then
    local kept
    kept=$(find "$NGX_DIR/bodies" -type f | wc -l)
    kill -QUIT "$CONC_NGX_PID" 2>/dev/null || true
    wait "$CONC_NGX_PID" 2>/dev/null || true
    NGX_PID=''
    rm -rf "$NGX_DIR"
  else
    local kept
    # With CONC_METHOD=put: 1, the one file every PUT replaced.
    kept=$(clear_uploads)
    stop_server
  fi
  line=$(grep '^BENCH ' "$OUT/$name-wrk.txt") || die "no BENCH line in $OUT/$name-wrk.txt"
  local reqs us mibs done p99 errs cpu
  reqs=$(kv requests "$line")
  us=$(kv duration_us "$line")
  mibs=$(awk -v b=$((w1 - w0)) -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", b / 1048576 / (ns / 1e9)}')
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v b=$((w1 - w0)) 'BEGIN {if (b > 0) printf "%.2f", t / hz / (b / 1073741824); else print "-"}')
  done=$(awk -v n="$reqs" -v s="$size" -v us="$us" 'BEGIN {printf "%.0f", n * s / (us / 1e6)}')
  p99=$(awk -v n="$reqs" -v us="$(kv p99_us "$line")" 'BEGIN {if (n > 0) printf "%.0f", us / 1000; else print "-"}')
  errs=$(($(kv err_connect "$line") + $(kv err_read "$line") + $(kv err_write "$line") + $(kv err_timeout "$line") + $(kv err_status "$line")))
  printf '%-24s %5s %5s %8s %9s %8s %8s %8s %8s %12s %7s %7s\n' "$label" "$size" "$conns" "$mibs" "$cpu" "$done" "$p99" \
    "$(awk -v k="$hwm" 'BEGIN {printf "%.0f", k / 1024}')" "$threads" \
    "$(awk -v a="$idle" -v b="$after" 'BEGIN {printf "%.0f/%.0f", b / 1024, a / 1024}')" "$errs" "$kept" | tee -a "$TABLE" >&2
}

# presigned_url: a fresh `file_url` of the running server, to PUT to.
presigned_url() {
  curl -sS "$SRV_URL/v2/files" -H 'content-type: application/json' \
    -d '{"files": [{"local_file_path": "bench.bin"}]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["file_url"])'
}

TABLE=$OUT/concurrency-$CONC_METHOD.txt
log "concurrency ($CONC_METHOD): sizes [$CONC_SIZES_MIB] MiB x connections [$CONC_CONNECTIONS], ${CONC_DURATION} s each, storage $STORAGE_FS at $STORAGE_BASE; binaries: ${BINS[*]}"
printf '%-24s %5s %5s %8s %9s %8s %8s %8s %8s %12s %7s %7s\n' who MiB conns 'MiB/s' 'CPU s/GiB' 'done/s' 'p99 ms' 'RSS MiB' threads 'after/idle' errors stored | tee "$TABLE" >&2
whos=(nginx)
for ((i = 0; i < ${#BINS[@]}; i++)); do whos+=("$i"); done
turn=0
for ((round = 1; round <= CONC_ROUNDS; round++)); do
  for size in $CONC_SIZES_MIB; do
    for conns in $CONC_CONNECTIONS; do
      for ((k = 0; k < ${#whos[@]}; k++)); do
        one_run "${whos[$(((k + turn) % ${#whos[@]}))]}" "$size" "$conns"
      done
      turn=$((turn + 1))
    done
  done
done
log "table: $TABLE"
cat "$TABLE"
