"""A typed client of the emulator's admin API (``/__admin``, README "Admin API")."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union, cast

import httpx

from ._types import JournalEntry, Rule, RuleInfo, Upload

__all__ = ["AdminClient", "AdminError", "UPLOAD_PATH", "format_journal"]

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
        deadline = time.monotonic() + timeout
        while True:
            entries = self.requests(path)
            if len(entries) >= count:
                return entries
            if time.monotonic() >= deadline:
                where = f" to {path}" if path else ""
                raise TimeoutError(
                    f"expected {count} request(s){where} within {timeout}s, the journal holds "
                    f"{len(entries)}:\n{format_journal(entries) or '  (empty)'}"
                )
            time.sleep(interval)

    def assert_uploaded_once(
        self, sha256: Optional[str] = None, *, data: Optional[bytes] = None
    ) -> Upload:
        """Assert that exactly one stored upload has this SHA-256 (hex, or of ``data``);
        returns it. ``AssertionError`` lists what is stored otherwise."""
        if (sha256 is None) == (data is None):
            raise TypeError("give exactly one of sha256 or data")
        digest = hashlib.sha256(data).hexdigest() if data is not None else str(sha256).lower()
        uploads = self.uploads()
        found = [u for u in uploads if u["sha256"] == digest]
        if len(found) != 1:
            listed = "\n".join(
                f"  {u['sha256']}  {u['size']} B  {u['filename']}  {u['file_uuid']}"
                for u in uploads
            )
            raise AssertionError(
                f"expected one stored upload with sha256 {digest}, found {len(found)}; "
                f"stored:\n{listed or '  (none)'}"
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


def _query(query: Any) -> str:
    if isinstance(query, str):
        return f"?{query}" if query else ""
    if isinstance(query, Mapping) and query:
        return "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return ""


def format_journal(entries: Sequence[Union[JournalEntry, Mapping[str, Any]]]) -> str:
    """One line per request (method, path and query, status, rule and fault, the SDK's retry
    count, the stored file), then the headers the client sent (less :data:`QUIET_HEADERS`):
    what the pytest plugin shows for a failing test."""
    lines = []
    for n, e in enumerate(entries, 1):
        status = e.get("status")
        parts = [
            f"{n:>3}. {e['method']} {e['path']}{_query(e.get('query'))}"
            f" -> {status if status is not None else 'no answer'}"
        ]
        if e.get("rule"):
            parts.append(f"rule={e['rule']}")
        if e.get("fault"):
            parts.append(f"fault={e['fault']}")
        headers = e.get("headers") or {}
        retry = _header(headers, "x-stainless-retry-count")
        if retry is not None:
            parts.append(f"retry={retry}")
        upload = e.get("upload")
        if upload:
            parts.append(
                f"stored {upload['filename']} ({upload['size']} B, {upload['content_type']}, "
                f"sha256 {upload['sha256'][:16]}…)"
            )
        lines.append("  ".join(parts))
        items = headers.items() if isinstance(headers, Mapping) else headers
        lines.extend(
            f"       {k}: {v}" for k, v in items if str(k).lower() not in QUIET_HEADERS
        )
    return "\n".join(lines)
