#!/usr/bin/env bash
# bench/state_w2.sh BIN [PAIRS] — what does `--state redis://` cost small uploads?
#
# W2 (as bench/ab_w2.sh: 4 KiB uploads, W2_CONNECTIONS connections,
# W2_DURATION s of wrk) for one binary in two modes in the same minutes: in
# memory (the default) and with `--state redis://127.0.0.1:PORT/0`, where run-time
# rules, every rule's counters, the journal and the files' changes live in Redis
# (src/cluster/mod.rs): every request then reads the rules' version key and
# journals itself there, and every stored upload is an event in a Redis stream.
# The script starts its own redis-server (in memory only: --save '' --appendonly
# no) on a free loopback port and stops it at exit; FLUSHALL before each redis
# run. PAIRS rounds (default 5), each one run of a fresh server in each mode,
# in the order memory redis, redis memory, … Per run it prints req/s, p50, p99,
# errors and the server's VmHWM; at the end the medians of both modes, the
# ratio redis / memory, and redis-server's own VmHWM. The log (stderr) adds,
# per run, redis-server's share of the CPU and, per redis run, the Redis
# commands per stored upload (from INFO commandstats, reset before the run).
#
#   bench/state_w2.sh target/release/aymara-mock
#   STATE_W2_RULE=1 bench/state_w2.sh target/release/aymara-mock
#
# STATE_W2_RULE=1 posts, before each run, a rule to /__admin/rules that every
# upload matches and none fires ({"when": {"after": 1000000000}}): each request
# then also counts it (in redis mode one Lua script per request); its counters
# are checked after the run (matched >= requests answered, fired 0).
# Knobs (W2_DURATION, W2_CONNECTIONS, W2_THREADS, W2_WARMUP) as for bench/run.sh;
# REDIS_SERVER=/path/to/redis-server (default: the one on PATH).
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: bench/state_w2.sh BIN [PAIRS]" >&2
  exit 2
fi
[[ -x $1 ]] || { echo "bench/state_w2.sh: $1 is not an executable" >&2; exit 2; }
PAIRS=${2:-5}
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "bench/state_w2.sh: PAIRS must be a positive number, not '$PAIRS'" >&2; exit 2; }
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
[[ -n $REDIS_SERVER ]] || { echo "bench/state_w2.sh: redis-server is missing (Debian: apt-get install redis-server)" >&2; exit 2; }
STATE_W2_RULE=${STATE_W2_RULE:-0}

BENCH_BUILD=${BENCH_BUILD:-0}
BUILT_BIN=$(realpath "$1")
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# BIN is now lib.sh's snapshot of the binary (bench/out/aymara-mock).

# ---------------------------------------------------------------- redis-server
REDIS_PID=
REDIS_PORT=
REDIS_DIR=$OUT/redis

