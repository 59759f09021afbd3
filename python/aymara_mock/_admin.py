"""A typed client of the emulator's admin API (``/__admin``, README "Admin API")."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union, cast

from urllib.parse import quote

import httpx

from ._types import JournalEntry, Rule, RuleInfo, Scenario, Upload

__all__ = ["AdminClient", "AdminError", "UPLOAD_PATH", "format_journal", "redact_query"]

#: The emulated upload endpoint; the journal's ``path`` for an upload.
UPLOAD_PATH = "/v2/files/-/uploads"


class AdminError(Exception):
    """The admin API answered with an error (its envelope is in ``body``)."""

    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text
        super().__init__(f"{method} {path} -> {response.status_code}: {response.text}")


class AdminClient:
    """The admin API of one emulator at ``base_url`` (``http://127.0.0.1:PORT``).

    ``admin_token`` is sent as ``Authorization: Bearer …`` when the emulator runs with
    ``--admin-token``. Every method raises :class:`AdminError` on an error answer.
    """

    def __init__(
        self,
        base_url: str,
        *,
        admin_token: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        self._connect(base_url, admin_token, timeout)

    def _connect(self, base_url: str, admin_token: Optional[str], timeout: float = 10.0) -> None:
        headers = {"authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.base_url = base_url
        self._http: Optional[httpx.Client] = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AdminClient({self.base_url!r})"

    def _call(self, method: str, path: str, expect: Iterable[int], **kw: Any) -> httpx.Response:
        if self._http is None:
            raise RuntimeError(f"{self!r} is not connected (not started, or stopped)")
        response = self._http.request(method, "/__admin" + path, **kw)
        if response.status_code not in expect:
            raise AdminError(method, "/__admin" + path, response)
        return response

    # -- rules -------------------------------------------------------------------------------

    def add_rule(self, rule: Optional[Rule] = None, **fields: Any) -> str:
        """Add one rule, before every other rule; returns its id (generated if not given).

        ``add_rule({"respond": {"status": 503}, "when": {"times": 1}})``, or the same as keyword
        arguments: ``add_rule(respond={"status": 503}, when={"times": 1})``. Use ``pass_={}``
        for the ``pass`` action (a Python keyword).
        """
        body: dict[str, Any] = dict(rule or {})
        for key, value in fields.items():
            body["pass" if key == "pass_" else key] = value
        (rule_id,) = self.add_rules([body])
        return rule_id

    def add_rules(self, rules: Sequence[Rule]) -> List[str]:
        """Add a batch of rules (they keep their order, before every other rule); their ids."""
        response = self._call("POST", "/rules", (201,), json={"rules": list(rules)})
        return cast(List[str], response.json()["ids"])

    def rules(self) -> List[RuleInfo]:
        """Every rule in evaluation order, with ``source``, ``matched`` and ``fired``."""
        return cast(List[RuleInfo], self._call("GET", "/rules", (200,)).json()["rules"])

    def rule(self, rule_id: str) -> RuleInfo:
        """The rule with this id (``KeyError`` if there is none)."""
        for rule in self.rules():
            if rule.get("id") == rule_id:
                return rule
        raise KeyError(rule_id)

    def remove_rule(self, rule_id: str) -> None:
        """Remove one rule (``AdminError`` 404 if unknown)."""
        self._call("DELETE", f"/rules/{rule_id}", (200, 204))

    def clear_rules(self) -> None:
        """Remove every rule, fixture rules included (until the next :meth:`reset`)."""
        self._call("DELETE", "/rules", (200, 204))

    # -- shipped scenarios -------------------------------------------------------------------

    def scenarios(self) -> List[Scenario]:
        """The scenarios shipped in the binary (``name``, ``summary``, …), as
        ``aymara-mock scenarios`` lists them."""
        return cast(List[Scenario], self._call("GET", "/scenarios", (200,)).json()["scenarios"])

    def use_scenario(self, name: str) -> List[str]:
        """Switch a shipped scenario on (``POST /__admin/scenarios/NAME``): its rules are added
        as run-time rules, before every other rule, until the next :meth:`reset` (the
        ``aymara_mock`` fixture resets before each test). Returns their ids. An unknown name
        raises :class:`AdminError` (404) whose message lists the names that exist."""
        response = self._call("POST", f"/scenarios/{quote(name, safe='')}", (200, 201))
        return cast(List[str], response.json()["ids"])

    # -- journal and storage -----------------------------------------------------------------

    def requests(self, path: Optional[str] = None) -> List[JournalEntry]:
        """The journal, oldest first; only the requests to ``path`` if given
        (e.g. :data:`UPLOAD_PATH`)."""
        entries = cast(List[JournalEntry], self._call("GET", "/requests", (200,)).json()["requests"])
        return [e for e in entries if path is None or e["path"] == path]

    def clear_requests(self) -> None:
        """Empty the journal."""
        self._call("DELETE", "/requests", (200, 204))

    def uploads(self) -> List[Upload]:
        """The stored uploads, in storage order."""
        return cast(List[Upload], self._call("GET", "/uploads", (200,)).json()["uploads"])

    def clear_uploads(self) -> None:
        """Delete the stored uploads (the files this emulator stored, nothing else)."""
        self._call("DELETE", "/uploads", (200, 204))

    def reset(self) -> None:
        """Back to the start: run-time rules removed, fixtures reloaded, counters zeroed, RNG
        re-seeded, journal and storage cleared."""
        self._call("POST", "/reset", (200, 204))

    # -- what a test waits for and asserts ---------------------------------------------------

    def wait_for_requests(
        self,
        count: int,
        *,
        path: Optional[str] = None,
        timeout: float = 5.0,
        interval: float = 0.01,
    ) -> List[JournalEntry]:
        """The journal (filtered by ``path``) as soon as it holds at least ``count`` entries.

        For after a network fault: the emulator finishes a journal entry when it has dropped
        the connection, which the client may notice first. Polls the journal; raises
        ``TimeoutError``, listing what it holds, if ``timeout`` seconds pass first.
        """
        __tracebackhide__ = True  # pytest: the failure is the caller's line, not this one
        deadline = time.monotonic() + timeout
        while True:
            entries = self.requests(path)
            if len(entries) >= count:
                return entries
            if time.monotonic() >= deadline:
                where = f" to {path}" if path else ""
                listed = format_journal(entries, headers=False) or "  (empty)"
                raise TimeoutError(
                    f"expected {count} request(s){where} within {timeout}s, the journal holds "
                    f"{len(entries)}:\n{listed}"
                )
            time.sleep(interval)

    def assert_uploaded_once(
        self, sha256: Optional[str] = None, *, data: Optional[bytes] = None
    ) -> Upload:
        """Assert that exactly one stored upload has this SHA-256 (hex, or of ``data``);
        returns it. Otherwise ``AssertionError`` says what was expected, lists what is stored
        and the journal's uploads (status, rule, ``duplicate_of``)."""
        __tracebackhide__ = True  # pytest: the failure is the caller's line, not this one
        if (sha256 is None) == (data is None):
            raise TypeError("give exactly one of sha256 or data")
        digest = hashlib.sha256(data).hexdigest() if data is not None else str(sha256).lower()
        uploads = self.uploads()
        found = [u for u in uploads if u["sha256"] == digest]
        if len(found) != 1:
            listed = "\n".join(
                f"  {u['sha256']}  {u['size']} B  {u['filename']}  {u['file_uuid']}"
                + (f"  duplicate_of {u['duplicate_of']}" if u.get("duplicate_of") else "")
                for u in uploads
            )
            journal = format_journal(self.requests(), headers=False) or "  (empty)"
            raise AssertionError(
                f"expected exactly one stored upload with sha256 {digest}, found {len(found)}\n"
                f"stored uploads:\n{listed or '  (none)'}\n"
                f"the journal:\n{journal}"
            )
        return found[0]


def _header(headers: Any, name: str) -> Optional[str]:
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if str(key).lower() == name:
            return ", ".join(value) if isinstance(value, list) else str(value)
    return None


#: Headers the journal report leaves out: the same on every request of one client.
QUIET_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "x-stainless-lang",
        "x-stainless-package-version",
        "x-stainless-os",
        "x-stainless-arch",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
    }
)

