#!/usr/bin/env bash
# The Python package's suite: build the wheel, install it into a fresh venv, and run
# tests/python as a user of the wheel runs tests (the plugin's fixtures, the admin client, the
# official SDK), with a PATH that has no cargo and no target/ directory.
#
#   tests/python/run.sh                 # build the wheel, check its tag, fresh venv, pytest,
#                                       # then `pip install .` from the repo root, checked too
#   tests/python/run.sh --setup-only    # only the build venv (CI does this while cargo builds)
#   tests/python/run.sh -k seed -x      # extra arguments go to pytest
#   SOURCE_INSTALL=0 tests/python/run.sh   # skip the `pip install .` check
#   PYTHON=python3.12 tests/python/run.sh  # interpreter for the venvs (3.9+)
#
# The wheel is built by maturin with the release profile into target/wheels; cargo reuses what
# target/release already holds (CI's soak step built most of it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
build_venv="$root/target/py-build-venv"
pip_flags=(--disable-pip-version-check -q)

if [[ ! -x "$build_venv/bin/python" ]]; then
    echo "python: creating $build_venv" >&2
    "$python" -m venv "$build_venv"
fi
"$build_venv/bin/python" -m pip "${pip_flags[@]}" install -r "$here/requirements-build.txt"
if [[ "${1:-}" == --setup-only ]]; then exit 0; fi

version="$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")"
wheels="$root/target/wheels"
rm -f "$wheels"/aymara_mock-*.whl
step_start=$SECONDS
# --auditwheel check: maturin's own compliance check picks the lowest manylinux tag the binary
# satisfies and fails, instead of vendoring them into the wheel, if it needs a library outside
# the policy (its default, repair, would ship them silently).
(cd "$root" && "$build_venv/bin/maturin" build --release --locked --auditwheel check --out "$wheels")
wheel="$(ls "$wheels"/aymara_mock-"$version"-*.whl)"
echo "python: built $(basename "$wheel") in $((SECONDS - step_start))s" >&2

# The platform tag must be what the binary really needs (its glibc symbol versions, the
# libraries it links): auditwheel derives it from the binary; it must be the wheel's own tag.
tag="${wheel##*-}"; tag="${tag%.whl}"
shown="$("$build_venv/bin/auditwheel" show "$wheel")"
derived="$(tr '\n' ' ' <<<"$shown" | sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p')"
if [[ "$derived" != "$tag" ]]; then
    echo "$shown" >&2
    echo "python: the wheel is tagged $tag but auditwheel derives '$derived' from its binary" >&2
    exit 1
fi
echo "python: platform tag $tag confirmed by auditwheel" >&2

scratch="$(mktemp -d "${TMPDIR:-/tmp}/aymara-mock-py.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# A PATH without cargo, rustc or any target/ directory: what a user of the wheel has.
clean_path() {
    local venv_bin="$1" dir out="$1"
    local IFS=:
    for dir in $PATH; do
        [[ -z "$dir" || "$dir" == "$root"* || "/$dir/" == */target/* ]] && continue
        [[ -x "$dir/cargo" || -x "$dir/rustc" ]] && continue
        out="$out:$dir"
    done
    printf '%s' "$out"
}
# A fresh environment too: nothing from this shell (AYMARA_MOCK_BIN, CARGO_*) reaches the suite.
run_clean() {
    local venv="$1"; shift
    env -i HOME="$HOME" LANG=C.UTF-8 TMPDIR="$scratch" PATH="$(clean_path "$venv/bin")" "$@"
}

venv="$scratch/venv"
"$python" -m venv "$venv"
# The SDK alone (--no-deps), as tests/sdk/run.sh installs it; its client's runtime imports and
# pytest are pinned in tests/sdk/requirements.txt. The wheel brings its own dependency, httpx.
run_clean "$venv" python -m pip "${pip_flags[@]}" install "$wheel" \
    -r "$root/tests/sdk/requirements.txt" -r "$here/requirements.txt"
run_clean "$venv" python -m pip "${pip_flags[@]}" install --no-deps -r "$root/tests/sdk/requirements-sdk.txt"
run_clean "$venv" aymara-mock --version

cd "$here"
status=0
run_clean "$venv" python -m pytest -q "$@" || status=$?
if (( status != 0 )); then exit "$status"; fi

if [[ "${SOURCE_INSTALL:-1}" != 0 ]]; then
    # `python -m pip install .` from the repo root: maturin as the build backend compiles the
    # release binary (reusing target/release) and installs the same package.
    step_start=$SECONDS
    src_venv="$scratch/src-venv"
    "$python" -m venv "$src_venv"
    (cd "$root" && "$src_venv/bin/python" -m pip "${pip_flags[@]}" install .)
    got="$(run_clean "$src_venv" aymara-mock --version)"
    [[ "$got" == "aymara-mock $version" ]] \
        || { echo "python: pip install . gave '$got', want 'aymara-mock $version'" >&2; exit 1; }
    run_clean "$src_venv" python -c 'import aymara_mock, pathlib; assert (pathlib.Path(aymara_mock.__file__).parent / "py.typed").is_file()'
    echo "python: pip install . from the repo root: $got, in $((SECONDS - step_start))s" >&2
fi
