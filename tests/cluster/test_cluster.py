"""Replicas sharing one Redis (`--state redis://...`): run-time rules, their counters and the
journal are the cluster's, not a replica's. Three replicas A, B, C share one redis-server and one
moto bucket; requests go round-robin over them."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    API_KEY,
    AWS_ENV,
    Cluster,
    Moto,
    Redis,
    Replica,
    TlsRedis,
    _child_env,
    free_port,
    make_cluster,
    make_tls_certs,
    poll,
    redis_call,
    redis_ping,
    replica_argv,
)


def scrape(replica: Replica) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics parsed by the Prometheus project's parser: {(sample, sorted labels): value}."""
    r = replica.http.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def statuses(sent: list[tuple[Replica, str, httpx.Response]]) -> Counter[int]:
    return Counter(r.status_code for _, _, r in sent)


def error_code(r: httpx.Response) -> str | None:
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def stderrs(cluster: Cluster) -> str:
    return "\n".join(f"--- {rep!r} stderr:\n{rep.stderr(2000)}" for rep in cluster)


# -- 1. when.times is exact over the cluster -------------------------------------------------


def test_times_1_fires_once_over_300_concurrent_uploads(cluster: Cluster) -> None:
    a, b, c = cluster
    assert a.add_rules([{"id": "once", "when": {"times": 1}, "respond": {"status": 503}}]) == ["once"]

    sent = cluster.spread_uploads(300, concurrency=32)

    assert statuses(sent) == {200: 299, 503: 1}, f"{statuses(sent)}\n{stderrs(cluster)}"
    ((_, refused_id, refused),) = [s for s in sent if s[2].status_code == 503]
    assert error_code(refused) == "server.unavailable", refused.text
    for replica in cluster:
        rule = replica.rule("once")
        assert (rule["matched"], rule["fired"]) == (300, 1), f"{replica!r}: {rule}"
    decided = {e["id"]: e["rule"] for e in b.upload_journal()}
    assert decided[refused_id] == "once", decided[refused_id]
    assert [rid for rid, rule in decided.items() if rule is not None] == [refused_id]

    # /metrics, parsed as Prometheus parses it: the rule's counters and the journal are the
    # cluster's on every replica; the requests each replica counts add up to what was sent.
    uploads_counted = 0.0
    for replica in cluster:
        samples = scrape(replica)
        assert samples[("aymara_mock_rule_fired_total", (("rule", "once"),))] == 1
        assert samples[("aymara_mock_rule_matched_total", (("rule", "once"),))] == 300
        assert samples[("aymara_mock_journal_entries", ())] == 300
        assert samples[("aymara_mock_state_store_errors_total", ())] == 0
        uploads_counted += sum(
            v for (name, labels), v in samples.items()
            if name == "aymara_mock_requests_total" and ("route", "upload") in labels
        )  # fmt: skip
    assert uploads_counted == 300


# -- 2. a rule change is seen by the next request on every replica ---------------------------


def test_a_rule_posted_to_one_replica_decides_the_next_request_on_another(cluster: Cluster) -> None:
    a, b, c = cluster
    r = c.upload(request_id="before-any-rule")
    assert r.status_code == 200, r.text

    # Every ordered pair, three times: no sleep or poll between posting and using.
    pairs = [(a, c), (b, a), (c, b), (a, b), (b, c), (c, a)] * 3
    for n, (poster, other) in enumerate(pairs):
        rule_id = f"next-{n}"
        message = f"decided by {rule_id}"
        rule = {"id": rule_id, "when": {"times": 1}, "respond": {"status": 429, "message": message}}
        poster.add_rules([rule])
        r = other.upload(request_id=f"after-{rule_id}")
        assert r.status_code == 429, (
            f"rule posted to {poster!r}, the next upload on {other!r}: {r.status_code} {r.text}"
        )
        assert r.json()["error"]["message"] == message, r.text

    r = c.upload(request_id="all-spent")
    assert r.status_code == 200, r.text
    for replica in cluster:
        fired = {rule["id"]: rule["fired"] for rule in replica.rules() if rule["id"].startswith("next-")}
        assert fired == {f"next-{n}": 1 for n in range(len(pairs))}, f"{replica!r}: {fired}"


# -- 3. one journal for the cluster ----------------------------------------------------------