REDACTED = "[redacted]"
#: A query parameter or header whose name matches carries a credential: the report never
#: shows its value (``api_key``, ``access_token``, ``token``, ``password``, ``X-Amz-Signature``,
#: ``sig``, ``client_secret``, ``x-auth-token``, …). The server redacts credential headers in
#: the journal itself; this also covers query strings and servers of older versions.
CREDENTIAL_NAME = re.compile(
    r"api[-_]?key|token|secret|passw|pwd|signature|credential|session|cookie|authorization"
    r"|^(key|sig|auth)$",
    re.IGNORECASE,
)


def _is_credential(name: str) -> bool:
    return bool(CREDENTIAL_NAME.search(str(name)))


def redact_query(query: Any) -> str:
    """``?name=value&…`` of a journal entry's ``query`` (a mapping, or a raw string), with the
    value of every credential-like name (:data:`CREDENTIAL_NAME`) replaced by ``[redacted]``."""
    if isinstance(query, str):
        pairs = [p.partition("=") for p in query.split("&") if p]
        items = [(k, v if eq else None) for k, eq, v in pairs]
    elif isinstance(query, Mapping):
        items = [(str(k), v) for k, v in query.items()]
    else:
        return ""
    shown = [
        k if v is None else f"{k}={REDACTED if _is_credential(k) else v}" for k, v in items
    ]
    return "?" + "&".join(shown) if shown else ""


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else "null"


