#!/usr/bin/env bash
# bench/lib.sh — shared by bench/run.sh and bench/profile.sh (sourced, not run):
# knobs, tool checks, the release build, the inputs under bench/data/, the
# storage dir (tmpfs by default), and starting/stopping the server on port 0.
# Knobs: see bench/run.sh.
# shellcheck disable=SC2034 # variables here are used by the scripts that source it


HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DATA=$HERE/data
OUT=$HERE/out
# The binary run by the workloads (A/B scripts and concurrency.sh given
# binaries point it at the first of them, so no build is needed).
BUILT_BIN=${BUILT_BIN:-$ROOT/target/release/aymara-mock}

W1_SIZE_MIB=${W1_SIZE_MIB:-1024}
W1_REPS=${W1_REPS:-5}
W2_DURATION=${W2_DURATION:-10}
W2_WARMUP=${W2_WARMUP:-3}
W24_ROUNDS=${W24_ROUNDS:-3}
W2_CONNECTIONS=${W2_CONNECTIONS:-32}
W2_THREADS=${W2_THREADS:-2}
W3_RUNS=${W3_RUNS:-5}
W4_RULES=${W4_RULES:-1000}
BENCH_INFO_NOTE=${BENCH_INFO_NOTE:-1}
BENCH_DISK_NOTE=${BENCH_DISK_NOTE:-0}
BENCH_NGINX=${BENCH_NGINX:-auto}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_STORAGE=${BENCH_STORAGE:-tmpfs}
BOUNDARY=----aymara-bench-w1-5b9e0c47
API_KEY=k
UPLOAD_PATH=/v2/files/-/uploads

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "wrk is missing: installing it (apt-get install -y wrk)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  fi
  command -v wrk >/dev/null 2>&1 || die "wrk is missing: install it (Debian/Ubuntu: apt-get install wrk)"
}
# nginx is W1's reference (the issue's yardstick): `auto` uses it when it is
# installed, `1` requires it (installing nginx-light when root), `0` skips it.
need_nginx() {
  case $BENCH_NGINX in
    0) return 1 ;;
    auto) command -v nginx >/dev/null 2>&1 ;;
    *)
      if ! command -v nginx >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "nginx is missing: installing it (apt-get install -y nginx-light)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
      fi
      command -v nginx >/dev/null 2>&1 || die "BENCH_NGINX=1 but nginx is missing (Debian/Ubuntu: apt-get install nginx-light)"
      ;;
  esac
}
for tool in curl awk python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
need_wrk

mkdir -p "$DATA" "$OUT"

# ---------------------------------------------------------------- build
if [[ $BENCH_BUILD == 1 ]]; then
  log "cargo build --release --bin aymara-mock (waits if another build holds the lock)"
  (cd "$ROOT" && cargo build --release --bin aymara-mock --quiet)
fi
[[ -x $BUILT_BIN ]] || die "$BUILT_BIN not found: build it with cargo build --release --bin aymara-mock"
# Benchmark a snapshot: others may rebuild target/release while this runs.
BIN=$OUT/aymara-mock
cp "$BUILT_BIN" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
BIN_BUILT=$(date -u -r "$BUILT_BIN" +%Y-%m-%dT%H:%M:%SZ)
BIN_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')"

# ---------------------------------------------------------------- inputs
PAYLOAD=$DATA/w1-${W1_SIZE_MIB}MiB.bin
BODY=$DATA/w1-${W1_SIZE_MIB}MiB.multipart
W1_BYTES=$((W1_SIZE_MIB * 1024 * 1024))
if [[ ! -f $PAYLOAD || $(stat -c %s "$PAYLOAD") -ne $W1_BYTES ]]; then
  log "generating $PAYLOAD (${W1_SIZE_MIB} MiB of random bytes, once)"
  head -c "$W1_BYTES" /dev/urandom >"$PAYLOAD.tmp"
  mv "$PAYLOAD.tmp" "$PAYLOAD"
  rm -f "$BODY" "$PAYLOAD.sha256"
fi
if [[ ! -f $PAYLOAD.sha256 ]]; then
  sha256sum "$PAYLOAD" | awk '{print $1}' >"$PAYLOAD.sha256"
