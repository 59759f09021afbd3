#!/usr/bin/env bash
# The live page at /__admin/ in a real browser: Debian's chromium, driven
# headless by playwright-core (npm), against the real binary, with uploads
# made by the official SDK (tests/sdk's venv).
#
#   tests/browser/run.sh                        # installs what is missing, builds, runs
#   AYMARA_MOCK_BIN=target/release/aymara-mock tests/browser/run.sh   # that binary, no build
#   UPDATE_SCREENSHOTS=1 tests/browser/run.sh   # also rewrites docs/admin-page-*.png
#
# It never downloads a browser: playwright-core has none, and the script
# points it at /usr/bin/chromium (installed with apt-get when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser: installing Debian's chromium" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The SDK's venv, as the SDK suite sets it up (idempotent).
"$root/tests/sdk/run.sh" --setup-only

if [[ -n "${AYMARA_MOCK_BIN:-}" ]]; then
  AYMARA_MOCK_BIN="$(cd "$(dirname "$AYMARA_MOCK_BIN")" && pwd)/$(basename "$AYMARA_MOCK_BIN")"
  export AYMARA_MOCK_BIN
fi

cd "$here"
if [[ ! -d node_modules/playwright-core ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent
fi

if [[ -z "${AYMARA_MOCK_BIN:-}" ]]; then
  (cd "$root" && cargo build -q --bin aymara-mock)
  export AYMARA_MOCK_BIN="$root/target/debug/aymara-mock"
fi
export SDK_PYTHON="$root/tests/sdk/.venv/bin/python"
exec node page.test.mjs