def _failed_condition(failed: Mapping[str, Any]) -> str:
    condition = str(failed.get("condition", "?"))
    expected, actual = failed.get("expected"), failed.get("actual")
    credential = failed.get("credential")
    if isinstance(credential, Mapping):
        # The server masked a credential (`se…(10 chars)`) and says how much of it agrees
        # with the rule's pattern: enough to spot a typo, without the value.
        agree = credential.get("matching_prefix")
        return (
            f"{condition}: expected {_value(expected)}, actual {_value(actual)}"
            f" (a credential, masked; the first {agree} characters agree)"
        )
    # `match.query.api_key` / `match.headers.x-auth-token` from a server that did not mask it.
    name = condition.split(".", 2)[2] if condition.count(".") >= 2 else ""
    if condition.startswith(("match.query.", "match.headers.")) and _is_credential(name):
        if actual is not None:
            actual = REDACTED
    return f"{condition}: expected {_value(expected)}, actual {_value(actual)}"


def format_journal(
    entries: Sequence[Union[JournalEntry, Mapping[str, Any]]], *, headers: bool = True
) -> str:
    """What the pytest plugin shows for a failing test, one block per request:

    - a first line: number, method, path and query, status and ``error.code`` (or ``no
      answer``), the rule that decided it, the network fault, the SDK's retry count and which
      attempt of which call it is, the stored file and its ``duplicate_of``;
    - a line per near miss (the rule, then each failed condition with expected and actual):
      why no rule decided it, or which rules tried before the one that did nearly matched;
    - with ``headers``, the headers the client sent (less :data:`QUIET_HEADERS`).

    Credentials never appear: credential-like query parameters, headers and near-miss values
    read ``[redacted]``.
    """
    lines: List[str] = []
    number_of = {e.get("id"): n for n, e in enumerate(entries, 1)}
    stored_by = {
        (e.get("upload") or {}).get("file_uuid"): n for n, e in enumerate(entries, 1)
    }
    for n, e in enumerate(entries, 1):
        status = e.get("status")
        answer = str(status) if status is not None else "no answer"
        if e.get("error_code"):
            answer += f" {e['error_code']}"
        parts = [f"{n:>3}. {e.get('method')} {e.get('path')}{redact_query(e.get('query'))}"
                 f" -> {answer}"]
        if e.get("rule"):
            parts.append(f"rule={e['rule']}")
        if e.get("fault"):
            parts.append(f"fault={e['fault']}")
        if e.get("cut"):
            parts.append("cut by the client")
        request_headers = e.get("headers") or {}
        retry = _header(request_headers, "x-stainless-retry-count")
        if retry is not None:
            parts.append(f"retry={retry}")
        attempt = e.get("attempt")
        if isinstance(attempt, int) and attempt > 1:
            first = number_of.get(e.get("call"))
            of = f"#{first}" if first is not None else str(e.get("call"))
            parts.append(f"attempt {attempt} of {of}")
        upload = e.get("upload")
        if upload:
            stored = (
                f"stored {upload.get('filename')} ({upload.get('size')} B, "
                f"{upload.get('content_type')}, sha256 {str(upload.get('sha256'))[:16]}…)"
            )
            duplicate = upload.get("duplicate_of")
            if duplicate:
                by = stored_by.get(duplicate)
                stored += f" duplicate_of={duplicate}" + (f" (stored by #{by})" if by else "")
            parts.append(stored)
        seen = e.get("file_seen")
        if not upload and seen:
            # Not stored (refused, cut, failed): which file it was, and how far it got.
            whole = "whole" if seen.get("complete") else "incomplete"
            parts.append(
                f"not stored: {seen.get('filename')} ({seen.get('content_type')}, "
                f"{seen.get('bytes')} B received, {whole})"
            )
        lines.append("  ".join(parts))
        for miss in e.get("near_misses") or ():
            failed = "; ".join(_failed_condition(f) for f in miss.get("failed") or ())
            lines.append(f"       near miss {miss.get('rule')}: {failed}")
        if headers:
            items = request_headers.items() if isinstance(request_headers, Mapping) else request_headers
            lines.extend(
                f"       {k}: {REDACTED if _is_credential(str(k)) else v}"
                for k, v in items
                if str(k).lower() not in QUIET_HEADERS
            )
    return "\n".join(lines)
