-- wrk script for bench/concurrency.sh's presigned PUT (CONC_METHOD=put): every
-- request PUTs the same raw body of BENCH_FILE_BYTES bytes to the URL wrk is
-- given (the emulator's presigned `file_url`, which each PUT overwrites; or
-- nginx keeping the body), so wrk builds the request once.
--
-- Usage: wrk -t2 -c32 -d10s --latency -s bench/put.lua URL
-- It reuses bench/upload.lua (its content and its BENCH line) and turns the
-- request into a PUT of the raw bytes.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "upload.lua")

local size = tonumber(os.getenv("BENCH_FILE_BYTES") or "4096")
local pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
wrk.method = "PUT"
wrk.body = string.rep(pattern, math.ceil(size / #pattern)):sub(1, size)
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["x-api-key"] = nil
