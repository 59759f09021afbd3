#!/usr/bin/env bash
# What the release workflow relies on and can be checked without publishing:
#   1. actionlint (with shellcheck on the `run:` scripts) passes on every workflow;
#   2. the crate's file list is the source, the fixtures and the README: no
#      tests or their data, no benchmarks, no docs screenshots, no CI files;
#   3. `cargo publish --dry-run` packages and builds it (from crates.io's index).
#
#   .ci/release_checks.sh            # VENV=target/ci-venv by default (.ci/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-target/ci-venv}"

echo "release: actionlint $("$venv/bin/actionlint" --version | head -n1) on .github/workflows/*.yml" >&2
"$venv/bin/actionlint" -shellcheck "$venv/bin/shellcheck" .github/workflows/*.yml

list="$(cargo package --list --locked --allow-dirty 2>/dev/null)"
unwanted="$(grep -vE '^(src/|fixtures/|Cargo\.toml$|Cargo\.toml\.orig$|Cargo\.lock$|README\.md$|CHANGELOG\.md$|\.cargo_vcs_info\.json$)' <<<"$list" || true)"
if [[ -n "$unwanted" ]]; then
    echo "$unwanted" >&2
    echo "release: the crate would ship the files above; fix Cargo.toml's include" >&2
    exit 1
fi
for needed in src/bin/aymara-mock/main.rs src/lib.rs README.md fixtures/schema.json; do
    grep -qx "$needed" <<<"$list" || { echo "release: the crate lacks $needed" >&2; exit 1; }
done
echo "release: the crate holds $(wc -l <<<"$list") files: src/, fixtures/, README, CHANGELOG" >&2

# --allow-dirty: CI's clone is clean, a developer's may not be. The build of
# the unpacked crate goes to target/package (its own deps' build, once).
cargo publish --dry-run --locked --allow-dirty
