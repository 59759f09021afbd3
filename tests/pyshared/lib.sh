# Sourced by the Python suites' run.sh (tests/sdk, tests/s3). Not executable on its own.
#
#   suite_venv NAME DIR    create DIR/.venv with $PYTHON (default python3) unless it exists,
#                          and install DIR/requirements.txt into it
#   suite_sdk NAME DIR     install the official SDK (tests/sdk/requirements-sdk.txt) into
#                          DIR/.venv without its declared dependencies, and check it imports
#   suite_bin NAME ROOT    export AYMARA_MOCK_BIN: as given, or ROOT's release build (built now)

suite_venv() {
    local name="$1" dir="$2"
    if [[ ! -x "$dir/.venv/bin/python" ]]; then
        echo "$name: creating $dir/.venv" >&2
        "${PYTHON:-python3}" -m venv "$dir/.venv"
    fi
    "$dir/.venv/bin/python" -m pip --disable-pip-version-check -q install -r "$dir/requirements.txt"
}

# The SDK declares heavy dependencies (pandas, matplotlib, boto3, jupyter, ...) that its
# client and its aymara_ai.lib.uploads helpers never import: it is installed alone, and
# tests/sdk/requirements.txt pins what they do import (each suite's requirements.txt
# includes it or copies its pins).
suite_sdk() {
    local name="$1" dir="$2" sdk_dir
    sdk_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../sdk" && pwd)"
    "$dir/.venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps \
        -r "$sdk_dir/requirements-sdk.txt"
    "$dir/.venv/bin/python" -c 'import aymara_ai, aymara_ai.lib.uploads' \
        || { echo "$name: aymara_ai does not import with the pinned requirements" >&2; return 1; }
}

suite_bin() {
    local name="$1" root="$2"
    if [[ -z "${AYMARA_MOCK_BIN:-}" ]]; then
        (cd "$root" && cargo build --release --bin aymara-mock)
        AYMARA_MOCK_BIN="$root/target/release/aymara-mock"
    fi
    if [[ ! -x "$AYMARA_MOCK_BIN" ]]; then
        echo "$name: AYMARA_MOCK_BIN=$AYMARA_MOCK_BIN is not an executable" >&2
        return 1
    fi
    export AYMARA_MOCK_BIN
}
