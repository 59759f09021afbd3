#!/usr/bin/env bash
# Runs schemathesis against GET /openapi.json of a fresh emulator: no 5xx
# (no faults are injected here) and every answer conforms to the document.
# Input-strictness checks are left out on purpose: like the real API, the
# emulator ignores multipart parts other than `file`. POST /__admin/rules is
# left out too: schemathesis would add valid fault rules (resets, hangs,
# arbitrary statuses) and then fail the injected answers it asked for; that
# route is covered by tests/api/admin.rs. POST /__admin/scenarios/{name} is
# left out for the same reason (it switches on a shipped scenario's faults,
# such as files-put-slow-down's 503); tests/api/scenarios.rs covers it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-target/ci-venv}
bin=${AYMARA_MOCK_BIN:-target/debug/aymara-mock}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

[ -n "${AYMARA_MOCK_BIN:-}" ] || cargo build --quiet --bin aymara-mock
"$bin" --port 0 --api-key k --log-level warn --storage-dir "$work/storage" --ready-file "$work/url" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$work/url" ] && break; sleep 0.05; done
url=$(cat "$work/url")

"$venv/bin/schemathesis" run "$url/openapi.json" --url "$url" \
  -H 'x-api-key: k' \
  --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
  --exclude-operation-id admin_add_rules --exclude-operation-id admin_add_scenario \
  --max-examples 30 --seed 1 --max-time 45 \
  --suppress-health-check all
