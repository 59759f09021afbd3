#!/usr/bin/env sh
# Builds the aymara-mock binary statically linked (glibc's static libc, no
# dynamic loader, no shared library), for the container image and the release.
# Prints the binary's path on stdout; cargo's output goes to stderr.
#
#   container/build-static.sh                 # this machine's architecture
#   container/build-static.sh aarch64         # another one (needs its Rust target and linker)
#
# Only the binary's own crate gets `+crt-static` (`cargo rustc -- FLAGS` passes
# flags to the last unit alone): the static link is decided when the binary is
# linked (the libc crate, like std, names its libraries with `cfg(target_feature
# = "crt-static")` on its #[link] attributes, which are read at the final link),
# so every dependency is the ordinary release build's, reused from
# target/release, and the static binary costs one crate and a link instead of a
# second release build. Debug info and the symbol table are stripped at the
# link (`-C strip=symbols`). The binary is copied to target/static/ because
# target/release/aymara-mock is this static one until the next cargo build
# relinks it.
#
# glibc links statically except for NSS (name lookups through /etc/nsswitch.conf
# modules); the image ships no nsswitch.conf and no modules, so glibc uses its
# built-in `files` and `dns` lookups (docs/container.md, "Name resolution").
set -eu
cd "$(dirname "$0")/.."
arch="${1:-$(uname -m)}"
dir="${CARGO_TARGET_DIR:-target}"
if [ "$arch" = "$(uname -m)" ]; then
    target_args=""
    built="$dir/release/aymara-mock"
else
    target_args="--target $arch-unknown-linux-gnu"
    built="$dir/$arch-unknown-linux-gnu/release/aymara-mock"
fi
# shellcheck disable=SC2086 # target_args is empty or two words
cargo rustc --release --locked $target_args --bin aymara-mock \
    -- -C target-feature=+crt-static -C strip=symbols >&2
mkdir -p "$dir/static"
cp "$built" "$dir/static/aymara-mock-$arch"
echo "$dir/static/aymara-mock-$arch"