fi
PAYLOAD_SHA=$(cat "$PAYLOAD.sha256")
if [[ ! -f $BODY ]]; then
  log "building the multipart body $BODY (once)"
  {
    printf -- '--%s\r\n' "$BOUNDARY"
    printf 'Content-Disposition: form-data; name="file"; filename="w1-%sMiB.bin"\r\n' "$W1_SIZE_MIB"
    printf 'Content-Type: application/octet-stream\r\n\r\n'
    cat "$PAYLOAD"
    printf '\r\n--%s--\r\n' "$BOUNDARY"
  } >"$BODY.tmp"
  mv "$BODY.tmp" "$BODY"
fi

FIXTURE=$DATA/w4-rules-$W4_RULES.json
awk -v n="$W4_RULES" 'BEGIN {
  printf "{\"rules\":[\n"
  for (i = 1; i <= n; i++)
    printf "%s{\"id\":\"r%d\",\"match\":{\"headers\":{\"x-api-key\":\"nomatch-%d\"}},\"respond\":{\"status\":500}}\n", (i > 1 ? "," : ""), i, i
  printf "]}\n"
}' >"$FIXTURE"
"$BIN" check "$FIXTURE" >/dev/null || die "$FIXTURE is not a valid fixture"

# ---------------------------------------------------------------- storage
# Uploads land in STORAGE_BASE/server (the server's --storage-dir); W1's plain
# copy goes to STORAGE_BASE/copy, on the same filesystem.
MOUNTED=
REMOVE_BASE=1
DISK_BASE=$DATA/disk-storage
case $BENCH_STORAGE in
  tmpfs)
    STORAGE_BASE=$DATA/storage
    mkdir -p "$STORAGE_BASE"
    # A tmpfs left mounted by an interrupted run is unmounted first.
    if mountpoint -q "$STORAGE_BASE" 2>/dev/null; then umount "$STORAGE_BASE" || true; fi
    if [[ $(id -u) -eq 0 ]] && mount -t tmpfs -o size=6g,mode=0700 aymara-bench "$STORAGE_BASE" 2>/dev/null; then
      MOUNTED=$STORAGE_BASE
    elif [[ -d /dev/shm && -w /dev/shm ]]; then
      STORAGE_BASE=$(mktemp -d /dev/shm/aymara-bench.XXXXXX)
    else
      log "no tmpfs could be had: storage on disk"
      STORAGE_BASE=$DISK_BASE
    fi
    ;;
  disk) STORAGE_BASE=$DISK_BASE ;;
  *) STORAGE_BASE=$BENCH_STORAGE REMOVE_BASE=0 ;;
esac
mkdir -p "$STORAGE_BASE"
STORAGE=$STORAGE_BASE/server
COPY_DIR=$STORAGE_BASE/copy
STORAGE_FS=$(df -T "$STORAGE_BASE" | awk 'NR == 2 {print $2}')

# ---------------------------------------------------------------- server
SRV_PID=
SRV_FD=
SRV_URL=
FIFO=$OUT/.server-stdout.fifo

