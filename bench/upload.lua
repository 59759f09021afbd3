-- wrk script for W2/W4: every request is the same multipart/form-data upload
-- of a fixed 4 KiB file (part `file`), so wrk builds the request once and the
-- client does no per-request work in Lua.
--
-- Usage: wrk -t2 -c32 -d10s --latency -s bench/upload.lua http://127.0.0.1:PORT/v2/files/-/uploads
-- Env:   BENCH_FILE_BYTES (default 4096), BENCH_API_KEY (default "k")
--
-- done() prints one machine-readable line that bench/run.sh parses:
--   BENCH requests=N duration_us=N bytes=N p50_us=N p90_us=N p99_us=N max_us=N mean_us=N
--         err_connect=N err_read=N err_write=N err_status=N err_timeout=N

local size = tonumber(os.getenv("BENCH_FILE_BYTES") or "4096")
local key = os.getenv("BENCH_API_KEY") or "k"
local boundary = "----aymara-bench-7d3f2c1e"

-- Deterministic, non-constant content (so nothing could special-case it).
local pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
local file = string.rep(pattern, math.ceil(size / #pattern)):sub(1, size)

wrk.method = "POST"
wrk.body = "--" .. boundary .. "\r\n"
  .. "Content-Disposition: form-data; name=\"file\"; filename=\"bench-4k.bin\"\r\n"
  .. "Content-Type: application/octet-stream\r\n"
  .. "\r\n"
  .. file .. "\r\n"
  .. "--" .. boundary .. "--\r\n"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.headers["x-api-key"] = key

-- No request()/response() functions: wrk then sends the pre-built request and
-- counts non-2xx/3xx statuses itself (summary.errors.status).

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f"
      .. " err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
