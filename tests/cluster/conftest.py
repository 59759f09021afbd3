"""Fixtures for the cluster suite: several aymara-mock replicas sharing one Redis
(`--state redis://HOST:PORT/DB --state-prefix NAME --replica-id NAME`) and one S3 bucket (moto in
server mode, `--storage s3://BUCKET/PREFIX --s3-endpoint URL`, as in tests/s3).

Only public surfaces are used: the emulator's CLI (flags, its one stdout line, its exit code and
stderr, SIGTERM), its HTTP and admin API; redis-server's command line and a raw `PING` on its
socket; moto's S3 API through boto3.

One redis-server and one moto serve a whole session (of one xdist worker); each test gets a fresh
`--state-prefix` (so tests sharing the redis-server never see each other's rules or journal) and a
fresh bucket. A test that stops Redis starts its own (`own_redis`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import boto3
import httpx
import pytest
from s3server import AWS_ENV, LoopbackServer, Moto, empty_bucket, free_port, moto, poll
from s3server import aws_child_env as _child_env
from sidecar import Sidecar, mock_bin

UPLOAD_PATH = "/v2/files/-/uploads"
API_KEY = "test-key"
STORAGE_PREFIX = "aymara"
RUN_SCRIPT = "tests/cluster/run.sh"


# -- Redis -----------------------------------------------------------------------------------


def redis_server_bin() -> str:
    """redis-server: $REDIS_SERVER, else the one on PATH (Debian: /usr/bin/redis-server)."""
    path = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    for candidate in (path, "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "redis-server not found: run tests/cluster/run.sh as root (it installs Debian's "
        "redis-server), `apt-get install redis-server`, or set REDIS_SERVER=/path/to/redis-server",
        pytrace=False,
    )


def redis_call(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Sends one command (a RESP array of bulk strings) to 127.0.0.1:port and returns its answer
    as sent, for the simple replies the harness reads: `+PONG`, `-LOADING ...` (while an
    append-only file is replayed), `:1`, or a bulk string's bytes (`b""` for a nil one)."""
    request = f"*{len(args)}\r\n".encode()
    for arg in args:
        raw = arg.encode()
        request += b"$%d\r\n%s\r\n" % (len(raw), raw)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n")
            if sep and not head.startswith(b"$"):
                return head
            if sep:
                size = int(head[1:])
                if size < 0:
                    return b""
                if len(rest) >= size + 2:
                    return rest[:size]
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError(f"redis on port {port} closed the connection; got {data!r}")
            data += chunk


def redis_ping(port: int, timeout: float = 1.0) -> bytes:
    """`+PONG` when the server on 127.0.0.1:port is ready."""
    return redis_call(port, "PING", timeout=timeout)


class Redis(LoopbackServer):
    """A redis-server (see `LoopbackServer`).

    `persist=False` (the session's): nothing written to disk (`--save '' --appendonly no`), so a
    restart starts empty. `persist=True`: an append-only file fsynced on every write in this
    object's directory, so even a SIGKILL loses nothing and a restart on the same port brings the
    same data back (a Redis that goes away and comes back, as a managed one does).
    """

    what = "redis-server"

    def __init__(self, work_dir: Path, name: str = "redis", *, persist: bool = False) -> None:
        self.dir = work_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        super().__init__(work_dir, name, cwd=self.dir)
        self.persist = persist

    def url(self, db: int = 0) -> str:
        """The `--state` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def argv(self, port: int) -> list[str]:
        argv = [
            redis_server_bin(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", "",  # to stdout, that is self.log_path
        ]  # fmt: skip
        if self.persist:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def ready(self) -> bool:
        assert self.port is not None
        return redis_ping(self.port) == b"+PONG"


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """One redis-server for the session (of this xdist worker), in memory only; tests keep apart
    by their own `--state-prefix`."""
    server = Redis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A redis-server for this test only, persisting to an fsynced append-only file: the test may
    kill it and restart it on the same port with its data."""
    server = Redis(tmp_path, name="own-redis", persist=True)
    server.start()
    yield server
    server.close()