# redis_cmd PORT WORD...: one inline command over a socket; prints the reply
# (+PONG, +OK, …; of a bulk string its text); fails when nothing listens on PORT.
redis_cmd() {
  local port=$1 fd reply=
  shift
  { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf '%s\r\n' "$*" >&"$fd"
  read -r -t 2 -u "$fd" reply || true
  reply=${reply%$'\r'}
  if [[ $reply =~ ^\$([0-9]+)$ ]]; then read -r -t 2 -N "${BASH_REMATCH[1]}" -u "$fd" reply || true; fi
  exec {fd}>&-
  printf '%s\n' "$reply"
}

start_redis() {
  local i
  rm -rf "$REDIS_DIR" && mkdir -p "$REDIS_DIR"
  for ((i = 0; i < 5; i++)); do
    REDIS_PORT=$(free_port)
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --dir "$REDIS_DIR" --logfile "$OUT/redis.log" --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!
    # Ready when it answers PING; gone when the port was taken meanwhile.
    while kill -0 "$REDIS_PID" 2>/dev/null; do
      if [[ $(redis_cmd "$REDIS_PORT" PING) == +PONG ]]; then return 0; fi
      sleep 0.02
    done
    wait "$REDIS_PID" 2>/dev/null || true
  done
  die "redis-server did not start; see $OUT/redis.log"
}

trap 'stop_bg REDIS_PID TERM "$REDIS_DIR"; cleanup' EXIT

# ---------------------------------------------------------------- the rule
RULE='{"id":"bench-pass","when":{"after":1000000000},"respond":{"status":503}}'
RULE_MATCHED=
add_rule() {
  curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$RULE" "$SRV_URL/__admin/rules" ||
    die "POST /__admin/rules failed"
}
read_rule() { # RULE_MATCHED: "matched fired" of the rule after the run
  RULE_MATCHED=$(curl -fsS "$SRV_URL/__admin/rules" | python3 -c 'import json, sys
r = [r for r in json.load(sys.stdin)["rules"] if r["id"] == "bench-pass"][0]
print(r["matched"], r["fired"])') || die "GET /__admin/rules failed"
}
check_rule() { # after run_wrk: every answered request counted, none fired
  local matched fired
  read -r matched fired <<<"$RULE_MATCHED"
  if ((fired != 0 || matched < R_REQS)); then
    log "  warning: the rule matched $matched and fired $fired times; wrk had $R_REQS answers"
  else
    log "  the rule matched $matched times (wrk had $R_REQS answers), fired 0"
  fi
}

# ---------------------------------------------------------------- the two modes
# Around wrk (run_wrk's hooks): the rule, and redis-server's CPU time, which
# run_wrk counts as "other".
REDIS_T0=
REDIS_CPU=
before_wrk() {
  if [[ $STATE_W2_RULE == 1 ]]; then add_rule; fi
  REDIS_T0=$(proc_ticks "$REDIS_PID")
}
after_wrk() {
  REDIS_CPU=$(awk -v t=$(($(proc_ticks "$REDIS_PID") - REDIS_T0)) -v hz="$(getconf CLK_TCK)" -v s="$W2_DURATION" -v n="$(nproc)" \
    'BEGIN {printf "%.0f", 100 * t / (hz * s * n)}')
  if [[ $STATE_W2_RULE == 1 ]]; then read_rule; fi
}
RUN_WRK_BEFORE=before_wrk RUN_WRK_AFTER=after_wrk
after_run() { # after_run MODE ROUND: the rule's counters checked, redis-server's CPU share kept
  if [[ $STATE_W2_RULE == 1 ]]; then check_rule; fi
  if [[ $2 != warm ]]; then eval "REDIS_CPU_$1+=(\"\$REDIS_CPU\")"; fi
  log "  redis-server: $REDIS_CPU% of $(nproc) cores (part of \"other\")"
}
# shellcheck disable=SC2034 # filled by after_run, read by summary (by name)
REDIS_CPU_memory=() REDIS_CPU_redis=()

w2_memory() {
  run_wrk "state-memory-$1" warn
  after_run memory "$1"
}
w2_redis() {
  [[ $(redis_cmd "$REDIS_PORT" FLUSHALL) == +OK ]] || die "redis-server did not FLUSHALL"
  redis_cmd "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  run_wrk "state-redis-$1" warn --state "redis://127.0.0.1:$REDIS_PORT/0" --state-prefix bench --replica-id bench
  after_run redis "$1"
  # What the server asked of Redis per upload it stored (its start and
  # DELETE /__admin/uploads included: a few dozen commands in all).
  log "  redis commands per stored upload (those its Lua scripts run counted too): $(redis_cmd "$REDIS_PORT" INFO commandstats | awk -F'[_:=,]' -v n="$R_STORED" '
    /^cmdstat_/ {c[$2] = $4; all += $4}
    END {if (n < 1) n = 1; printf "%.2f (", all / n; for (k in c) if (c[k] / n >= 0.01) printf "%s%s %.2f", (s++ ? ", " : ""), k, c[k] / n; printf ")"}')"
}

BUSY_BEFORE=$(wait_for_idle)
if ((BUSY_BEFORE > 10)); then
  log "warning: the machine was ${BUSY_BEFORE}% busy before the run (other processes): figures will be low and noisy"
fi
start_redis
log "W2 in memory and with --state redis:// ($("$REDIS_SERVER" --version | awk '{print $3}'), 127.0.0.1:$REDIS_PORT): $PAIRS rounds of ${W2_DURATION} s; rule loaded: $STATE_W2_RULE; BIN=$BUILT_BIN ($BIN_COMMIT)"
w2_rounds "$PAIRS" memory w2_memory redis w2_redis

ratios=()
for ((i = 0; i < PAIRS; i++)); do
  ratios+=("$(awk -v r="${W2_B[i]%% *}" -v m="${W2_A[i]%% *}" 'BEGIN {printf "%.3f", r / m}')")
done
summary() { # summary ARRAY MODE: medians (errors summed, VmHWM the largest)
  local -n runs=$1 redis_cpu=REDIS_CPU_$2
  printf '%s req/s, p50 %s ms, p99 %s ms, errors %s, VmHWM up to %s MiB; CPU: server %s%%, wrk %s%%, other %s%% (redis-server %s%%)' \
    "$(w2_median "$1" 1)" "$(w2_median "$1" 2)" "$(w2_median "$1" 3)" \
    "$(printf '%s\n' "${runs[@]}" | awk '{s += $4} END {print s}')" \
    "$(printf '%s\n' "${runs[@]}" | awk '{print $5}' | sort -g | tail -n 1)" \
    "$(w2_median "$1" 6)" "$(w2_median "$1" 7)" "$(w2_median "$1" 8)" "$(printf '%s\n' "${redis_cpu[@]}" | median)"
}
echo "median memory: $(summary W2_A memory)"
echo "median redis:  $(summary W2_B redis)"
echo "redis / memory: $(awk -v r="$(w2_median W2_B 1)" -v m="$(w2_median W2_A 1)" 'BEGIN {printf "%.3f", r / m}') (medians); by round: ${ratios[*]}, median $(printf '%s\n' "${ratios[@]}" | median)"
echo "redis-server VmHWM: $(awk -v k="$(vm_hwm_kib "$REDIS_PID")" 'BEGIN {printf "%.1f", k / 1024}') MiB over all its runs"