def test_every_replica_lists_every_replicas_requests(cluster: Cluster) -> None:
    a, b, c = cluster
    sent = cluster.spread_uploads(300, concurrency=32)
    assert statuses(sent) == {200: 300}, f"{statuses(sent)}\n{stderrs(cluster)}"
    served_by = {request_id: replica.replica_id for replica, request_id, _ in sent}

    for replica in cluster:
        entries = replica.upload_journal()
        ids = [e["id"] for e in entries]
        assert len(ids) == len(set(ids)), f"{replica!r}: duplicate journal entries"
        assert set(ids) == set(served_by), (
            f"{replica!r} lists {len(ids)} uploads; missing {len(set(served_by) - set(ids))}, "
            f"unknown {sorted(set(ids) - set(served_by))[:5]}"
        )
        wrong = {e["id"]: e.get("replica") for e in entries if e.get("replica") != served_by[e["id"]]}
        assert not wrong, f"{replica!r}: entries naming the wrong replica (first 5): {list(wrong.items())[:5]}"
        assert all(e["status"] == 200 and e["upload"] is not None for e in entries)

    b.reset()
    for replica in (a, c, b):
        assert replica.journal() == [], f"{replica!r} after POST /__admin/reset on B"

    # DELETE /__admin/requests clears it for all too.
    assert statuses(cluster.spread_uploads(6)) == {200: 6}
    assert len(a.upload_journal()) == 6
    r = c.http.delete("/__admin/requests")
    assert r.status_code == 200, r.text
    for replica in cluster:
        assert replica.journal() == [], f"{replica!r} after DELETE /__admin/requests on C"


# -- 4. a rule removed through one replica is gone on all ------------------------------------


def test_a_rule_deleted_through_one_replica_no_longer_applies_on_another(cluster: Cluster) -> None:
    a, b, c = cluster
    for n in range(5):
        rule_id = f"gone-{n}"
        c.add_rules([{"id": rule_id, "respond": {"status": 409}}])
        r = a.upload(request_id=f"{rule_id}-applies")
        assert r.status_code == 409, r.text
        b.delete_rule(rule_id)
        r = a.upload(request_id=f"{rule_id}-deleted")
        assert r.status_code == 200, f"after DELETE /__admin/rules/{rule_id} on B: {r.status_code} {r.text}"
        for replica in cluster:
            assert rule_id not in [rule["id"] for rule in replica.rules()], repr(replica)

    # DELETE /__admin/rules (all of them) through B.
    c.add_rules([{"id": "all-gone", "respond": {"status": 409}}])
    r = a.upload()
    assert r.status_code == 409, r.text
    r = b.http.delete("/__admin/rules")
    assert r.status_code == 200, r.text
    r = a.upload()
    assert r.status_code == 200, f"after DELETE /__admin/rules on B: {r.status_code} {r.text}"
    for replica in cluster:
        assert [rule for rule in replica.rules() if rule["source"] == "admin"] == [], repr(replica)


# -- 5. one files API for the cluster -------------------------------------------------------


KEY = {"x-api-key": API_KEY}


def files_listed(replica: Replica) -> dict[str, dict[str, Any]]:
    """GET /v2/files on `replica`, every page: file_uuid -> item."""
    items: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        r = replica.http.get("/v2/files", params={"limit": 100, "offset": offset}, headers=KEY)
        assert r.status_code == 200, r.text
        page = r.json()
        items.update({item["file_uuid"]: item for item in page["items"]})
        offset += len(page["items"])
        if not page["items"] or offset >= page["count"]:
            return items


def test_every_replica_lists_finds_and_deletes_every_replicas_files(cluster: Cluster) -> None:
    a, b, c = cluster
    # Multipart uploads through A and B, an announced file (POST /v2/files) through A, its bytes
    # PUT through B (to the presigned URL, signed by A).
    uploaded = {}
    for replica in (a, b):
        r = replica.upload()
        assert r.status_code == 200, r.text
        uploaded[r.json()["file_uuid"]] = replica
    r = a.http.post("/v2/files", json={"files": [{"local_file_path": "notes.txt"}]}, headers=KEY)
    assert r.status_code == 200, r.text
    announced = r.json()["files"][0]
    presigned = httpx.URL(announced["file_url"])
    on_b = presigned.copy_with(scheme="http", host="127.0.0.1", port=httpx.URL(b.url).port)
    assert c.http.get(f"/v2/files/{announced['file_uuid']}/status", headers=KEY).json()["processing_status"] == "pending"
    r = httpx.put(str(on_b), content=b"put through B", headers={"content-type": "text/plain"})
    assert r.status_code == 200, r.text

    listed = files_listed(c)
    assert set(listed) == set(uploaded) | {announced["file_uuid"]}, listed
    status = c.http.get(f"/v2/files/{announced['file_uuid']}/status", headers=KEY).json()
    assert status["processing_status"] == "completed", status
    # Every replica serves every file's bytes (the bucket is shared, the index too).
    r = a.http.get(f"/__files/{announced['file_uuid']}/notes.txt")
    assert (r.status_code, r.content) == (200, b"put through B")
    for replica in cluster:
        assert {u["file_uuid"] for u in replica.http.get("/__admin/uploads").json()["uploads"]} == set(listed)

    # A delete through C is seen by A and B at once.
    gone = next(iter(uploaded))
    assert c.http.delete(f"/v2/files/{gone}", headers=KEY).status_code == 204
    for replica in (a, b):
        assert replica.http.get(f"/v2/files/{gone}", headers=KEY).status_code == 404, repr(replica)
        assert gone not in files_listed(replica), repr(replica)
    # DELETE /__admin/uploads through B empties every replica's list.
    assert b.http.delete("/__admin/uploads").status_code == 200
    for replica in cluster:
        assert files_listed(replica) == {}, repr(replica)


