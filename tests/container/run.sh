#!/usr/bin/env bash
# The container image, tested without a container engine that can run it:
# podman builds it (FROM scratch needs no registry), `podman create` +
# `podman export` give its root filesystem, and its entrypoint runs from that
# root with chroot, as the image's user, as PID 1 of its own PID and network
# namespaces (unshare), so it binds the image's 0.0.0.0:8000 on a loopback
# of its own. Checked: the static binary, the image's config (user, env,
# volume, port, labels, health check), its exact file list and size, the
# listening line, an upload through the official SDK stored with the same
# sha256, the health subcommand (0 against it, 1 against a closed port), a
# name from a mounted /etc/hosts, the process's uid, and a SIGTERM that exits
# 0 within a second.
#
#   tests/container/run.sh                          # build the static binary, then all of the above
#   AYMARA_MOCK_STATIC_BIN=PATH tests/container/run.sh   # use that static binary
#
# Needs root (chroot, unshare, nsenter), podman (apt-get install podman),
# iproute2, and the SDK's venv (tests/sdk/run.sh --setup-only, made if missing).
# Everything it makes is under target/container, removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

fail() { echo "container: $*" >&2; exit 1; }
say() { echo "container: $*" >&2; }

for tool in podman unshare nsenter chroot ip readelf python3; do
    command -v "$tool" >/dev/null || fail "needs $tool (podman: apt-get install podman)"
done
[[ "$(id -u)" == 0 ]] || fail "needs root: chroot, unshare and nsenter"

sdk_python="$root/tests/sdk/.venv/bin/python"
[[ -x "$sdk_python" ]] || tests/sdk/run.sh --setup-only

version="$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
image="localhost/aymara-mock:ci"
work="$root/target/container"
rm -rf "$work"
mkdir -p "$work"
# A podman of its own under target/: no system storage touched; vfs needs no
# overlay support from the sandbox.
pod() {
    podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs \
        --cgroup-manager cgroupfs --events-backend none "$@"
}
server=
cleanup() {
    [[ -n "$server" ]] && kill -KILL "$server" 2>/dev/null
    pod rm -af >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# 1. The static binary: no program interpreter, no shared library.
started=$SECONDS
bin="${AYMARA_MOCK_STATIC_BIN:-$(container/build-static.sh)}"
say "static binary $bin ($((SECONDS - started))s)"
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
    fail "$bin asks for a program interpreter: it is not statically linked"
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
    readelf -dW "$bin" | grep '(NEEDED)' >&2
    fail "$bin needs the shared libraries above"
fi

# 2. The image, from the Dockerfile's `prebuilt` stage.
context="$work/context"
mkdir -p "$context/data"
arch="$(uname -m)"
case "$arch" in
    x86_64) goarch=amd64 ;;
    aarch64) goarch=arm64 ;;
    *) fail "no image architecture for $arch" ;;
esac
cp "$bin" "$context/aymara-mock-$goarch"
# No VERSION given: the Dockerfile's default must be Cargo.toml's version (checked below).
# TARGETARCH: BuildKit and newer buildahs set it; podman 4.3 warns unless given.
pod build --quiet --format docker --target prebuilt --build-arg "TARGETARCH=$goarch" \
    -t "$image" -f Dockerfile "$context" >/dev/null
pod image inspect "$image" >"$work/image.json"
size="$(pod image inspect --format '{{.Size}}' "$image")"
say "image $image: $size bytes ($(( (size + 524287) / 1048576 )) MiB), binary $(stat -c %s "$bin") bytes"

# Its configuration: what docker, compose, Kubernetes and Testcontainers read.
python3 - "$work/image.json" "$version" "$goarch" <<'EOF'
import json, sys
image = json.load(open(sys.argv[1]))[0]
version, arch = sys.argv[2:4]
config = image["Config"]
env = dict(e.split("=", 1) for e in config.get("Env", []))
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, want {want!r}")
expect("user", config.get("User"), "65532:65532")
expect("entrypoint", config.get("Entrypoint"), ["/aymara-mock"])
expect("cmd", config.get("Cmd"), None)
expect("AYMARA_MOCK_HOST", env.get("AYMARA_MOCK_HOST"), "0.0.0.0")
expect("AYMARA_MOCK_PORT", env.get("AYMARA_MOCK_PORT"), "8000")
expect("TMPDIR", env.get("TMPDIR"), "/data")
expect("volumes", sorted(config.get("Volumes") or {}), ["/data"])
expect("exposed ports", sorted(config.get("ExposedPorts") or {}), ["8000/tcp"])
labels = config.get("Labels") or {}
expect("version label (the Dockerfile's ARG VERSION)", labels.get("org.opencontainers.image.version"), version)
expect("licence label", labels.get("org.opencontainers.image.licenses"), "MIT OR Apache-2.0")
if not labels.get("org.opencontainers.image.source", "").startswith("https://"):
    problems.append(f"source label: {labels.get('org.opencontainers.image.source')!r}")
health = config.get("Healthcheck") or image.get("Healthcheck") or {}
expect("health check", health.get("Test"), ["CMD", "/aymara-mock", "health"])
expect("architecture", image.get("Architecture"), arch)
if problems:
    sys.exit("container: the image's config:\n  " + "\n  ".join(problems))
EOF

# 3. Its root filesystem, and exactly what is in it.
pod create --no-healthcheck --name aymara-mock-rootfs "$image" >/dev/null
pod export -o "$work/rootfs.tar" aymara-mock-rootfs
pod rm aymara-mock-rootfs >/dev/null
listing="$(tar -tvf "$work/rootfs.tar" --numeric-owner | awk '{print $1, $2, $6}' | sed 's#/$##' | sort -k3)"
expected="$(printf '%s\n' \
    '-rwxr-xr-x 0/0 aymara-mock' \
    'drwxr-xr-x 65532/65532 data' | sort -k3)"
