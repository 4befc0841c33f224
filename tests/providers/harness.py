"""One harness for recorded provider payloads: load a table, post each case to the real app,
check the answer and what the database kept. Every provider's tables go through it.

A table is a JSON file (see README.md in this folder for the schema) read by `load_table`,
which validates it and fails loudly, naming the case, on anything malformed. `run_case` signs
the case as its provider would (tests.providers.signing), posts it with the app's TestClient,
and checks the response, the database (counts, the stored inbound, the case, the outbox row a
status callback moved, the contact) and that no secret reached a log line or the answer.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.db import make_engine
from casestore.inbound import Inbound, StatusUpdate
from casestore.models import Case as CaseRow
from casestore.models import Contact, Interaction, OutboundMessage
from gateway.forms import BadRequest, parse_form
from tests.helpers import counts
from tests.providers.signing import SECRETS, SIGNERS, OutgoingRequest, sign
from tests.settings import REDIS_PREFIX, REDIS_URL

FORM_TYPE = "application/x-www-form-urlencoded"
METHODS = frozenset({"GET", "POST"})
ERROR_STATUSES = frozenset({400, 403, 413})
TABLE_KEYS = frozenset({"_comment", "provider", "content_type", "cases"})
CASE_KEYS = frozenset(
    {"_comment", "label", "method", "path", "query", "headers", "body", "pad_to", "sign"}
    | {"expect", "error"}
)
ERROR_KEYS = frozenset({"status", "reason", "contains"})
EXPECT_KEYS = frozenset(
    {"status", "media_type", "body_equals", "body_contains", "body_excludes", "nothing_stored"}
    | {"inbound", "case", "outbox_status", "contact", "parsed"}
)
INBOUND_KEYS = frozenset(
    {"provider_ref", "channel", "sender", "recipient", "text", "phone", "media_urls"}
)
STATUS_KEYS = frozenset(
    {"provider_ref", "status", "provider_status", "error_code", "error", "opted_out"}
)
CASE_ROW_KEYS = frozenset({"category", "department", "status", "channel", "urgent"})
CONTACT_KEYS = frozenset(
    {"phone", "sms_capable", "sms_capable_reason", "opted_out", "provider_opted_out"}
)

# The contact and outbox row a status callback finds: the message it reports on was handed to
# the provider, which answered with the reference the callback carries. Each case gets a phone
# of its own, so cases can share a database.
SEEDED_STATUS = "sending"
_seeded_phones = itertools.count(7000)


class TableError(AssertionError):
    """A table entry does not follow the schema."""


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One recorded request and what must come of it."""

    provider: str
    label: str
    method: str
    path: str
    body: str
    content_type: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    pad_to: int | None = None
    signed: bool = True
    expect: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None

    @property
    def content(self) -> bytes:
        """The body as sent: `pad_to` repeats "x" at the end (the last field grows) until the
        body is that many bytes, for the size limits, without a 64 KiB string in the table."""
        raw = self.body.encode("utf-8")
        if self.pad_to is not None:
            raw += b"x" * max(0, self.pad_to - len(raw))
        return raw

    def form(self) -> dict[str, str]:
        """The body's fields as the gateway reads them (blank fields kept)."""
        return parse_form(self.content, self.content_type)

    def json(self) -> Any:
        """The body parsed, for providers whose webhooks are JSON."""
        return json.loads(self.body)

    def outgoing(self) -> OutgoingRequest:
        """The request as the provider sends it: signed, unless the case says otherwise."""
        headers = {"Content-Type": self.content_type, **self.headers}
        request = OutgoingRequest(self.method, self.path, self.query, headers, self.content)
        return sign(self.provider, request) if self.signed else request

    @property
    def refused_before_parsing(self) -> bool:
        """Refused by signature/token or size checks, before the provider's parser runs."""
        return self.error is not None and self.error["status"] in (403, 413)