def test_replicas_given_the_same_id_by_mistake_still_share_the_files(
    start_replica: Callable[..., Replica], redis: Redis, moto: Moto, bucket: str
) -> None:
    """A replica skips its own changes to the files when it reads them back: by a token of its
    process, not by its --replica-id, which a shared environment block may give every replica."""
    a, b = make_cluster(start_replica, redis, moto, bucket, ids=("same", "same"))
    assert a.replica_id == b.replica_id
    r = a.upload()
    assert r.status_code == 200, r.text
    assert r.json()["file_uuid"] in files_listed(b)


def test_the_sdk_uploads_through_one_replica_and_reads_the_status_through_another(
    cluster: Cluster,
) -> None:
    from aymara_ai import AymaraAI
    from aymara_ai.lib.uploads import upload_file

    a, b, c = cluster
    data = b"frame" * 10_000
    with AymaraAI(api_key=API_KEY, base_url=a.url, max_retries=0) as client:
        ref = upload_file(client, file_name="clip.mp4", file_content=data)
    # The helper answers a FileReference: the key, .../uploads/<workspace>/<file_uuid>/<name>.
    file_uuid = ref["remote_file_path"].split("/")[-2]
    with AymaraAI(api_key=API_KEY, base_url=b.url, max_retries=0) as client:
        status = client.files.get_status(file_uuid)
        assert status.file_uuid == file_uuid
        assert status.processing_status in ("pending", "processing", "completed")
        listed = client.files.list(limit=100)
        assert file_uuid in [f.file_uuid for f in listed.items]
    r = c.http.get(f"/__files/{file_uuid}/clip.mp4")
    assert (r.status_code, r.content) == (200, data)


# -- 6. Redis goes away and comes back -------------------------------------------------------


def test_redis_down_then_back(
    start_replica: Callable[..., Replica], own_redis: Redis, moto: Moto, bucket: str
) -> None:
    cluster = make_cluster(start_replica, own_redis, moto, bucket)
    a, b, c = cluster
    port = own_redis.port
    a.add_rules([{"id": "five", "when": {"times": 5}, "respond": {"status": 429}}])
    answered: list[tuple[Replica, str, httpx.Response]] = []  # every answer but the outage's

    before = cluster.spread_uploads(2, tag="before")
    assert statuses(before) == {429: 2}, [r.text for _, _, r in before]
    answered += before
    for replica in cluster:
        assert replica.rule("five")["fired"] == 2, repr(replica)
    poll(
        lambda: len(c.upload_journal()) == 2,
        timeout=10,
        what="the two uploads before the outage in the journal",
    )

    own_redis.kill()  # SIGKILL: the append-only file keeps what was written
    down = cluster.spread_uploads(6, tag="down")
    for replica, _, r in down:
        assert r.status_code == 503, f"{replica!r} with Redis down: {r.status_code} {r.text}"
        assert error_code(r) == "server.unavailable", r.text
        message = r.json()["error"]["message"].lower()
        assert "redis" in message or "state" in message, f"the message names no state store: {r.text}"
        assert r.json()["request_id"] == r.headers["x-request-id"], r.text
    for replica in cluster:
        health = replica.health()
        assert health.status_code == 200, f"{replica!r}: {health.status_code} {health.text}"
        body = health.json()
        assert body.get("status") == "degraded", f"{replica!r}: {body}"
        assert isinstance(body.get("reason"), str) and body["reason"], f"{replica!r}: no reason: {body}"
        assert replica.alive(), f"{replica!r} exited with Redis down; stderr:\n{replica.stderr()}"
        errors = scrape(replica)[("aymara_mock_state_store_errors_total", ())]
        assert errors >= 1, f"{replica!r}: /metrics counts no state-store error with Redis down"
        assert "panicked" not in replica.stderr(100_000), replica.stderr()

    own_redis.start(port)  # same port; the replicas are told nothing
    outage_503s = len(down)
    for replica in cluster:

        def resumed(replica: Replica = replica) -> bool:
            nonlocal outage_503s
            r = replica.upload(request_id=f"resume-{uuid.uuid4().hex[:8]}")
            if r.status_code == 503 and error_code(r) == "server.unavailable":
                outage_503s += 1
                return False
            answered.append((replica, r.headers["x-request-id"], r))
            return True

        poll(resumed, timeout=30, interval=0.2, what=f"{replica!r} to serve again after Redis came back")
        poll(
            lambda replica=replica: replica.health().json().get("status") == "ok",
            timeout=30,
            interval=0.2,
            what=f"{replica!r}: /health ok again",
        )

    after = cluster.spread_uploads(20, concurrency=4, tag="after")
    answered += after
    assert set(statuses(after)) <= {200, 429}, [r.text for _, _, r in after if r.status_code not in (200, 429)]
    assert all(r.status_code in (200, 429) for _, _, r in answered), [r.text for _, _, r in answered]

    refused = [request_id for _, request_id, r in answered if r.status_code == 429]
    assert len(refused) == 5, f"{len(refused)} uploads answered by the times-5 rule\n{stderrs(cluster)}"
    for replica in cluster:
        rule = replica.rule("five")
        assert rule["fired"] == 5, f"{replica!r}: {rule}"
        assert rule["matched"] == len(answered), (
            f"{replica!r}: matched {rule['matched']}, but {len(answered)} uploads were answered "
            f"outside the outage ({outage_503s} outage 503s): {rule}"
        )
    decided = [e["id"] for e in b.upload_journal() if e["rule"] == "five"]
    assert sorted(decided) == sorted(refused)
    for replica in cluster:
        assert replica.alive() and "panicked" not in replica.stderr(100_000), replica.stderr()


