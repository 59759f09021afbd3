#!/usr/bin/env bash
# Conformance suite: the official Python SDK (aymara-ai-sdk) against aymara-mock.
#
#   tests/sdk/run.sh                 # build the binary, set up tests/sdk/.venv, run pytest
#   tests/sdk/run.sh -k retries -x   # extra arguments go to pytest
#   AYMARA_MOCK_BIN=/path/to/aymara-mock tests/sdk/run.sh   # use that binary, skip the build
#   PYTHON=python3.12 tests/sdk/run.sh                      # interpreter for the venv
#
# Idempotent: the venv is created once and reused; pip only installs what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "sdk: creating $venv" >&2
    "$python" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r "$here/requirements.txt"
# The SDK declares heavy dependencies (pandas, matplotlib, boto3, jupyter, ...)
# that its client never imports: install it alone; requirements.txt pins what it uses.
"${pip[@]}" install --no-deps -r "$here/requirements-sdk.txt"
"$venv/bin/python" -c 'import aymara_ai' \
    || { echo "sdk: aymara_ai does not import with the pinned requirements" >&2; exit 1; }

if [[ -z "${AYMARA_MOCK_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --bin aymara-mock)
    AYMARA_MOCK_BIN="$root/target/release/aymara-mock"
fi
if [[ ! -x "$AYMARA_MOCK_BIN" ]]; then
    echo "sdk: AYMARA_MOCK_BIN=$AYMARA_MOCK_BIN is not an executable" >&2
    exit 1
fi
export AYMARA_MOCK_BIN

cd "$root"
exec "$venv/bin/python" -m pytest tests/sdk -q "$@"