start_server() { # start_server NAME LOG_LEVEL [extra args...]
  local name=$1 level=$2 line
  shift 2
  rm -rf "$STORAGE" && mkdir -p "$STORAGE"
  rm -f "$FIFO" && mkfifo "$FIFO"
  "$BIN" --port 0 --storage-dir "$STORAGE" --log-level "$level" "$@" \
    >"$FIFO" 2>"$OUT/server-$name.log" &
  SRV_PID=$!
  exec {SRV_FD}<"$FIFO"
  rm -f "$FIFO"
  # The ready line: "aymara-mock listening on http://127.0.0.1:PORT".
  if ! read -r -t 30 -u "$SRV_FD" line; then
    die "server ($name) did not print its ready line; see $OUT/server-$name.log"
  fi
  [[ $line == "aymara-mock listening on http://"* ]] || die "unexpected ready line: $line"
  SRV_URL=${line##* }
}

vm_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/${1:-$SRV_PID}/status"; }

# run_wrk NAME LOG_LEVEL [server args...] — sets R_* for the run. RUN_WRK_BEFORE
# and RUN_WRK_AFTER, when set, name commands run with the server up (SRV_URL):
# before wrk (e.g. to load a rule) and after it (e.g. to read its counters).
run_wrk() {
  local name=$1 level=$2 line
  shift 2
  start_server "$name" "$level" "$@"
  if [[ -n ${RUN_WRK_BEFORE:-} ]]; then "$RUN_WRK_BEFORE"; fi
  local timer=() c0 c1 s0 s1 wrk_ticks=0
  if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -f '%U %S' -o "$OUT/$name-wrk.time"); fi
  c0=$(cpu_jiffies) s0=$(proc_ticks "$SRV_PID")
  BENCH_FILE_BYTES=4096 BENCH_API_KEY=$API_KEY \
    "${timer[@]}" wrk -t"$W2_THREADS" -c"$W2_CONNECTIONS" -d"${W2_DURATION}s" --latency \
    -s "$HERE/upload.lua" "$SRV_URL$UPLOAD_PATH" >"$OUT/$name-wrk.txt" 2>&1 ||
    die "wrk failed: $(cat "$OUT/$name-wrk.txt")"
  c1=$(cpu_jiffies) s1=$(proc_ticks "$SRV_PID")
  if [[ -s $OUT/$name-wrk.time ]]; then
    wrk_ticks=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($1 + $2) * hz}' "$OUT/$name-wrk.time")
  fi
  # Shares of the machine's CPU time (all cores) during the run: the server,
  # wrk, and other processes (task time not charged to either; interrupt and
  # softirq time, e.g. loopback TCP delivery, is charged to no one).
  read -r R_CPU_SERVER R_CPU_WRK R_CPU_OTHER < <(awk -v c0="$c0" -v c1="$c1" -v s="$((s1 - s0))" -v w="$wrk_ticks" 'BEGIN {
    split(c0, a, " "); split(c1, b, " "); total = b[2] - a[2]; busy = b[1] - a[1]
    other = busy - s - w; if (other < 0) other = 0
    printf "%.0f %.0f %.0f\n", 100 * s / total, 100 * w / total, 100 * other / total}')
  R_HWM_MIB=$(awk -v k="$(vm_hwm_kib)" 'BEGIN {printf "%.1f", k / 1024}')
  if [[ -n ${RUN_WRK_AFTER:-} ]]; then "$RUN_WRK_AFTER"; fi
  R_STORED=$(clear_uploads)
  stop_server
  line=$(grep '^BENCH ' "$OUT/$name-wrk.txt") || die "no BENCH line in $OUT/$name-wrk.txt"
  R_REQS=$(kv requests "$line")
  R_US=$(kv duration_us "$line")
  R_RPS=$(awk -v n="$R_REQS" -v us="$R_US" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
  R_P50=$(awk -v us="$(kv p50_us "$line")" 'BEGIN {printf "%.2f", us / 1000}')
  R_P99=$(awk -v us="$(kv p99_us "$line")" 'BEGIN {printf "%.2f", us / 1000}')
  R_MAX=$(awk -v us="$(kv max_us "$line")" 'BEGIN {printf "%.2f", us / 1000}')
  R_ERR_SOCK=$(($(kv err_connect "$line") + $(kv err_read "$line") + $(kv err_write "$line") + $(kv err_timeout "$line")))
  R_ERR_STATUS=$(kv err_status "$line")
  R_ERRORS=$((R_ERR_SOCK + R_ERR_STATUS))
  log "  $R_RPS req/s, p50 $R_P50 ms, p99 $R_P99 ms, max $R_MAX ms, errors $R_ERRORS (socket $R_ERR_SOCK, non-2xx $R_ERR_STATUS), stored $R_STORED, VmHWM $R_HWM_MIB MiB; CPU: server $R_CPU_SERVER%, wrk $R_CPU_WRK%, other $R_CPU_OTHER% of $(nproc) cores"
}