class TlsRedis(Redis):
    """A redis-server that speaks only TLS (`rediss://localhost:PORT`), with a certificate for
    `localhost` signed by `ca` (see `make_tls_certs`)."""

    def __init__(self, work_dir: Path, certs: dict[str, Path]) -> None:
        super().__init__(work_dir, name="redis-tls")
        self.certs = certs

    def url(self, db: int = 0) -> str:
        return f"rediss://localhost:{self.port}/{db}"

    def argv(self, port: int) -> list[str]:
        argv = super().argv(port)
        argv[argv.index("--port") + 1] = "0"  # no plain port
        return argv + [
            "--tls-port", str(port),
            "--tls-cert-file", str(self.certs["cert"]),
            "--tls-key-file", str(self.certs["key"]),
            "--tls-ca-cert-file", str(self.certs["ca"]),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        assert self.port is not None
        context = ssl.create_default_context(cafile=str(self.certs["ca"]))
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith(b"+PONG")


def make_tls_certs(out: Path) -> dict[str, Path]:
    """A CA and a certificate for `localhost` (and 127.0.0.1) it signed, as PEM files in `out`:
    `ca`, `cert`, `key`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("aymara-mock test CA")).issuer_name(name("aymara-mock test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {"ca": out / "ca.pem", "cert": out / "server.pem", "key": out / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- the bucket ------------------------------------------------------------------------------


@pytest.fixture
def bucket(moto: Moto) -> Iterator[str]:
    """A fresh bucket on the session moto, emptied and deleted afterwards."""
    s3 = moto.client()
    name = f"aymara-cluster-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3, name)


# -- the replicas ----------------------------------------------------------------------------


class Replica(Sidecar):
    """One aymara-mock process of a cluster: `--replica-id` `replica_id`."""

    def __init__(self, argv: list[str], stderr_path: Path, env: dict[str, str], replica_id: str) -> None:
        super().__init__(argv, stderr_path, env)
        self.replica_id = replica_id
        self.http = httpx.Client(
            base_url=self.url,
            timeout=60.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    def __repr__(self) -> str:
        return f"Replica({self.replica_id} at {self.url})"

    def close_clients(self) -> None:
        self.http.close()

    # -- API ----------------------------------------------------------------------------------

    def upload(
        self, data: bytes = b"hello", filename: str = "file.txt", request_id: str | None = None
    ) -> httpx.Response:
        """A multipart POST of `data` to the upload endpoint, with `x-request-id` when given
        (the journal entry's `id`)."""
        headers = {"x-api-key": API_KEY}
        if request_id is not None:
            headers["x-request-id"] = request_id
        return self.http.post(
            UPLOAD_PATH, headers=headers, files={"file": (filename, data, "text/plain")}
        )

    def health(self) -> httpx.Response:
        return self.http.get("/health")

    # -- admin API ----------------------------------------------------------------------------

    def add_rules(self, rules: list[dict[str, Any]]) -> list[str]:
        r = self.http.post("/__admin/rules", json={"rules": rules})
        assert r.status_code == 201, f"{self!r}: POST /__admin/rules: {r.status_code} {r.text}"
        return r.json()["ids"]

    def rules(self) -> list[dict[str, Any]]:
        r = self.http.get("/__admin/rules")
        assert r.status_code == 200, f"{self!r}: GET /__admin/rules: {r.status_code} {r.text}"
        return r.json()["rules"]

    def rule(self, rule_id: str) -> dict[str, Any]:
        """The rule `rule_id` as GET /__admin/rules lists it (with `matched` and `fired`)."""
        found = [r for r in self.rules() if r["id"] == rule_id]
        assert len(found) == 1, f"{self!r}: rule {rule_id!r} listed {len(found)} times: {self.rules()}"
        return found[0]

    def delete_rule(self, rule_id: str) -> None:
        r = self.http.delete(f"/__admin/rules/{rule_id}")
        assert r.status_code in (200, 204), f"{self!r}: DELETE rule {rule_id}: {r.status_code} {r.text}"

    def reset(self) -> None:
        r = self.http.post("/__admin/reset")
        assert r.status_code == 200, f"{self!r}: POST /__admin/reset: {r.status_code} {r.text}"

    def journal(self) -> list[dict[str, Any]]:
        """Every journal entry GET /__admin/requests lists, oldest first.

        The list is not paged today (docs/reference.md, "Admin API": `?after=SEQ` only narrows
        it); should a cluster-wide journal page, the rest is asked for with `?after=` the
        largest `seq` seen until a page brings nothing new (entries kept once by `id`)."""
        r = self.http.get("/__admin/requests")
        assert r.status_code == 200, f"{self!r}: GET /__admin/requests: {r.status_code} {r.text}"
        entries: list[dict[str, Any]] = r.json()["requests"]
        seen = {e["id"] for e in entries}
        while entries and isinstance(entries[-1].get("seq"), int):
            after = max(e["seq"] for e in entries if isinstance(e.get("seq"), int))
            r = self.http.get("/__admin/requests", params={"after": after})
            assert r.status_code == 200, f"{self!r}: GET /__admin/requests?after={after}: {r.text}"
            fresh = [e for e in r.json()["requests"] if e["id"] not in seen]
            if not fresh:
                break
            entries += fresh
            seen.update(e["id"] for e in fresh)
        return entries

    def upload_journal(self) -> list[dict[str, Any]]:
        """The journal's entries for the upload endpoint."""
        return [e for e in self.journal() if e["path"] == UPLOAD_PATH]


def replica_argv(
    redis_url: str,
    state_prefix: str,
    replica_id: str,
    endpoint: str,
    bucket: str,
    args: Iterable[str] = (),
) -> list[str]:
    return [
        str(mock_bin(RUN_SCRIPT)),
        "--port", "0",
        "--storage", f"s3://{bucket}/{STORAGE_PREFIX}",
        "--s3-endpoint", endpoint,
        "--api-key", API_KEY,
        "--state", redis_url,
        "--state-prefix", state_prefix,
        "--replica-id", replica_id,
        *args,
    ]  # fmt: skip


@dataclass
class Cluster:
    """Replicas sharing one Redis (`state_url`, `state_prefix`) and one bucket."""

    replicas: list[Replica]
    state_url: str
    state_prefix: str
    bucket: str

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas)

    def __getitem__(self, i: int) -> Replica:
        return self.replicas[i]

    def __len__(self) -> int:
        return len(self.replicas)

    def spread_uploads(
        self, n: int, *, concurrency: int = 1, tag: str | None = None, start: int = 0
    ) -> list[tuple[Replica, str, httpx.Response]]:
        """`n` small uploads, round-robin over the replicas (upload i to replica (start+i) % len),
        `concurrency` at a time; returns (replica, x-request-id, response) in the order sent.

        A transport error fails the test: a replica must answer every request."""
        tag = tag or uuid.uuid4().hex[:8]

        def one(i: int) -> tuple[Replica, str, httpx.Response]:
            replica = self.replicas[(start + i) % len(self.replicas)]
            request_id = f"cluster-{tag}-{i}"
            try:
                r = replica.upload(f"upload {tag} {i}\n".encode(), f"u{i}.txt", request_id)
            except httpx.TransportError as exc:
                pytest.fail(f"{replica!r}: upload {i} got no answer: {exc!r}\nstderr:\n{replica.stderr()}")
            return replica, request_id, r

        if concurrency <= 1:
            return [one(i) for i in range(n)]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, range(n)))


