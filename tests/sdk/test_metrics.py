"""`GET /metrics` as Prometheus reads it: the text is parsed with the Prometheus project's own
Python parser, and every value is checked against the traffic this test sent (through the
official SDK and plain HTTP)."""

from __future__ import annotations

import httpx
import pytest
from aymara_ai import APIConnectionError, InternalServerError
from prometheus_client.parser import text_string_to_metric_families
from sidecar import mock_bin

from conftest import API_KEY, UPLOAD_PATH

RULES = [
    # The first two uploads fail with a 503 (the SDK's retries are switched off below).
    {"id": "fail-twice", "when": {"times": 2}, "match": {"route": "upload"}, "respond": {"status": 503}},
    # An upload that carries this header is reset before any answer.
    {"id": "cut", "match": {"headers": {"x-cut": "yes"}}, "fault": {"kind": "reset"}},
    # Never matches.
    {"id": "idle", "match": {"headers": {"x-never": "sent"}}, "respond": {"status": 500}},
]
CONTENTS = [b"first", b"second one", b"the third, longest of them"]


def scrape(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics parsed: {(sample name, sorted labels): value}."""
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_the_traffic_sent(start_mock, sdk):
    server = start_mock(RULES)
    client = sdk(server, max_retries=0)

    for content in CONTENTS[:2]:
        with pytest.raises(InternalServerError):
            client.upload(file=("x.txt", b"refused", "text/plain"))
    stored = [client.upload(file=(f"f{i}.txt", c, "text/plain")) for i, c in enumerate(CONTENTS)]
    with pytest.raises(APIConnectionError):
        client.upload(file=("cut.txt", b"cut", "text/plain"), extra_headers={"x-cut": "yes"})
    for _ in range(3):
        assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/no-such-route").status_code == 404
    # A made-up method is counted as `other`: a client cannot grow the label set.
    assert httpx.request("BREW", f"{server.url}/health").status_code == 405

    # The journal: 6 uploads, 3 health checks, the 404 and the 405 (admin calls are not journaled).
    assert len(server.requests()) == 11
    samples = scrape(server)
    requests = "aymara_mock_requests_total"
    assert value(samples, requests, route="upload", method="POST", status="503") == 2
    assert value(samples, requests, route="upload", method="POST", status="200") == 3
    assert value(samples, requests, route="upload", method="POST", status="none") == 1
    assert value(samples, requests, route="health", method="GET", status="200") == 3
    assert value(samples, requests, route="unrouted", method="GET", status="404") == 1
    assert value(samples, requests, route="unrouted", method="other", status="405") == 1
    assert not [labels for (name, labels) in samples if name == requests and ("method", "BREW") in labels]
    # Admin calls are counted too: at least the journal read above.
    assert value(samples, requests, route="admin", method="GET", status="200") >= 1

    durations = "aymara_mock_request_duration_seconds"
    assert value(samples, f"{durations}_count", route="upload") == 6
    assert value(samples, f"{durations}_bucket", route="upload", le="+Inf") == 6
    assert value(samples, f"{durations}_count", route="health") == 3
    assert 0 < value(samples, f"{durations}_sum", route="upload") < 30

    sizes = sum(len(c) for c in CONTENTS)
    assert [u.file_uuid for u in stored] == [u["file_uuid"] for u in server.uploads()]
    assert value(samples, "aymara_mock_uploaded_bytes_total") == sizes
    assert value(samples, "aymara_mock_stored_files") == 3
    assert value(samples, "aymara_mock_stored_bytes") == sizes
    assert value(samples, "aymara_mock_faults_injected_total", kind="reset") == 1

    assert value(samples, "aymara_mock_rule_fired_total", rule="fail-twice") == 2
    assert value(samples, "aymara_mock_rule_matched_total", rule="fail-twice") == 6
    assert value(samples, "aymara_mock_rule_fired_total", rule="cut") == 1
    assert value(samples, "aymara_mock_rule_fired_total", rule="idle") == 0
    assert value(samples, "aymara_mock_rules") == 3
    assert value(samples, "aymara_mock_rules_never_fired") == 1

    assert value(samples, "aymara_mock_journal_entries") == 11
    assert value(samples, "aymara_mock_journal_bytes") > 0
    assert value(samples, "aymara_mock_state_store_errors_total") == 0

    # A delete is seen at the next scrape.
    server.clear_uploads()
    samples = scrape(server)
    assert value(samples, "aymara_mock_stored_files") == 0
    assert value(samples, "aymara_mock_stored_bytes") == 0
    assert value(samples, "aymara_mock_uploaded_bytes_total") == sizes


def test_metrics_take_the_admin_token(aymara_mock_factory):
    server = aymara_mock_factory(binary=mock_bin("tests/sdk/run.sh"), admin_token="s3cret")
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    response = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer s3cret"})
    assert response.status_code == 200
    assert "aymara_mock_requests_total" in response.text


def test_rule_series_stop_at_a_thousand_rules(start_mock):
    """One series per rule is what Prometheus warns against for unbounded sets: past the first
    1,000 rules loaded, rules are counted (rules, rules_never_fired, rules_not_itemized) but not
    itemized."""
    rules = [
        {"id": f"r{i:04}", "match": {"headers": {"x-never": "sent"}}, "respond": {"status": 500}}
        for i in range(1005)
    ]
    samples = scrape(start_mock(rules))
    itemized = sorted(
        dict(labels)["rule"] for name, labels in samples if name == "aymara_mock_rule_fired_total"
    )
    assert itemized == [f"r{i:04}" for i in range(1000)]
    assert value(samples, "aymara_mock_rules") == 1005
    assert value(samples, "aymara_mock_rules_never_fired") == 1005
    assert value(samples, "aymara_mock_rules_not_itemized") == 5