# w2_rounds PAIRS LABEL_A RUN_A LABEL_B RUN_B: W2 in two setups in the same
# minutes. RUN_A and RUN_B are commands doing one run_wrk of a fresh server
# (they get the round's number, or `warm`, to name the run). First W2_WARMUP s
# of each, not measured; then PAIRS rounds, one run of each in the order A B,
# B A, A B, … so that drift of the VM touches both alike. Prints a row per
# round (req/s, p50, p99, errors, VmHWM of each) and keeps each run's figures
# in W2_A and W2_B: "req/s p50 p99 errors hwm_mib cpu_server% cpu_wrk% cpu_other%".
w2_rounds() {
  local pairs=$1 label_a=$2 run_a=$3 label_b=$4 run_b=$5 i a b
  if ((W2_WARMUP > 0)); then
    log "W2 warm-up: ${W2_WARMUP} s of each, not measured"
    W2_DURATION=$W2_WARMUP "$run_a" warm
    W2_DURATION=$W2_WARMUP "$run_b" warm
  fi
  W2_A=() W2_B=()
  printf '%-5s %-40s %s\n' round "$label_a: req/s, p50, p99 ms, errors, VmHWM" "$label_b: req/s, p50, p99 ms, errors, VmHWM"
  for ((i = 1; i <= pairs; i++)); do
    if ((i % 2)); then
      "$run_a" "$i"
      W2_A+=("$(w2_figures)")
      "$run_b" "$i"
      W2_B+=("$(w2_figures)")
    else
      "$run_b" "$i"
      W2_B+=("$(w2_figures)")
      "$run_a" "$i"
      W2_A+=("$(w2_figures)")
    fi
    read -ra a <<<"${W2_A[-1]}"
    read -ra b <<<"${W2_B[-1]}"
    printf '%-5s %7s %6s %6s %4s %6s MiB   %7s %6s %6s %4s %6s MiB\n' "$i" "${a[@]:0:5}" "${b[@]:0:5}"
  done
}
w2_figures() { echo "$R_RPS $R_P50 $R_P99 $R_ERRORS $R_HWM_MIB $R_CPU_SERVER $R_CPU_WRK $R_CPU_OTHER"; }
w2_median() { # w2_median ARRAY FIELD: the median of one field of w2_rounds' W2_A or W2_B
  local -n runs=$1
  printf '%s\n' "${runs[@]}" | awk -v f="$2" '{print $f}' | median
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# nginx as W1's reference: stock settings but for what storing a PUT body
# needs (the WebDAV module writes the body to a temp file on the storage
# filesystem and renames it into place), one worker, no access log.
NGX_PID=
NGX_URL=
NGX_DIR=
start_nginx() {
  NGX_DIR=$STORAGE_BASE/nginx
  rm -rf "$NGX_DIR" && mkdir -p "$NGX_DIR/root" "$NGX_DIR/tmp"
  local port user='' i
  # The master runs as us; as root its worker would drop to nobody, which
  # cannot write to the 0700 storage tmpfs.
  if [[ $(id -u) -eq 0 ]]; then user='user root;'; fi
  for ((i = 0; i < 5; i++)); do
    port=$(free_port)
    cat >"$OUT/nginx.conf" <<CONF
$user
worker_processes 1;
daemon off;
pid $NGX_DIR/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $NGX_DIR/tmp;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$port;
    root $NGX_DIR/root;
    location / { dav_methods PUT; }
  }
}
CONF
    nginx -c "$OUT/nginx.conf" -p "$NGX_DIR" -e "$OUT/nginx-error.log" 2>>"$OUT/nginx-error.log" &
    NGX_PID=$!
    NGX_URL=http://127.0.0.1:$port
    # Ready when it answers (404 for /); gone when the port was taken meanwhile.
    while kill -0 "$NGX_PID" 2>/dev/null; do
      if curl -s -o /dev/null "$NGX_URL/"; then return 0; fi
      sleep 0.05
    done
    wait "$NGX_PID" 2>/dev/null || true
  done
  die "nginx did not start; see $OUT/nginx-error.log"
}
ngx_worker_hwm_kib() { # the worker's VmHWM (the master only forks it)
  local w
  w=$(pgrep -P "$NGX_PID" | head -n 1)
  if [[ -n $w ]]; then vm_hwm_kib "$w"; else echo 0; fi
}
stop_nginx() { stop_bg NGX_PID QUIT "$NGX_DIR"; }

# stop_bg PID_VAR SIGNAL DIR: sends SIGNAL to the background process whose id
# is in the variable PID_VAR (none: nothing to do), reaps it, empties PID_VAR
# and removes DIR.
stop_bg() {
  local -n pid=$1
  [[ -n $pid ]] || return 0
  kill "-$2" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=''
  rm -rf "$3"
}

stop_server() {
  [[ -n $SRV_PID ]] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 200; i++)); do # up to 10 s
    kill -0 "$SRV_PID" 2>/dev/null || break
    # A child that exited but is not yet reaped is a zombie: done too.
    [[ $(awk '{print $3}' "/proc/$SRV_PID/stat" 2>/dev/null) == Z ]] && break
    sleep 0.05
  done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  [[ -n $SRV_FD ]] && exec {SRV_FD}<&-
  SRV_PID='' SRV_FD=''
  rm -rf "$STORAGE"
}