@dataclass(frozen=True)
class Table:
    """A validated table of recorded cases of one provider."""

    path: Path
    provider: str
    cases: tuple[Case, ...]

    def case(self, label: str) -> Case:
        found = [c for c in self.cases if c.label == label]
        assert found, f"{self.path.name}: no case labelled {label!r}"
        return found[0]

    def params(self, *, having: str | None = None) -> list[Any]:
        """pytest params of the cases (ids are the labels); `having` keeps those whose expect
        holds that key, or, with "error", the refusals the provider's parser makes."""
        chosen: list[Case] = []
        for case in self.cases:
            if having is None:
                chosen.append(case)
            elif having == "error":
                if case.error is not None and not case.refused_before_parsing:
                    chosen.append(case)
            elif case.expect is not None and having in case.expect:
                chosen.append(case)
        assert chosen, f"{self.path.name}: no case with {having!r}"
        return [pytest.param(c, id=c.label) for c in chosen]


# ---------------------------------------------------------------- parse-level checks
def expected_inbound(case: Case, received_at: datetime) -> Inbound:
    """The `Inbound` the provider's parser must make of `case` (its `expect.inbound`)."""
    assert case.expect is not None and "inbound" in case.expect, case.label
    want = case.expect["inbound"]
    fields = dict(want, media_urls=tuple(want["media_urls"]))
    return Inbound(provider=case.provider, received_at=received_at, **fields)


def expected_status(case: Case) -> StatusUpdate:
    """The `StatusUpdate` the provider's parser must make of `case` (`expect.outbox_status`)."""
    assert case.expect is not None and "outbox_status" in case.expect, case.label
    return StatusUpdate(provider=case.provider, **case.expect["outbox_status"])


def assert_parser_refuses(case: Case, parse: Callable[[dict[str, str]], object]) -> None:
    """`parse` refuses the case's fields with the status and reason the app answers with."""
    assert_refuses(case, lambda: parse(case.form()))


def assert_refuses(case: Case, attempt: Callable[[], object]) -> None:
    """`attempt` (a parse of the case's body in whatever shape the provider's parser takes:
    JSON for Vonage) refuses it with the status and reason the app answers with."""
    assert case.error is not None, case.label
    with pytest.raises(BadRequest) as info:
        attempt()
    assert info.value.status == case.error["status"], case.label
    if "reason" in case.error:
        assert info.value.reason == case.error["reason"], case.label
    if "contains" in case.error:
        assert case.error["contains"] in info.value.reason, case.label


def _fail(where: str, message: str) -> TableError:
    return TableError(f"{where}: {message}")


