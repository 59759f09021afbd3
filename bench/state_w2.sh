#!/usr/bin/env bash
# bench/state_w2.sh BIN [PAIRS] — what does `--state redis://` cost small uploads?
#
# W2 (as bench/ab_w2.sh: 4 KiB uploads, W2_CONNECTIONS connections,
# W2_DURATION s of wrk) for one binary in two modes in the same minutes: in
# memory (the default) and with `--state redis://127.0.0.1:PORT/0`, where run-time
# rules, every rule's counters and the journal live in Redis (src/cluster/mod.rs):
# every request then reads the rules' version key and journals itself there.
# The script starts its own redis-server (in memory only: --save '' --appendonly
# no) on a free loopback port and stops it at exit; FLUSHALL before each redis
# run. PAIRS rounds (default 5), each one run of a fresh server in each mode,
# in the order memory redis, redis memory, … Per run it prints req/s, p50, p99,
# errors and the server's VmHWM; at the end the medians of both modes, the
# ratio redis / memory, and redis-server's own VmHWM.
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

# redis_cmd PORT WORD...: one inline command over a socket; prints the reply's
# first line (+PONG, +OK, ...); fails when nothing listens on PORT.
redis_cmd() {
  local port=$1 fd reply=
  shift
  { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf '%s\r\n' "$*" >&"$fd"
  read -r -t 2 -u "$fd" reply || true
  exec {fd}>&-
  printf '%s\n' "${reply%$'\r'}"
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
if [[ $STATE_W2_RULE == 1 ]]; then
  RUN_WRK_BEFORE=add_rule RUN_WRK_AFTER=read_rule
fi

# ---------------------------------------------------------------- the two modes
w2_memory() {
  run_wrk "state-memory-$1" warn
  if [[ $STATE_W2_RULE == 1 ]]; then check_rule; fi
}
w2_redis() {
  [[ $(redis_cmd "$REDIS_PORT" FLUSHALL) == +OK ]] || die "redis-server did not FLUSHALL"
  run_wrk "state-redis-$1" warn --state "redis://127.0.0.1:$REDIS_PORT/0" --state-prefix bench --replica-id bench
  if [[ $STATE_W2_RULE == 1 ]]; then check_rule; fi
}

start_redis
log "W2 in memory and with --state redis:// ($("$REDIS_SERVER" --version | awk '{print $3}'), 127.0.0.1:$REDIS_PORT): $PAIRS rounds of ${W2_DURATION} s; rule loaded: $STATE_W2_RULE; BIN=$BUILT_BIN ($BIN_COMMIT)"
w2_rounds "$PAIRS" memory w2_memory redis w2_redis

ratios=()
for ((i = 0; i < PAIRS; i++)); do
  ratios+=("$(awk -v r="${W2_B[i]%% *}" -v m="${W2_A[i]%% *}" 'BEGIN {printf "%.3f", r / m}')")
done
summary() { # summary ARRAY: medians (errors summed, VmHWM the largest)
  local -n runs=$1
  printf '%s req/s, p50 %s ms, p99 %s ms, errors %s, VmHWM up to %s MiB; CPU: server %s%%, wrk %s%%, other %s%%' \
    "$(w2_median "$1" 1)" "$(w2_median "$1" 2)" "$(w2_median "$1" 3)" \
    "$(printf '%s\n' "${runs[@]}" | awk '{s += $4} END {print s}')" \
    "$(printf '%s\n' "${runs[@]}" | awk '{print $5}' | sort -g | tail -n 1)" \
    "$(w2_median "$1" 6)" "$(w2_median "$1" 7)" "$(w2_median "$1" 8)"
}
echo "median memory: $(summary W2_A)"
echo "median redis:  $(summary W2_B)"
echo "redis / memory: $(awk -v r="$(w2_median W2_B 1)" -v m="$(w2_median W2_A 1)" 'BEGIN {printf "%.3f", r / m}') (medians); by round: ${ratios[*]}, median $(printf '%s\n' "${ratios[@]}" | median)"
echo "redis-server VmHWM: $(awk -v k="$(vm_hwm_kib "$REDIS_PID")" 'BEGIN {printf "%.1f", k / 1024}') MiB over all its runs"
