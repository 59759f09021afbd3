#!/usr/bin/env bash
# The README's examples, run as a reader runs them: from a folder outside the clone, with only
# the installed wheel (its `aymara-mock`, the `aymara_mock` module and pytest plugin), the
# official SDK and pytest on PATH; no cargo (but for a Rust example), nothing of the clone.
#
#   tests/examples/run.sh                  # the runner's self-test, then README.md and docs/*.md
#   tests/examples/run.sh docs/x.md        # other files instead of README.md
#   WHEEL=path/to.whl tests/examples/run.sh
#   BIN=target/debug/aymara-mock tests/examples/run.sh   # the wheel's Python, this binary: quick
#                                       # iteration on a debug build (CI runs the wheel as built)
#
# The wheel is the newest in target/wheels (tests/python/run.sh builds it; CI runs that first).
# See run_examples.py for what is done with each block and the directives that steer it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
pip_flags=(--disable-pip-version-check -q)

wheel="${WHEEL:-$(ls -t "$root"/target/wheels/aymara_mock-*.whl 2>/dev/null | head -n 1 || true)}"
if [[ -z "$wheel" || ! -f "$wheel" ]]; then
    echo "examples: no wheel in target/wheels: run tests/python/run.sh (or maturin build --release) first" >&2
    exit 2
fi

scratch="$(mktemp -d /tmp/aymara-mock-examples-venv.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
venv="$scratch/venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip "${pip_flags[@]}" install "$wheel" \
    -r "$root/tests/sdk/requirements.txt" -r "$here/requirements.txt"
"$venv/bin/python" -m pip "${pip_flags[@]}" install --no-deps -r "$root/tests/sdk/requirements-sdk.txt"
if [[ -n "${BIN:-}" ]]; then
    cp "$BIN" "$venv/bin/aymara-mock"
fi

# Nothing of this shell reaches the examples but what a reader has: HOME, a PATH (the runner
# takes cargo and the clone off it for each block), and cargo's settings for a Rust example.
run_clean() {
    local keep=() var
    for var in $(compgen -e); do
        [[ "$var" == CARGO_* || "$var" == RUSTUP_* ]] && keep+=("$var=${!var}")
    done
    env -i HOME="$HOME" LANG=C.UTF-8 PATH="$venv/bin:$PATH" "${keep[@]}" "$@"
}

if (( $# == 0 )); then
    echo "examples: self-test (each broken example must fail)" >&2
    (cd "$scratch" && run_clean python -m pytest -q -p no:cacheprovider "$here/test_runner.py")
    set -- "$root/README.md" "$root"/docs/*.md
fi
run_clean python "$here/run_examples.py" "$@"
