#!/usr/bin/env bash
# S3 suite: aymara-mock's S3 storage backend (--storage s3://BUCKET/PREFIX --s3-endpoint URL)
# against moto in server mode, with boto3 checking the bucket; the official SDK's upload
# helpers (presigned PUTs) store into it too.
#
#   tests/s3/run.sh                 # build the binary, set up tests/s3/.venv, run pytest
#   tests/s3/run.sh --setup-only     # only set up the venv (CI does this while cargo builds)
#   tests/s3/run.sh -k shared -x    # extra arguments go to pytest
#   AYMARA_MOCK_BIN=/path/to/aymara-mock tests/s3/run.sh   # use that binary, skip the build
#   PYTHON=python3.12 tests/s3/run.sh                      # interpreter for the venv
#
# Idempotent: the venv is created once and reused; pip only installs what changed.
# The suite starts moto itself on free loopback ports; nothing leaves 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
# shellcheck source=../pyshared/lib.sh
source "$here/../pyshared/lib.sh"

suite_venv s3 "$here"
# The official SDK, for its upload helpers over the S3 backend (test_s3.py, section 8).
suite_sdk s3 "$here"

if [[ "${1:-}" == --setup-only ]]; then exit 0; fi

suite_bin s3 "$root"

cd "$root"
exec "$venv/bin/python" -m pytest tests/s3 -q "$@"