if [[ "$listing" != "$expected" ]]; then
    diff <(echo "$expected") <(echo "$listing") >&2 || true
    fail "the image's files are not exactly the binary and the volume's directory (diff: - expected, + found)"
fi
rootfs="$work/rootfs"
mkdir -p "$rootfs"
tar -xpf "$work/rootfs.tar" --numeric-owner -C "$rootfs"

# 4. The entrypoint, as the image runs it: its env only, its user, PID 1 of
#    its own namespaces, chrooted into the image's files (a file it needs and
#    the image lacks fails here: there is no libc, no /etc, no /proc, no /tmp).
mapfile -t image_env < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Config"]["Env"]))' "$work/image.json")
# A command of the image, the way the engine runs it: its env only, its user, its root.
in_image=(env -i "${image_env[@]}" chroot --userspec=65532:65532 "$rootfs")
unshare --net --pid --fork --kill-child \
    sh -c 'ip link set lo up && exec "$@"' sh "${in_image[@]}" /aymara-mock \
    >"$work/stdout" 2>"$work/stderr" &
server=$!
for _ in $(seq 200); do
    [[ -s "$work/stdout" ]] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/stderr" >&2; fail "the entrypoint exited before listening"; }
    sleep 0.05
done
line="$(head -n1 "$work/stdout")"
[[ "$line" == "aymara-mock listening on http://0.0.0.0:8000" ]] \
    || { cat "$work/stderr" >&2; fail "first stdout line: '$line'"; }
# The server is the one child of unshare, PID 1 of its namespace.
pid="$(cat "/proc/$server/task/$server/children")"
pid="${pid%% *}"
status="$(cat "/proc/$pid/status")"
grep -qP '^Uid:\t65532\t65532\t65532\t65532$' <<<"$status" || fail "the server's uids: $(grep ^Uid <<<"$status")"
grep -qP '^Gid:\t65532\t65532\t65532\t65532$' <<<"$status" || fail "the server's gids: $(grep ^Gid <<<"$status")"
grep -qP '^NSpid:\t\d+\t1$' <<<"$status" || fail "the server is not PID 1 of its namespace: $(grep ^NSpid <<<"$status")"
say "listening as uid 65532, PID 1 of its namespace: $line"
in_net() { nsenter --net="/proc/$pid/ns/net" "$@"; }

# An upload through the official SDK, stored with the bytes sent.
in_net "$sdk_python" - "$rootfs" <<'EOF'
import hashlib, os, sys
import httpx
from aymara_ai import AymaraAI
rootfs = sys.argv[1]
data = os.urandom(300_000) + b"end"
client = AymaraAI(api_key="k", base_url="http://127.0.0.1:8000")
upload = client.files.upload(file=("clip.mp4", data, "video/mp4"))
assert upload.processing_status == "completed", upload
stored = upload.local_file_path
assert stored.startswith("/data/"), stored  # in the volume
with open(rootfs + stored, "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(data).hexdigest()
uploads = httpx.get("http://127.0.0.1:8000/__admin/uploads").json()["uploads"]
assert [u["sha256"] for u in uploads] == [hashlib.sha256(data).hexdigest()], uploads
print(f"container: SDK upload stored at {stored}, sha256 equal", file=sys.stderr)
EOF

# The health check as the engine runs it (the image's Healthcheck command, in
# the container's namespaces and environment): 0, then 1 against a closed port.
if ! out="$(in_net "${in_image[@]}" /aymara-mock health 2>&1)"; then
    fail "health against the server failed: $out"
fi
say "health: $out"
code=0
out="$(in_net "${in_image[@]}" /aymara-mock health http://127.0.0.1:9 2>&1)" || code=$?
[[ "$code" == 1 ]] || fail "health against a closed port exited $code: $out"
say "health against a closed port: exit 1 ($out)"

# Names resolve through the /etc/hosts an engine mounts into every container:
# glibc's built-in `files` lookup, in a static binary, loads no NSS module.
mkdir "$rootfs/etc"
printf '127.0.0.1 localhost\n127.0.0.1 aymara-mock-service\n' >"$rootfs/etc/hosts"
out="$(in_net "${in_image[@]}" /aymara-mock health http://aymara-mock-service:8000 2>&1)" \
    || fail "health by a name in /etc/hosts: $out"
rm -r "${rootfs:?}/etc"
say "a name from a mounted /etc/hosts resolves: $out"

# SIGTERM: exit 0 within a second, the upload's temp dir removed from the volume.
stop_started="$(date +%s%N)"
kill -TERM "$pid"
code=0
wait "$server" || code=$?
server=
elapsed_ms=$(( ($(date +%s%N) - stop_started) / 1000000 ))
[[ "$code" == 0 ]] || { cat "$work/stderr" >&2; fail "SIGTERM: exit code $code"; }
(( elapsed_ms < 1000 )) || fail "SIGTERM: exited after $elapsed_ms ms"
[[ "$(wc -l <"$work/stdout")" == 1 ]] || fail "stdout has more than the listening line: $(cat "$work/stdout")"
leftover="$(find "$rootfs/data" -mindepth 1)"
[[ -z "$leftover" ]] || fail "left in the volume after stop: $leftover"
say "SIGTERM: exit 0 after $elapsed_ms ms, volume left empty"
say "all checks passed"
