#!/usr/bin/env bash
# Conformance suite: the official Python SDK (aymara-ai-sdk) against aymara-mock.
#
#   tests/sdk/run.sh                 # build the binary, set up tests/sdk/.venv, run pytest
#   tests/sdk/run.sh --setup-only    # only set up the venv (CI does this while cargo builds)
#   tests/sdk/run.sh -k retries -x   # extra arguments go to pytest
#   AYMARA_MOCK_BIN=/path/to/aymara-mock tests/sdk/run.sh   # use that binary, skip the build
#   PYTHON=python3.12 tests/sdk/run.sh                      # interpreter for the venv
#
# Idempotent: the venv is created once and reused; pip only installs what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
# shellcheck source=../pyshared/lib.sh
source "$here/../pyshared/lib.sh"

suite_venv sdk "$here"
suite_sdk sdk "$here"

if [[ "${1:-}" == --setup-only ]]; then exit 0; fi

suite_bin sdk "$root"

cd "$root"
exec "$venv/bin/python" -m pytest tests/sdk -q "$@"