# -- 7. rediss:// --------------------------------------------------------------------------


def test_rediss_with_the_ca_and_refused_without(
    tmp_path: Path, start_replica: Callable[..., Replica], moto: Moto, bucket: str
) -> None:
    """A Redis that speaks only TLS: replicas given its CA (SSL_CERT_FILE, as rustls-native-certs
    reads it) share through it; one without the CA does not start (exit 2, the URL and the
    certificate named)."""
    certs = make_tls_certs(tmp_path)
    server = TlsRedis(tmp_path, certs)
    server.start()
    try:
        prefix = f"aymara-test-{uuid.uuid4().hex}"
        ca = {"SSL_CERT_FILE": str(certs["ca"])}
        a = start_replica(server.url(), prefix, "tls-a", moto.endpoint, bucket, env=ca)
        b = start_replica(server.url(), prefix, "tls-b", moto.endpoint, bucket, env=ca)
        a.add_rules([{"id": "tls-once", "when": {"times": 1}, "respond": {"status": 503}}])
        assert b.upload().status_code == 503
        assert a.upload().status_code == 200
        assert [e["replica"] for e in a.upload_journal()] == ["tls-b", "tls-a"]

        argv = replica_argv(server.url(), prefix, "no-ca", moto.endpoint, bucket)
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, env=_child_env(AWS_ENV), stdin=subprocess.DEVNULL
        )
        assert proc.returncode == 2, proc.stderr
        assert server.url() in proc.stderr and "certificate" in proc.stderr, proc.stderr
    finally:
        server.close()


# -- 8. no Redis at start --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unreachable_redis_at_start_exits_2(moto: Moto, bucket: str, how: str) -> None:
    port = free_port()  # bound, then closed: nobody listens there
    url = f"redis://127.0.0.1:{port}/0"
    argv = replica_argv(url, f"aymara-test-{uuid.uuid4().hex}", "lonely", moto.endpoint, bucket)
    env = _child_env(AWS_ENV)
    if how == "env":
        i = argv.index("--state")
        del argv[i : i + 2]
        env["AYMARA_MOCK_STATE"] = url

    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0

    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    assert url.removesuffix("/0") in proc.stderr, f"stderr does not name {url}:\n{proc.stderr}"
    assert proc.stdout == "", f"printed on stdout: {proc.stdout!r}"
    assert "panicked" not in proc.stderr, proc.stderr
    print(f"exit 2 after {elapsed:.2f}s; stderr: {proc.stderr.strip()[-300:]}")


# -- the harness itself ----------------------------------------------------------------------


def test_harness_redis_keeps_its_data_across_a_kill(tmp_path: Path) -> None:
    """The fixture `own_redis` relies on: a persisting Redis killed with SIGKILL and started on
    the same port answers again, with what it held."""
    server = Redis(tmp_path, name="harness", persist=True)
    server.start()
    try:
        port = server.port
        assert port is not None and redis_ping(port) == b"+PONG"
        assert redis_call(port, "SET", "harness-key", "kept") == b"+OK"
        server.kill()
        with pytest.raises(OSError):
            redis_ping(port)
        server.start(port)
        assert server.port == port and redis_ping(port) == b"+PONG"
        assert redis_call(port, "GET", "harness-key") == b"kept"
        server.stop()
        assert not server.running()
    finally:
        server.close()
