#!/usr/bin/env sh
# Builds the aymara-mock binary statically linked (glibc's static libc, no
# dynamic loader, no shared library), for the container image and the release.
# Prints the binary's path on stdout; cargo's output goes to stderr.
#
#   container/build-static.sh                 # this machine's architecture
#   container/build-static.sh aarch64         # another one (needs its Rust target and linker)
#
# glibc links statically except for NSS (name lookups through /etc/nsswitch.conf
# modules); the image ships no nsswitch.conf and no modules, so glibc uses its
# built-in `files` and `dns` lookups (docs/container.md, "Name resolution").
set -eu
cd "$(dirname "$0")/.."
arch="${1:-$(uname -m)}"
target="$arch-unknown-linux-gnu"
# The image's binary has no use for debug info or a symbol table.
# --target keeps build scripts and proc macros (which run on the host and
# cannot be static) out of RUSTFLAGS; the output goes to target/$target/release.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
CARGO_PROFILE_RELEASE_DEBUG=false \
CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$target" --bin aymara-mock >&2
echo "${CARGO_TARGET_DIR:-target}/$target/release/aymara-mock"
