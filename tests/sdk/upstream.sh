#!/usr/bin/env bash
# The SDK's own tests against aymara-mock: tests/api_resources/test_files.py and
# test_health.py from the aymara-ai-sdk sdist on PyPI, with their "Prism tests are
# disabled" skip markers stripped, run over all client variants (loose, strict, aiohttp).
#
#   tests/sdk/upstream.sh                 # build the binary, set up the venv, fetch, run
#   tests/sdk/upstream.sh --setup-only    # only set up the venv and fetch the sdist (CI, while cargo builds)
#   tests/sdk/upstream.sh -k health -x    # extra arguments go to pytest
#   tests/sdk/upstream.sh --seed-files    # a stored file in place of the tests' placeholder uuid
#   AYMARA_MOCK_BIN=/path/to/aymara-mock tests/sdk/upstream.sh   # use that binary, skip the build
#   PYTHON=python3.12 tests/sdk/upstream.sh                      # interpreter for the venv
#
# The SDK version is the one tests/sdk pins (requirements-sdk.txt). The sdist is kept in
# tests/sdk/upstream/.cache and unpacked afresh into a temp dir on every run; the venv is
# tests/sdk/upstream/.venv (its own: the SDK's tests need pytest-asyncio, which tests/sdk
# does not want). One server, on port 0 with a temp storage dir, serves the whole run, as
# Prism serves the SDK's CI. Prints "sdk-upstream: N passed" and exits non-zero if any test
# failed, errored or was skipped, or if the server did not exit cleanly on SIGTERM.
#
# The tests were written for Prism, which answers any path with an example: they call get,
# get_status, get_frames and delete with the placeholder uuid "file_uuid", which a stateful
# emulator rightly answers with 404. --seed-files replaces each such placeholder with
# `seeded_file_uuid()` (tests/sdk/upstream/seed.py: a video stored for that call, processed at
# once with --video-processing-time 0s); nothing else in the tests changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="$here/upstream"
venv="$dir/.venv"
cache="$dir/.cache"
# shellcheck source=../pyshared/lib.sh
source "$here/../pyshared/lib.sh"

sdk_version=$(sed -n 's/^aymara-ai-sdk==\([^ ]*\)$/\1/p' "$here/requirements-sdk.txt")
if [[ -z "$sdk_version" ]]; then
    echo "sdk-upstream: no 'aymara-ai-sdk==VERSION' line in $here/requirements-sdk.txt" >&2
    exit 1
fi

suite_venv sdk-upstream "$dir"
suite_sdk sdk-upstream "$dir"
"$venv/bin/python" -c 'import pytest_asyncio, httpx_aiohttp' \
    || { echo "sdk-upstream: the SDK's test dependencies do not import" >&2; exit 1; }

sdist="$cache/aymara_ai_sdk-$sdk_version.tar.gz"
if [[ ! -f "$sdist" ]]; then
    echo "sdk-upstream: fetching the aymara-ai-sdk $sdk_version sdist into $cache" >&2
    mkdir -p "$cache"
    "$venv/bin/python" -m pip --disable-pip-version-check -q download --no-deps \
        --no-binary :all: -d "$cache" "aymara-ai-sdk==$sdk_version"
fi
[[ -f "$sdist" ]] || { echo "sdk-upstream: pip download did not produce $sdist" >&2; exit 1; }

setup_only=0 seed_files=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --setup-only) setup_only=1; shift ;;
        --seed-files) seed_files=1; shift ;;
        *) break ;;
    esac
done
if [[ "$setup_only" -eq 1 ]]; then exit 0; fi

suite_bin sdk-upstream "$root"

work=$(mktemp -d "${TMPDIR:-/tmp}/aymara-sdk-upstream.XXXXXX")
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

