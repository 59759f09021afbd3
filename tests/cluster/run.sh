#!/usr/bin/env bash
# Cluster suite: aymara-mock replicas sharing one Redis (--state redis://HOST:PORT/DB,
# --state-prefix, --replica-id) and one S3 bucket (moto in server mode): run-time rules, their
# counters and the journal are the cluster's; Redis going away and coming back.
#
#   tests/cluster/run.sh                 # build the binary, set up tests/cluster/.venv, run pytest
#   tests/cluster/run.sh --setup-only    # only set up redis-server and the venv (while cargo builds)
#   tests/cluster/run.sh -k journal -x   # extra arguments go to pytest
#   tests/cluster/run.sh -n 3            # three xdist workers (each its own redis-server and moto)
#   AYMARA_MOCK_BIN=/path/to/aymara-mock tests/cluster/run.sh   # use that binary, skip the build
#   REDIS_SERVER=/path/to/redis-server tests/cluster/run.sh     # that redis-server, none installed
#   PYTHON=python3.12 tests/cluster/run.sh                      # interpreter for the venv
#
# Idempotent: redis-server is installed (Debian's package, as root) only when missing; the venv
# is created once and reused; pip only installs what changed. The suite starts redis-server and
# moto itself on free loopback ports; nothing leaves 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
# shellcheck source=../pyshared/lib.sh
source "$here/../pyshared/lib.sh"

if [[ -z "${REDIS_SERVER:-}" ]] && ! command -v redis-server >/dev/null; then
    if [[ "$(id -u)" -eq 0 ]]; then
        echo "cluster: installing Debian's redis-server" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    else
        echo "cluster: redis-server is not installed; run as root to install it," \
             "\`apt-get install redis-server\`, or set REDIS_SERVER=/path/to/redis-server" >&2
        exit 1
    fi
fi

suite_venv cluster "$here"
# The official SDK: its upload helper through one replica, its status call through another.
suite_sdk cluster "$here"

if [[ "${1:-}" == --setup-only ]]; then exit 0; fi

suite_bin cluster "$root"

cd "$root"
exec "$venv/bin/python" -m pytest tests/cluster -q "$@"
