"""The JSON shapes of the admin API (README "Admin API"), as TypedDicts.

They are plain dicts at run time (``entry["status"]`` works as in the README's examples); the
types only tell a type checker and an editor which keys exist.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict, Union

__all__ = [
    "Upload", "JournalEntry", "NearMiss", "FailedCondition", "CredentialMiss", "FileSeen",
    "CorsRecord", "Rule", "RuleInfo", "Scenario",
]

#: A fault rule in the fixture format (README "Rule reference"): ``id``, ``match``, ``when``,
#: ``phase``, exactly one of ``respond`` / ``fault`` / ``pass``, and the modifiers.
Rule = Dict[str, Any]


class Upload(TypedDict):
    """A stored upload, as ``GET /__admin/uploads`` and a journal entry's ``upload`` give it."""

    file_uuid: str
    filename: str
    content_type: str
    size: int
    sha256: str
    local_file_path: Optional[str]
    remote_file_path: str
    remote_uri: str
    file_url: str
    #: the ``file_uuid`` of an earlier stored upload with the same sha256, if any
    duplicate_of: Optional[str]


class CredentialMiss(TypedDict):
    """How a credential (``x-api-key``, a ``token`` query parameter, …) missed a rule's pattern,
    without its value."""

    #: ``se…(10 chars)``: the start of the value and its length
    masked: str
    length: int
    #: how many leading characters agree with the pattern
    matching_prefix: int


class _FailedConditionFields(TypedDict):
    condition: str
    expected: Any
    #: the request's value; a credential's is masked (see ``credential``)
    actual: Any
    message: str


class FailedCondition(_FailedConditionFields, total=False):
    """One condition of a rule that did not hold (README "Near misses")."""

    #: set when ``actual`` is a credential, masked by the server
    credential: CredentialMiss


class NearMiss(TypedDict):
    """A rule that did not decide a request, with every condition of it that failed."""

    rule: str
    failed: List[FailedCondition]


class CorsRecord(TypedDict):
    """A journal entry's ``cors``: a request from a web page (it sent ``Origin``)."""

    origin: str
    #: whether ``--cors-origin`` lets pages on that origin read the answer
    allowed: bool
    #: for a CORS preflight: the method and headers the page asked for
    preflight_method: Optional[str]
    preflight_headers: List[str]
    #: what the preflight's grant left out (``"header x-custom"``): the browser sends nothing
    refused: List[str]


class _JournalEntryFields(TypedDict):
    """The keys every journal entry has."""

    id: str
    time: str
    method: str
    path: str
    query: Any
    #: name -> value; ``x-api-key`` and ``authorization`` read ``"[redacted]"``
    headers: Dict[str, Union[str, List[str]]]
    #: ``None`` when no answer was sent (a reset, a hang)
    status: Optional[int]
    #: id of the rule that fired, if any
    rule: Optional[str]
    fault: Any
    #: the ``error.code`` of the error envelope answered (``None`` for other answers)
    error_code: Optional[str]
    duration_ms: Any
    #: 1, 2, … in journal order, never reused (``GET /__admin/requests?after=SEQ``)
    seq: int
    #: the client's ``x-stainless-retry-count``
    retry_count: Optional[int]
    #: the ``id`` of the first attempt of the logical call this request is an attempt of
    call: str
    #: 1 for a first attempt, 2 for the first retry, …
    attempt: int
    #: up to 3 rules that came closest: ``{"rule", "failed": [{"condition", "expected", "actual", "message"}]}``
    near_misses: List[NearMiss]


class FileSeen(TypedDict):
    """What a request showed of its file, stored or not (a journal entry's ``file_seen``)."""

    #: the name as the client sent it
    filename: str
    content_type: str
    #: file bytes received, up to a refusal or a cut
    bytes: int
    #: whether the whole file was received
    complete: bool


class JournalEntry(_JournalEntryFields, total=False):
    """One request the emulator received (``GET /__admin/requests``), oldest first."""

    #: the stored file, for an upload that was stored
    upload: Optional[Upload]
    #: for a request from a web page (it sent ``Origin``); ``None`` for other clients
    cors: Optional[CorsRecord]
    #: what was seen of the request's file, stored or not (``None``: no file part reached)
    file_seen: Optional[FileSeen]


class RuleInfo(TypedDict, total=False):
    """A rule as ``GET /__admin/rules`` lists it: its own fields plus these."""

    id: str
    #: fixture path, or ``"admin"`` for a rule added at run time
    source: str
    #: requests whose ``match`` held (including those ``when.after`` let through)
    matched: int
    #: times it decided a request
    fired: int


class Scenario(TypedDict, total=False):
    """A scenario shipped in the binary (``GET /__admin/scenarios``, ``aymara-mock scenarios``)."""

    #: what ``--scenario NAME``, ``AymaraMock(scenarios=[NAME])`` and ``use_scenario`` take
    name: str
    #: one line on what it does
    summary: str
    description: str
    #: the fixture file it was compiled from, relative to the repository
    file: str