cleanup() {
  stop_server
  stop_nginx
  rm -f "$FIFO"
  rm -rf "$STORAGE_BASE/server" "$STORAGE_BASE/copy" "$STORAGE_BASE/w3" "$STORAGE_BASE/nginx" "$DISK_BASE"
  if [[ -n $MOUNTED ]]; then
    umount "$MOUNTED" || log "could not unmount the tmpfs at $MOUNTED"
  fi
  if [[ $REMOVE_BASE == 1 ]]; then rm -rf "$STORAGE_BASE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clear_uploads() { # prints how many uploads the server deleted
  curl -sS -X DELETE "$SRV_URL/__admin/uploads" | sed -n 's/.*"deleted":\([0-9]*\).*/\1/p'
}

now_ns() { date +%s%N; }

# w1_post OUTFILE: POSTs W1's prebuilt multipart body to the server, the answer
# to OUTFILE; prints "HTTP_CODE SECONDS". -T streams the body from disk (no
# encoding, no buffering in curl); -X POST makes it a POST; `Expect:` drops
# the 100-continue round trip.
w1_post() {
  curl -sS -o "$1" -w '%{http_code} %{time_total}' -X POST -T "$BODY" -H 'Expect:' \
    -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" \
    -H "x-api-key: $API_KEY" "$SRV_URL$UPLOAD_PATH"
}

# w1_put OUTFILE: W1's payload the way the SDK's upload_file sends it: POST
# /v2/files for a presigned URL, then a raw PUT of the bytes to it (the answer
# to OUTFILE); prints "HTTP_CODE SECONDS FILE_UUID", timing the PUT alone.
w1_put() {
  local created url
  created=$(curl -sS -H "x-api-key: $API_KEY" -H 'Content-Type: application/json' \
    -d '{"files": [{"local_file_path": "w1.bin"}]}' "$SRV_URL/v2/files") ||
    die "W1 PUT: POST /v2/files failed"
  local file_uuid
  read -r file_uuid url < <(python3 -c 'import json, sys
f = json.load(sys.stdin)["files"][0]
print(f["file_uuid"], f["file_url"])' <<<"$created") || die "W1 PUT: POST /v2/files answered $created"
  curl -sS -o "$1" -w "%{http_code} %{time_total} $file_uuid" -T "$PAYLOAD" -H 'Expect:' "$url"
}

# stored_sha256 FILE_UUID: the sha256 the server recorded for an upload
stored_sha256() {
  curl -sS "$SRV_URL/__admin/uploads" | python3 -c 'import json, sys
for u in json.load(sys.stdin)["uploads"]:
    if u["file_uuid"] == sys.argv[1]:
        print(u["sha256"])' "$1"
}

# w1_copy_secs: seconds a plain `cat PAYLOAD > COPY_DIR/x` takes (W1's
# denominator, on the storage filesystem); the copy is removed again.
w1_copy_secs() {
  local t0 t1
  mkdir -p "$COPY_DIR"
  t0=$(now_ns)
  cat "$PAYLOAD" >"$COPY_DIR/x"
  t1=$(now_ns)
  rm -f "$COPY_DIR/x"
  awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.6f", ns / 1e9}'
}

# cpu_s_per_gib TICKS...: the median of W1's per-upload CPU ticks, as CPU seconds per GiB
cpu_s_per_gib() {
  awk -v t="$(printf '%s\n' "$@" | median)" -v hz="$(getconf CLK_TCK)" -v m="$W1_SIZE_MIB" \
    'BEGIN {printf "%.2f", t / hz / (m / 1024)}'
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

kv() { # kv KEY LINE: the value of KEY=... in a "BENCH k=v k=v" line
  printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# BENCH_WAIT_IDLE=N: wait up to N seconds for the machine to be quiet (<10%
# CPU busy over 1 s) before measuring; 0 (default) measures at once.
wait_for_idle() {
  local waited=0 busy
  busy=$(cpu_busy_pct)
  while ((busy > 10 && waited < ${BENCH_WAIT_IDLE:-0})); do
    log "machine ${busy}% busy: waiting for it to be quiet (${waited}/${BENCH_WAIT_IDLE} s)"
    sleep 4
    waited=$((waited + 5))
    busy=$(cpu_busy_pct)
  done
  echo "$busy"
}

cpu_jiffies() { # "task-time total" jiffies of all cores, from /proc/stat: task time is
  # user + nice + system (what processes are charged); irq, softirq and steal
  # count in the total only
  awk '/^cpu / {print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of a process

# Another busy process on this 2-core machine skews every figure: say so.
cpu_busy_pct() { # share of CPU time not idle over 1 s, all cores
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", 100 * busy / (busy + idle + 1e-9)}'
}
