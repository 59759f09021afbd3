# Sourced by the Python suites' run.sh (tests/sdk, tests/s3). Not executable on its own.
#
#   suite_venv NAME DIR    create DIR/.venv with $PYTHON (default python3) unless it exists,
#                          and install DIR/requirements.txt into it
#   suite_bin NAME ROOT    export AYMARA_MOCK_BIN: as given, or ROOT's release build (built now)

suite_venv() {
    local name="$1" dir="$2"
    if [[ ! -x "$dir/.venv/bin/python" ]]; then
        echo "$name: creating $dir/.venv" >&2
        "${PYTHON:-python3}" -m venv "$dir/.venv"
    fi
    "$dir/.venv/bin/python" -m pip --disable-pip-version-check -q install -r "$dir/requirements.txt"
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
