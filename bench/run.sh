#!/usr/bin/env bash
# bench/run.sh — the aymara-mock benchmark (ISSUE 6), one command, ~1 min.
#
# Builds the release binary, starts it on port 0 (a fresh server per
# workload), and reports:
#   W1  one 1 GiB upload (curl, prebuilt multipart body): MiB/s, the server's
#       CPU seconds per GiB and peak RSS (VmHWM), beside a plain `cat file > dir/x`
#       copy of the same bytes, the same bytes as a presigned PUT (POST /v2/files,
#       then PUT) to the same server, and, when nginx is installed, nginx storing
#       them (the issue's reference)
#   W2  4 KiB uploads, 32 connections, 10 s (wrk + bench/upload.lua):
#       req/s, p50, p99, errors (socket errors + non-2xx); medians of 3 runs,
#       alternating with W4's (W2 W4, W4 W2, W2 W4), so drift of the VM touches both alike
#   W3  exec to first answer: spawn → first 200 from GET /health, median of 5
#   W4  W2 with 1,000 non-matching fault rules loaded (W4 / W2 from the same minutes)
#   note: W2 again with --log-level info (stderr to a file)
# then a summary table with each target as PASS/FAIL.
#
# Public tools only: bash, curl, wrk, awk, python3 (stdlib), cargo.
# Traffic goes to 127.0.0.1 only. Everything it writes is under bench/data/
# (inputs and the storage dir; gitignored) and bench/out/ (reports; gitignored).
#
# Knobs (environment):
#   W1_SIZE_MIB=1024  W1_REPS=5          size and repetitions of W1 (median)
#   W2_DURATION=10    W2_CONNECTIONS=32  W2_THREADS=2   wrk settings (W2, W4, note)
#   W2_WARMUP=3       seconds of unmeasured W2 load first (0 to skip)
#   W24_ROUNDS=3      runs each of W2 and W4, alternating W2 W4, W4 W2, W2 W4 …
#   W3_RUNS=5         W4_RULES=1000
#   BENCH_INFO_NOTE=1 run the info-level W2 note (0 to skip)
#   BENCH_BUILD=1     run `cargo build --release` first (0 to use the binary as is)
#   BENCH_STORAGE=tmpfs  where uploads land: `tmpfs` (default: a tmpfs mounted at
#                        bench/data/storage when root, else a dir in /dev/shm),
#                        `disk` (bench/data/disk-storage, the work tree's filesystem),
#                        or a directory path
#   BENCH_NGINX=auto  W1's reference: nginx storing the same bytes (a PUT through
#                     its WebDAV module), measured beside each upload; `auto`
#                     when nginx is installed, `1` to require it, `0` to skip
#   BENCH_DISK_NOTE=0 1: also run W2 with storage on disk, as a note (slow: ext4
#                     inode allocation and deleting ~30k files add ~1.5 min)
#   BENCH_STRICT=0    1: exit 1 when any target FAILs
#   BENCH_WAIT_IDLE=0 wait up to this many seconds for other processes to go
#                     quiet (<10% CPU) before measuring
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- W1
run_w1() {
  log "W1: ${W1_SIZE_MIB} MiB upload x $W1_REPS (and a plain cat copy beside each)"
  rm -rf "$COPY_DIR" && mkdir -p "$COPY_DIR"
  # Warm the page cache: read both inputs once; nothing is dropped.
  cat "$PAYLOAD" >/dev/null
  cat "$BODY" >/dev/null
  W1_NGINX=0
  if need_nginx; then
    W1_NGINX=1
    start_nginx
  fi
  # The default configuration: log level info (one line per request), sha256 on.
  start_server w1 info
  W1_HWM_START_KIB=$(vm_hwm_kib)
  local rep res code secs t0 copies=() uploads=() nginx=() got_sha cpu=() ngx_cpu=() ngx_worker
  local puts=() put_cpu=() put_uuid
  for ((rep = 1; rep <= W1_REPS; rep++)); do
    copies+=("$(w1_copy_secs)")

    if ((W1_NGINX)); then
      # The reference: nginx storing the raw payload (PUT, no multipart, no hash).
      ngx_worker=$(pgrep -P "$NGX_PID" | head -n 1)
      t0=$(proc_ticks "$ngx_worker")
      res=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' -T "$PAYLOAD" -H 'Expect:' "$NGX_URL/w1.bin")
      ngx_cpu+=($(($(proc_ticks "$ngx_worker") - t0)))
      code=${res% *} secs=${res#* }
      [[ $code == 201 || $code == 204 ]] || die "W1 nginx PUT answered $code; see $OUT/nginx-error.log"
      [[ $(stat -c %s "$NGX_DIR/root/w1.bin") -eq $W1_BYTES ]] || die "W1: nginx stored a file of the wrong size"
      rm -f "$NGX_DIR/root/w1.bin"
      nginx+=("$secs")
    fi

    t0=$(proc_ticks "$SRV_PID")
    res=$(w1_post "$OUT/w1-response.json")
    cpu+=($(($(proc_ticks "$SRV_PID") - t0)))
    code=${res% *} secs=${res#* }
    [[ $code == 200 ]] || die "W1 upload answered $code: $(cat "$OUT/w1-response.json")"
    uploads+=("$secs")
    if ((rep == 1)); then
      got_sha=$(curl -sS "$SRV_URL/__admin/uploads" | sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p')
      [[ $got_sha == "$PAYLOAD_SHA" ]] || die "W1: stored sha256 $got_sha != $PAYLOAD_SHA"
    fi
    clear_uploads >/dev/null

    # The same bytes as a presigned PUT (POST /v2/files, then PUT), to the same server.
    t0=$(proc_ticks "$SRV_PID")
    res=$(w1_put "$OUT/w1-put-response.txt")
    put_cpu+=($(($(proc_ticks "$SRV_PID") - t0)))
    read -r code secs put_uuid <<<"$res"
    [[ $code == 200 ]] || die "W1 PUT answered $code: $(cat "$OUT/w1-put-response.txt")"
    puts+=("$secs")
    if ((rep == 1)); then
      got_sha=$(stored_sha256 "$put_uuid")
      [[ $got_sha == "$PAYLOAD_SHA" ]] || die "W1 PUT: stored sha256 '$got_sha' != $PAYLOAD_SHA"
    fi
    clear_uploads >/dev/null
    log "  rep $rep: copy ${copies[-1]} s, upload ${uploads[-1]} s, PUT ${puts[-1]} s${nginx:+, nginx ${nginx[-1]} s}"
  done
  W1_HWM_KIB=$(vm_hwm_kib)
  stop_server
  if ((W1_NGINX)); then
    W1_NGINX_HWM_MIB=$(awk -v k="$(ngx_worker_hwm_kib)" 'BEGIN {printf "%.1f", k / 1024}')
    stop_nginx
    W1_NGINX_MIBS=$(awk -v m="$W1_SIZE_MIB" -v s="$(printf '%s\n' "${nginx[@]}" | median)" 'BEGIN {printf "%.1f", m / s}')
  fi
  rm -rf "$COPY_DIR"
  W1_COPY_S=$(printf '%s\n' "${copies[@]}" | median)
  W1_UPLOAD_S=$(printf '%s\n' "${uploads[@]}" | median)
  W1_COPY_MIBS=$(awk -v m="$W1_SIZE_MIB" -v s="$W1_COPY_S" 'BEGIN {printf "%.1f", m / s}')
  W1_UPLOAD_MIBS=$(awk -v m="$W1_SIZE_MIB" -v s="$W1_UPLOAD_S" 'BEGIN {printf "%.1f", m / s}')
  W1_RATIO=$(awk -v u="$W1_UPLOAD_MIBS" -v c="$W1_COPY_MIBS" 'BEGIN {printf "%.3f", u / c}')
  W1_HWM_MIB=$(awk -v k="$W1_HWM_KIB" 'BEGIN {printf "%.1f", k / 1024}')
  W1_HWM_START_MIB=$(awk -v k="$W1_HWM_START_KIB" 'BEGIN {printf "%.1f", k / 1024}')
  # CPU seconds (utime + stime of the process) per GiB stored: unlike wall
  # time, barely touched by the VM's drift; what the kernel's writeback
  # threads spend is charged to neither process.
  W1_CPU_S_GIB=$(cpu_s_per_gib "${cpu[@]}")
  W1_PUT_CPU_S_GIB=$(cpu_s_per_gib "${put_cpu[@]}")
  W1_PUT_S=$(printf '%s\n' "${puts[@]}" | median)
  W1_PUT_MIBS=$(awk -v m="$W1_SIZE_MIB" -v s="$W1_PUT_S" 'BEGIN {printf "%.1f", m / s}')
  W1_PUT_RATIO=$(awk -v u="$W1_PUT_MIBS" -v c="$W1_UPLOAD_MIBS" 'BEGIN {printf "%.3f", u / c}')
  log "  median: upload $W1_UPLOAD_MIBS MiB/s, copy $W1_COPY_MIBS MiB/s, ratio $W1_RATIO, VmHWM $W1_HWM_MIB MiB, server CPU $W1_CPU_S_GIB s/GiB"
  log "  presigned PUT: $W1_PUT_MIBS MiB/s (/ multipart upload $W1_PUT_RATIO), server CPU $W1_PUT_CPU_S_GIB s/GiB"
  if ((W1_NGINX)); then
    W1_NGINX_RATIO=$(awk -v n="$W1_NGINX_MIBS" -v c="$W1_COPY_MIBS" 'BEGIN {printf "%.3f", n / c}')
    W1_VS_NGINX=$(awk -v u="$W1_UPLOAD_MIBS" -v n="$W1_NGINX_MIBS" 'BEGIN {printf "%.3f", u / n}')
    W1_NGINX_CPU_S_GIB=$(cpu_s_per_gib "${ngx_cpu[@]}")
    log "  nginx reference: $W1_NGINX_MIBS MiB/s (/ copy $W1_NGINX_RATIO), upload / nginx $W1_VS_NGINX, nginx worker VmHWM $W1_NGINX_HWM_MIB MiB, nginx worker CPU $W1_NGINX_CPU_S_GIB s/GiB"
  fi
}

# ---------------------------------------------------------------- W2 / W4 / note
# W2 and W4 alternate, W24_ROUNDS runs of W2_DURATION each, in the order
# W2 W4, W4 W2, W2 W4, …: consecutive 10 s runs on this VM differ by up to
# ±10% and now and then by +25%, and one W2 run followed by one W4 run put all
# of that into W4 / W2. Per workload, as the issue's own figures: req/s, p50
# and p99 are the medians of its runs (each run's are shown too); W4 / W2
# is the median of the rounds' ratios (each round's two runs are adjacent);
# errors and stored uploads are summed.
add_run() { # add_run W: appends this run's R_* figures to workload W's lists
  local w=$1
  eval "${w}_RPS_ALL+=(\"\$R_RPS\") ${w}_REQS_ALL+=(\"\$R_REQS\") ${w}_P50_ALL+=(\"\$R_P50\")"
  eval "${w}_P99_ALL+=(\"\$R_P99\") ${w}_ERR_ALL+=(\"\$R_ERRORS\") ${w}_STORED_ALL+=(\"\$R_STORED\")"
  eval "${w}_HWM_ALL+=(\"\$R_HWM_MIB\") ${w}_CPU_ALL+=(\"\$R_CPU_SERVER \$R_CPU_WRK \$R_CPU_OTHER\")"
}
sum_of() { awk '{s += $1} END {printf "%.0f", s}'; }
max_of() { sort -g | tail -n 1; }
summarize() { # summarize W: sets W_RPS, W_P50, W_P99, W_ERRORS, W_REQS, W_STORED, W_HWM, W_CPU
  local w=$1
  local -n r_rps=${w}_RPS_ALL r_reqs=${w}_REQS_ALL r_p50=${w}_P50_ALL r_p99=${w}_P99_ALL
  local -n r_err=${w}_ERR_ALL r_stored=${w}_STORED_ALL r_hwm=${w}_HWM_ALL r_cpu=${w}_CPU_ALL
  printf -v "${w}_RPS" '%.0f' "$(printf '%s\n' "${r_rps[@]}" | median)"
  printf -v "${w}_REQS" '%s' "$(printf '%s\n' "${r_reqs[@]}" | sum_of)"
  printf -v "${w}_P50" '%.2f' "$(printf '%s\n' "${r_p50[@]}" | median)"
  printf -v "${w}_P99" '%.2f' "$(printf '%s\n' "${r_p99[@]}" | median)"
  printf -v "${w}_ERRORS" '%s' "$(printf '%s\n' "${r_err[@]}" | sum_of)"
  printf -v "${w}_STORED" '%s' "$(printf '%s\n' "${r_stored[@]}" | sum_of)"
  printf -v "${w}_HWM" '%s' "$(printf '%s\n' "${r_hwm[@]}" | max_of)"
  printf -v "${w}_CPU" '%s' "$(printf '%s\n' "${r_cpu[@]}" | awk '{s += $1; w += $2; o += $3} END {printf "server %.0f%%, wrk %.0f%%, other %.0f%%", s / NR, w / NR, o / NR}')"
}

run_w2_w4() {
  if ((W2_WARMUP > 0)); then
    # Unmeasured: the first burst of file creations on a fresh tmpfs grows the
    # kernel's dentry and inode caches; without it W2 paid for that and W4,
    # run later, did not (W4 measured above W2 in five runs of six).
    log "W2 warm-up: ${W2_WARMUP} s, not measured"
    W2_DURATION=$W2_WARMUP run_wrk w2-warmup warn
  fi
  W2_RPS_ALL=() W2_REQS_ALL=() W2_P50_ALL=() W2_P99_ALL=() W2_ERR_ALL=() W2_STORED_ALL=() W2_HWM_ALL=() W2_CPU_ALL=()
  W4_RPS_ALL=() W4_REQS_ALL=() W4_P50_ALL=() W4_P99_ALL=() W4_ERR_ALL=() W4_STORED_ALL=() W4_HWM_ALL=() W4_CPU_ALL=()
  local round w order
  ((W24_ROUNDS >= 1)) || die "W24_ROUNDS must be 1 or more"
  for ((round = 1; round <= W24_ROUNDS; round++)); do
    if ((round % 2)); then order="W2 W4"; else order="W4 W2"; fi
    for w in $order; do
      if [[ $w == W2 ]]; then
        log "W2 ($round/$W24_ROUNDS): 4 KiB uploads, $W2_CONNECTIONS connections, ${W2_DURATION} s (wrk -t$W2_THREADS)"
        run_wrk "w2-$round" warn
      else
        log "W4 ($round/$W24_ROUNDS): W2 with $W4_RULES non-matching fault rules ($FIXTURE)"
        run_wrk "w4-$round" warn --fixtures "$FIXTURE"
      fi
      add_run "$w"
    done
  done
  summarize W2
  summarize W4
  local i ratios=()
  for ((i = 0; i < W24_ROUNDS; i++)); do
    ratios+=("$(awk -v a="${W4_RPS_ALL[i]}" -v b="${W2_RPS_ALL[i]}" 'BEGIN {printf "%.3f", a / b}')")
  done
  printf -v W4_RATIO '%.3f' "$(printf '%s\n' "${ratios[@]}" | median)"
  W4_RATIOS=${ratios[*]}
  log "  W2 median $W2_RPS req/s (runs: ${W2_RPS_ALL[*]}), W4 median $W4_RPS req/s (runs: ${W4_RPS_ALL[*]}), W4 / W2 by round: $W4_RATIOS, median $W4_RATIO"
}

run_w3() {
  log "W3: exec to first 200 from GET /health, $W3_RUNS runs"
  mkdir -p "$STORAGE_BASE"
  python3 "$HERE/w3_startup.py" "$BIN" "$STORAGE_BASE/w3" "$W3_RUNS" --log-level warn >"$OUT/w3.txt" ||
    die "W3 failed: $(cat "$OUT/w3.txt")"
  local line
  line=$(grep '^BENCH ' "$OUT/w3.txt")
  W3_MEDIAN=$(kv median_ms "$line") W3_ALL=$(kv all_ms "$line")
  log "  median $W3_MEDIAN ms (all: $W3_ALL)"
}

run_note() {
  log "note: W2 at --log-level info (server stderr to $OUT/server-w2-info.log)"
  run_wrk w2-info info
  NOTE_RPS=$R_RPS NOTE_P50=$R_P50 NOTE_P99=$R_P99 NOTE_ERRORS=$R_ERRORS
  NOTE_LOG_LINES=$(wc -l <"$OUT/server-w2-info.log")
  NOTE_LOG_MIB=$(awk -v b="$(stat -c %s "$OUT/server-w2-info.log")" 'BEGIN {printf "%.1f", b / 1048576}')
}

run_disk_note() {
  [[ $STORAGE_BASE != "$DISK_BASE" ]] || return 0 # W2 already ran on disk
  log "note: W2 with storage on disk ($DISK_BASE, $(df -T "$DATA" | awk 'NR == 2 {print $2}'))"
  local saved=$STORAGE
  STORAGE=$DISK_BASE/server
  run_wrk w2-disk warn
  STORAGE=$saved
  rm -rf "$DISK_BASE"
  DISK_RPS=$R_RPS DISK_P50=$R_P50 DISK_P99=$R_P99 DISK_ERRORS=$R_ERRORS
}

# ---------------------------------------------------------------- run
BUSY_BEFORE=$(wait_for_idle)
if ((BUSY_BEFORE > 10)); then
  log "warning: the machine was ${BUSY_BEFORE}% busy before the run (other processes): figures will be low and noisy"
fi
STARTED=$(now_ns)
run_w1
run_w2_w4
run_w3
if [[ $BENCH_INFO_NOTE == 1 ]]; then run_note; fi
if [[ $BENCH_DISK_NOTE == 1 ]]; then run_disk_note; fi

# ---------------------------------------------------------------- summary
verdict() { awk -v ok="$1" 'BEGIN {print (ok ? "PASS" : "FAIL")}'; }
all() { local v; for v; do [[ $v == PASS ]] || { echo FAIL; return; }; done; echo PASS; }

V_W1_TPUT=$(verdict "$(awk -v r="$W1_RATIO" 'BEGIN {print (r >= 0.6)}')")
V_W1_RSS=$(verdict "$(awk -v m="$W1_HWM_KIB" 'BEGIN {print (m <= 32 * 1024)}')")
V_W2_RPS=$(verdict "$(awk -v r="$W2_RPS" 'BEGIN {print (r >= 10000)}')")
V_W2_P99=$(verdict "$(awk -v p="$W2_P99" 'BEGIN {print (p <= 10)}')")
V_W2_ERR=$(verdict "$((W2_ERRORS == 0))")
V_W3=$(verdict "$(awk -v m="$W3_MEDIAN" 'BEGIN {print (m <= 25)}')")
V_W4=$(verdict "$(awk -v r="$W4_RATIO" 'BEGIN {print (r >= 0.9)}')")
V_W1=$(all "$V_W1_TPUT" "$V_W1_RSS")
V_W2=$(all "$V_W2_RPS" "$V_W2_P99" "$V_W2_ERR")
ELAPSED=$(awk -v ns=$(($(now_ns) - STARTED)) 'BEGIN {printf "%.0f", ns / 1e9}')

{
  echo
  echo "aymara-mock benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "binary: target/release/aymara-mock built $BIN_BUILT from $BIN_COMMIT (run from a copy in bench/out/)"
  echo "machine: nproc=$(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "storage: $STORAGE_BASE ($STORAGE_FS); wrk -t$W2_THREADS -c$W2_CONNECTIONS -d${W2_DURATION}s shares the 2 cores with the server; CPU ${BUSY_BEFORE}% busy before the run"
  echo
  printf '%-4s %-44s %-22s %-26s %s\n' "" "measured" "value" "target" "result"
  printf '%-4s %-44s %-22s %-26s %s\n' W1 "upload MiB/s (curl, median of $W1_REPS)" "$W1_UPLOAD_MIBS" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "plain copy MiB/s (cat > file, median)" "$W1_COPY_MIBS" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "upload / copy" "$W1_RATIO" ">= 0.6" "$V_W1_TPUT"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "server peak RSS (VmHWM; $W1_HWM_START_MIB at start)" "$W1_HWM_MIB MiB" "<= 32 MiB" "$V_W1_RSS"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "server CPU per GiB (utime + stime, median)" "$W1_CPU_S_GIB s" "(no target)" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "presigned PUT MiB/s (median) / upload" "$W1_PUT_MIBS / $W1_PUT_RATIO" "(no target)" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "presigned PUT server CPU per GiB" "$W1_PUT_CPU_S_GIB s" "(no target)" ""
  if ((W1_NGINX)); then
    printf '%-4s %-44s %-22s %-26s %s\n' "" "reference: nginx PUT MiB/s (median) / copy" "$W1_NGINX_MIBS / $W1_NGINX_RATIO" "(no target)" ""
    printf '%-4s %-44s %-22s %-26s %s\n' "" "upload / nginx; nginx worker VmHWM" "$W1_VS_NGINX; $W1_NGINX_HWM_MIB MiB" "(no target)" ""
    printf '%-4s %-44s %-22s %-26s %s\n' "" "nginx worker CPU per GiB (median)" "$W1_NGINX_CPU_S_GIB s" "(no target)" ""
  fi
  printf '%-4s %-44s %-22s %-26s %s\n' W2 "req/s (4 KiB, $W2_CONNECTIONS conns, median of $W24_ROUNDS x ${W2_DURATION} s)" "$W2_RPS" ">= 10000" "$V_W2_RPS"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "p50 / p99 latency (medians of the runs)" "$W2_P50 / $W2_P99 ms" "p99 <= 10 ms" "$V_W2_P99"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "req/s and p99 of each run" "${W2_RPS_ALL[*]}; ${W2_P99_ALL[*]} ms" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "errors (socket + non-2xx)" "$W2_ERRORS" "0" "$V_W2_ERR"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "stored by server / answered (wrk)" "$W2_STORED / $W2_REQS" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "server peak RSS (VmHWM)" "$W2_HWM MiB" "" ""
  printf '%-4s %-44s %s\n' "" "CPU share of $(nproc) cores during the runs" "$W2_CPU"
  printf '%-4s %-44s %-22s %-26s %s\n' W3 "exec -> first 200 /health (median of $W3_RUNS)" "$W3_MEDIAN ms" "<= 25 ms" "$V_W3"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "all runs" "$W3_ALL" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' W4 "req/s, $W4_RULES non-matching rules (median)" "$W4_RPS" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "W4 / W2 (median of the rounds' ratios)" "$W4_RATIO" ">= 0.9" "$V_W4"
  printf '%-4s %-44s %-22s %-26s %s\n' "" "req/s of each run; ratio of each round" "${W4_RPS_ALL[*]}; $W4_RATIOS" "" ""
  printf '%-4s %-44s %-22s %-26s %s\n' "" "p50 / p99, errors" "$W4_P50 / $W4_P99 ms, $W4_ERRORS" "" ""
  printf '%-4s %-44s %s\n' "" "CPU share of $(nproc) cores during the runs" "$W4_CPU"
  if [[ $BENCH_INFO_NOTE == 1 ]]; then
    printf '%-4s %-44s %-22s %-26s %s\n' note "W2 at --log-level info: req/s" "$NOTE_RPS" "(no target)" ""
    printf '%-4s %-44s %-22s %-26s %s\n' "" "p50 / p99, errors" "$NOTE_P50 / $NOTE_P99 ms, $NOTE_ERRORS" "" ""
    printf '%-4s %-44s %-22s %-26s %s\n' "" "log written" "$NOTE_LOG_LINES lines, $NOTE_LOG_MIB MiB" "" ""
  fi
  if [[ -n ${DISK_RPS:-} ]]; then
    printf '%-4s %-44s %-22s %-26s %s\n' note "W2 with storage on disk: req/s" "$DISK_RPS" "(no target)" ""
    printf '%-4s %-44s %-22s %-26s %s\n' "" "p50 / p99, errors" "$DISK_P50 / $DISK_P99 ms, $DISK_ERRORS" "" ""
  fi
  echo
  echo "W1 $V_W1   W2 $V_W2   W3 $V_W3   W4 $V_W4   (total ${ELAPSED} s; raw output in bench/out/)"
} | tee "$OUT/summary.txt"

# The figures, one KEY=value a line, for scripts.
cat >"$OUT/results.env" <<EOF
W1_UPLOAD_MIBS=$W1_UPLOAD_MIBS
W1_COPY_MIBS=$W1_COPY_MIBS
W1_RATIO=$W1_RATIO
W1_PEAK_RSS_MIB=$W1_HWM_MIB
W1_NGINX_MIBS=${W1_NGINX_MIBS:-}
W1_NGINX_RATIO=${W1_NGINX_RATIO:-}
W1_UPLOAD_PER_NGINX=${W1_VS_NGINX:-}
W1_CPU_S_PER_GIB=$W1_CPU_S_GIB
W1_PUT_MIBS=$W1_PUT_MIBS
W1_PUT_CPU_S_PER_GIB=$W1_PUT_CPU_S_GIB
W1_NGINX_CPU_S_PER_GIB=${W1_NGINX_CPU_S_GIB:-}
W2_RPS=$W2_RPS
W2_P50_MS=$W2_P50
W2_P99_MS=$W2_P99
W2_ERRORS=$W2_ERRORS
W3_MEDIAN_MS=$W3_MEDIAN
W4_RPS=$W4_RPS
W4_RATIO=$W4_RATIO
VERDICT_W1=$V_W1
VERDICT_W2=$V_W2
VERDICT_W3=$V_W3
VERDICT_W4=$V_W4
EOF

if [[ $BENCH_STRICT == 1 ]] && [[ "$V_W1$V_W2$V_W3$V_W4" == *FAIL* ]]; then
  exit 1
fi