tar -xzf "$sdist" -C "$work"
sdk="$work/aymara_ai_sdk-$sdk_version"
tests=(tests/api_resources/test_files.py tests/api_resources/test_health.py)
marker='^[[:space:]]*@pytest\.mark\.skip(reason="Prism tests are disabled")[[:space:]]*$'
for t in "${tests[@]}"; do
    # If a new sdist stops marking its tests this way, say so rather than run them skipped.
    if ! grep -q "$marker" "$sdk/$t"; then
        echo "sdk-upstream: no 'Prism tests are disabled' marker in $t; has the sdist changed?" >&2
        exit 1
    fi
    sed -i "/$marker/d" "$sdk/$t"
done
server_args=()
if [[ "$seed_files" -eq 1 ]]; then
    files_test="$sdk/tests/api_resources/test_files.py"
    placeholder='^\([[:space:]]*\)"file_uuid",$'
    if ! grep -q "$placeholder" "$files_test"; then
        echo "sdk-upstream: no '\"file_uuid\",' placeholder in test_files.py; has the sdist changed?" >&2
        exit 1
    fi
    sed -i "s/$placeholder/\1seeded_file_uuid(),/" "$files_test"
    # Looked up when a test runs, so an import at the end of the module does.
    printf '\nfrom tests.upstream_seed import seeded_file_uuid  # added by upstream.sh --seed-files\n' \
        >>"$files_test"
    cp "$dir/seed.py" "$sdk/tests/upstream_seed.py"
    server_args+=(--video-processing-time 0s)
fi

# The server, on port 0; its URL comes from its one stdout line, read through a fifo (kept
# open on fd 3 for the server's lifetime, so that nothing it prints later meets a closed pipe).
mkfifo "$work/stdout"
bin="$AYMARA_MOCK_BIN"
(
    # Settings of the caller's environment would change the server (as sidecar.child_env).
    while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^AYMARA_(MOCK|AI)_' || true)
    exec "$bin" serve --host 127.0.0.1 --port 0 --storage-dir "$work/storage" \
        "${server_args[@]}"
) >"$work/stdout" 2>"$work/server.log" &
server_pid=$!
exec 3<"$work/stdout"
ready=
read -r -t 30 -u 3 ready || true
if [[ ! "$ready" =~ ^aymara-mock\ listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]]; then
    echo "sdk-upstream: no 'aymara-mock listening on URL' line within 30 s (got '$ready'); server log:" >&2
    tail -c 4000 "$work/server.log" >&2
    exit 1
fi
url="${BASH_REMATCH[1]}"
echo "sdk-upstream: aymara-ai-sdk $sdk_version tests against $AYMARA_MOCK_BIN at $url" >&2

set +e
(
    cd "$sdk"
    while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^AYMARA_AI_' || true)
    # The SDK's conftest reads TEST_API_BASE_URL and passes its own API key ("My API Key"),
    # which the server accepts: by default it takes any non-empty key.
    TEST_API_BASE_URL="$url" exec "$venv/bin/python" -m pytest -c "$dir/pytest.ini" \
        --rootdir "$sdk" --junitxml "$work/junit.xml" -q "${tests[@]}" "$@"
)
pytest_rc=$?
set -e

# Stopped as a supervisor would; it must exit 0 (if it died during the run, wait says how).
kill -TERM "$server_pid" 2>/dev/null || true
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=
exec 3<&-

status=0
if [[ "$server_rc" -ne 0 ]]; then
    echo "sdk-upstream: the server exited $server_rc on SIGTERM; its log:" >&2
    tail -c 4000 "$work/server.log" >&2
    status=1
fi
if [[ ! -f "$work/junit.xml" ]]; then
    echo "sdk-upstream: pytest wrote no report (exit $pytest_rc)" >&2
    exit 1
fi
# A skip would mean a marker the strip missed or a variant that did not run: count it as failing.
"$venv/bin/python" - "$work/junit.xml" <<'EOF' || status=1
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
print(
    f"sdk-upstream: {passed} passed of {n['tests']} "
    f"({n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped)"
)
sys.exit(0 if n["tests"] > 0 and passed == n["tests"] else 1)
EOF
if [[ "$pytest_rc" -ne 0 ]]; then status=1; fi
exit "$status"