def _check_keys(where: str, value: Any, allowed: frozenset[str], what: str) -> None:
    if not isinstance(value, dict):
        raise _fail(where, f"{what} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise _fail(where, f"unknown {what} key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _str_map(where: str, value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(where, f"{what} must map strings to strings")
    return dict(value)


def _check_expect(where: str, expect: Any) -> None:
    _check_keys(where, expect, EXPECT_KEYS, "expect")
    status = expect.get("status", 200)
    if not isinstance(status, int) or not 200 <= status < 300:
        raise _fail(where, "expect.status must be a 2xx code (refusals go in 'error')")
    for key in ("media_type", "body_equals"):
        if key in expect and not isinstance(expect[key], str):
            raise _fail(where, f"expect.{key} must be a string")
    for key in ("body_contains", "body_excludes"):
        value = expect.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, f"expect.{key} must be a list of strings")
    if "nothing_stored" in expect and expect["nothing_stored"] is not True:
        raise _fail(where, "expect.nothing_stored can only be true")
    for key, allowed in (
        ("inbound", INBOUND_KEYS),
        ("outbox_status", STATUS_KEYS),
        ("case", CASE_ROW_KEYS),
        ("contact", CONTACT_KEYS),
    ):
        if key in expect and not (key == "case" and expect[key] is None):
            _check_keys(where, expect[key], allowed, f"expect.{key}")
    if "inbound" in expect and set(expect["inbound"]) != INBOUND_KEYS:
        raise _fail(where, f"expect.inbound needs every field: {sorted(INBOUND_KEYS)}")
    if "outbox_status" in expect and set(expect["outbox_status"]) != STATUS_KEYS:
        raise _fail(where, f"expect.outbox_status needs every field: {sorted(STATUS_KEYS)}")
    if "case" in expect and "inbound" not in expect:
        raise _fail(where, "expect.case needs expect.inbound (the message the case holds)")
    if expect.get("nothing_stored") and ({"inbound", "case", "outbox_status"} & set(expect)):
        raise _fail(where, "expect.nothing_stored contradicts a stored effect")
    if "parsed" in expect and not isinstance(expect["parsed"], dict):
        raise _fail(where, "expect.parsed must be an object")


def _check_error(where: str, error: Any) -> None:
    _check_keys(where, error, ERROR_KEYS, "error")
    if error.get("status") not in ERROR_STATUSES:
        raise _fail(where, f"error.status must be one of {sorted(ERROR_STATUSES)}")
    if not ({"reason", "contains"} & set(error)):
        raise _fail(where, "error needs 'reason' (the exact answer) or 'contains'")
    for key in ("reason", "contains"):
        if key in error and not (isinstance(error[key], str) and error[key]):
            raise _fail(where, f"error.{key} must be a non-empty string")


def _case(table: str, provider: str, content_type: str, index: int, raw: Any) -> Case:
    label = raw.get("label") if isinstance(raw, dict) else None
    where = f"{table} case {index} ({label!r})"
    _check_keys(where, raw, CASE_KEYS, "case")
    for key in ("label", "method", "path", "body"):
        if not isinstance(raw.get(key), str):
            raise _fail(where, f"'{key}' is required and must be a string")
    if not raw["label"].strip():
        raise _fail(where, "'label' must not be blank")
    if raw["method"] not in METHODS:
        raise _fail(where, f"method must be one of {sorted(METHODS)}")
    if not raw["path"].startswith("/") or "?" in raw["path"]:
        raise _fail(where, "path must start with / and carry no query (use 'query')")
    if ("expect" in raw) == ("error" in raw):
        raise _fail(where, "exactly one of 'expect' and 'error' is required")
    if "expect" in raw:
        _check_expect(where, raw["expect"])
    else:
        _check_error(where, raw["error"])
    pad_to = raw.get("pad_to")
    if pad_to is not None and not (isinstance(pad_to, int) and pad_to > len(raw["body"])):
        raise _fail(where, "pad_to must be a byte count larger than the body")
    if not isinstance(raw.get("sign", True), bool):
        raise _fail(where, "sign must be true or false")
    headers = _str_map(where, raw.get("headers", {}), "headers")
    query = _str_map(where, raw.get("query", {}), "query")
    case_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    # A body the app accepts must be the JSON it claims to be (a typo in a table would
    # otherwise test a refusal); a GET has none, and a refusal may be of malformed JSON.
    if (
        content_type.startswith("application/json")
        and case_type is None
        and "expect" in raw
        and raw["body"]
    ):
        try:
            json.loads(raw["body"])
        except ValueError as exc:
            raise _fail(where, f"body is not JSON: {exc}") from None
    return Case(
        provider=provider,
        label=raw["label"],
        method=raw["method"],
        path=raw["path"],
        body=raw["body"],
        content_type=case_type or content_type,
        query=tuple(query.items()),
        headers={k: v for k, v in headers.items() if k.lower() != "content-type"},
        pad_to=pad_to,
        signed=raw.get("sign", True),
        expect=raw.get("expect"),
        error=raw.get("error"),
    )


def parse_table(name: str, document: Any) -> Table:
    """Validate a table's parsed JSON; raises TableError naming the case at fault."""
    _check_keys(name, document, TABLE_KEYS, "table")
    provider = document.get("provider")
    if provider not in SIGNERS:
        raise _fail(name, f"provider must be one of {sorted(SIGNERS)} (tests/providers/signing)")
    content_type = document.get("content_type", FORM_TYPE)
    if not isinstance(content_type, str):
        raise _fail(name, "content_type must be a string")
    raw_cases = document.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise _fail(name, "'cases' must be a non-empty list")
    cases = tuple(_case(name, provider, content_type, i, c) for i, c in enumerate(raw_cases))
    seen: set[str] = set()
    for case in cases:
        if case.label in seen:
            raise _fail(name, f"label {case.label!r} is used twice")
        seen.add(case.label)
    return Table(Path(name), provider, cases)


def load_table(path: Path) -> Table:
    """Read and validate one table file."""
    table = parse_table(path.name, json.loads(path.read_text(encoding="utf-8")))
    return Table(path, table.provider, table.cases)


def load_testdata(test_file: str, name: str) -> Table:
    """The table `name` (without .json) in the testdata folder beside `test_file`."""
    return load_table(Path(test_file).parent / "testdata" / f"{name}.json")


# ---------------------------------------------------------------- guards
def assert_network_guard_active() -> None:
    """The suite's guard (tests/conftest.py) must refuse any host but loopback, before DNS."""
    try:
        socket.getaddrinfo("api.twilio.com", 443)
    except AssertionError as exc:
        assert "only 127.0.0.1 is allowed" in str(exc)
    else:
        raise AssertionError("the network guard is off: api.twilio.com was looked up")


def assert_no_secret_leaked(records: list[Any]) -> None:
    """No configured secret in the app's log lines. (Answers may carry one on purpose: Africa's
    Talking is given callback URLs with its token in them.)"""
    # httpx is the test's own client playing the provider: it logs the URLs it was given.
    lines = [r.getMessage() for r in records if not r.name.startswith(("httpx", "httpcore"))]
    for name, secret in SECRETS.items():
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"{name} reached a log line: {leaked[0]!r}"


# ---------------------------------------------------------------- the database
@dataclass
class _Seeded:
    contact_id: int
    message_id: int


def _seed_outbox(db_url: str, provider: str, provider_ref: str) -> _Seeded:
    """The message a status callback reports on, and its citizen."""
    now = datetime.now(UTC)
    phone = f"+549115555{next(_seeded_phones):04d}"
    engine = make_engine(db_url)
    try:
        with Session(engine) as s, s.begin():
            contact = Contact(phone=phone, created_at=now)
            s.add(contact)
            s.flush()
            message = OutboundMessage(
                contact_id=contact.id,
                kind="reply",
                channel="sms",
                provider=provider,
                to_address=phone,
                body="Su pedido fue recibido.",
                status=SEEDED_STATUS,
                provider_ref=provider_ref,
                attempts=1,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            s.add(message)
            s.flush()
            return _Seeded(contact.id, message.id)
    finally:
        engine.dispose()


def _check_contact(where: str, contact: Contact | None, expected: Mapping[str, Any]) -> None:
    assert contact is not None, f"{where}: no contact stored"
    actual = {
        "phone": contact.phone,
        "sms_capable": contact.sms_capable,
        "sms_capable_reason": contact.sms_capable_reason,
        "opted_out": contact.opted_out_at is not None,
        "provider_opted_out": contact.provider_opted_out_at is not None,
    }
    assert {k: actual[k] for k in expected} == dict(expected), where


def _check_inbound(s: Session, case: Case, expect: Mapping[str, Any]) -> Contact | None:
    """The one inbound interaction stored under the case's reference, its contact, its case."""
    want = expect["inbound"]
    rows = list(
        s.scalars(
            select(Interaction).where(
                Interaction.provider == case.provider,
                Interaction.provider_ref == want["provider_ref"],
                Interaction.direction == "in",
            )
        )
    )
    assert len(rows) == 1, f"{case.label}: {len(rows)} inbound rows stored"
    (row,) = rows
    stored: dict[str, Any] = {
        "channel": row.channel,
        "sender": row.address,
        "text": row.text,
        "media_urls": list(row.media_urls or []),
    }
    assert stored == {k: want[k] for k in stored}, case.label
    contact = s.get(Contact, row.contact_id) if row.contact_id else None
    assert (contact.phone if contact else None) == want["phone"], case.label
    if "case" in expect and expect["case"] is None:
        assert row.case_id is None, f"{case.label}: the message is on a case"
    elif "case" in expect:
        assert row.case_id is not None, f"{case.label}: the message opened no case"
        opened = s.get(CaseRow, row.case_id)
        assert opened is not None
        actual = {k: getattr(opened, k) for k in expect["case"]}
        assert actual == dict(expect["case"]), case.label
    return contact


def _check_outbox(s: Session, case: Case, expect: Mapping[str, Any], seeded: _Seeded) -> Contact:
    """The message the status callback reported on, moved as expected; its contact."""
    want = expect["outbox_status"]
    message = s.get(OutboundMessage, seeded.message_id)
    assert message is not None
    stored: dict[str, Any] = {
        "status": message.status,
        "provider_status": message.provider_status,
        "error_code": message.error_code,
        "error": message.error,
    }
    assert stored == {k: want[k] for k in stored}, case.label
    contact = s.get(Contact, seeded.contact_id)
    assert contact is not None
    opted = contact.provider_opted_out_at is not None
    assert opted == want["opted_out"], f"{case.label}: opted out at the provider"
    return contact


def _check_stored(
    db_url: str, case: Case, expect: Mapping[str, Any], seeded: _Seeded | None
) -> None:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            contact: Contact | None = None
            if "inbound" in expect:
                contact = _check_inbound(s, case, expect)
            if "outbox_status" in expect:
                assert seeded is not None
                contact = _check_outbox(s, case, expect, seeded)
            if "contact" in expect:
                _check_contact(case.label, contact, expect["contact"])
    finally:
        engine.dispose()


# ---------------------------------------------------------------- the runner
def _redis_keys() -> set[bytes]:
    """This run's keys in the test Redis (sessions, kept answers, locks)."""
    store = redis.Redis.from_url(REDIS_URL)
    try:
        return set(store.scan_iter(match=f"{REDIS_PREFIX}:*"))
    finally:
        store.close()


def run_case(client: TestClient, db_url: str, case: Case, caplog: pytest.LogCaptureFixture) -> Any:
    """Post `case` to the app as its provider would and check everything it expects; returns
    the response for anything a test wants to look at further."""
    assert_network_guard_active()
    caplog.set_level("DEBUG")
    expect = case.expect or {}
    seeded = None
    if "outbox_status" in expect:
        seeded = _seed_outbox(db_url, case.provider, expect["outbox_status"]["provider_ref"])
    before = counts(db_url)
    keys_before = _redis_keys()
    request = case.outgoing()
    response = client.request(
        request.method, request.target, content=request.body, headers=request.headers
    )
    assert_no_secret_leaked(caplog.records)
    if case.error is not None:
        assert response.status_code == case.error["status"], (case.label, response.text)
        if "reason" in case.error:
            assert response.text == case.error["reason"], case.label
        if "contains" in case.error:
            assert case.error["contains"] in response.text, (case.label, response.text)
        assert counts(db_url) == before, f"{case.label}: a refused request changed the database"
        assert _redis_keys() == keys_before, f"{case.label}: a refused request changed Redis"
        return response
    assert response.status_code == expect.get("status", 200), (case.label, response.text)
    if "media_type" in expect:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        assert media == expect["media_type"], case.label
    if "body_equals" in expect:
        assert response.text == expect["body_equals"], case.label
    for fragment in expect.get("body_contains", []):
        assert fragment in response.text, (case.label, fragment, response.text)
    for fragment in expect.get("body_excludes", []):
        assert fragment not in response.text, (case.label, fragment, response.text)
    if expect.get("nothing_stored"):
        assert counts(db_url) == before, f"{case.label}: expected nothing stored"
    _check_stored(db_url, case, expect, seeded)
    return response


def iter_tables(folder: Path) -> Iterator[Table]:
    """Every table under `folder` (each provider's testdata), for checks over all of them."""
    for path in sorted(folder.glob("*/testdata/*.json")):
        yield load_table(path)