@pytest.fixture
def start_replica(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """Factory: start_replica(redis_url, state_prefix, replica_id, endpoint, bucket, args=[...]).

    Each replica runs with its own TMPDIR under the test's tmp_path. Every replica started is
    stopped with SIGTERM at teardown and must exit 0, never having panicked, having printed
    nothing to stdout beyond its ready line.
    """
    replicas: list[Replica] = []

    def start(
        redis_url: str,
        state_prefix: str,
        replica_id: str,
        endpoint: str,
        bucket: str,
        *,
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
    ) -> Replica:
        # Numbered: two replicas may be given the same id.
        own_tmp = tmp_path / f"replica-{len(replicas)}-{replica_id}"
        own_tmp.mkdir(exist_ok=True)
        argv = replica_argv(redis_url, state_prefix, replica_id, endpoint, bucket, args)
        env = _child_env({**AWS_ENV, "TMPDIR": str(own_tmp), **(env or {})})
        replica = Replica(argv, own_tmp.with_suffix(".stderr"), env, replica_id)
        replicas.append(replica)
        return replica

    yield start

    problems = []
    for replica in replicas:
        if replica.returncode is not None:
            continue  # stopped by the test, which checked what it wanted
        was_alive = replica.alive()
        rc = replica.stop()
        stderr = replica.stderr()
        if not was_alive:
            problems.append(f"{replica!r} had exited ({rc}) before teardown; stderr:\n{stderr}")
        elif rc != 0:
            problems.append(f"{replica!r}: exit code {rc} after SIGTERM; stderr:\n{stderr}")
        elif "panicked" in stderr:
            problems.append(f"{replica!r} panicked; stderr:\n{stderr}")
        elif replica.extra_stdout:
            problems.append(f"{replica!r}: stdout beyond the ready line: {replica.extra_stdout!r}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def make_cluster(
    start_replica: Callable[..., Replica],
    redis: Redis,
    moto: Moto,
    bucket: str,
    ids: Iterable[str] = ("a", "b", "c"),
) -> Cluster:
    """Replicas named `ids` on `redis` under a fresh `--state-prefix`, storing in `bucket`."""
    prefix = f"aymara-test-{uuid.uuid4().hex}"
    replicas = [
        start_replica(redis.url(), prefix, f"{rid}-{prefix[-6:]}", moto.endpoint, bucket) for rid in ids
    ]
    return Cluster(replicas, redis.url(), prefix, bucket)


@pytest.fixture
def cluster(start_replica: Callable[..., Replica], redis: Redis, moto: Moto, bucket: str) -> Cluster:
    """Three replicas A, B, C on the session redis-server (a fresh `--state-prefix`) and a fresh
    bucket of the session moto."""
    return make_cluster(start_replica, redis, moto, bucket)

