"""The JSON API as an integrator sees it: bearer tokens, scoping, filters, pages, transitions.

Cases are opened the way citizens open them, by signed Twilio SMS; every test runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import AuditEvent, Case, CaseEvent
from casestore.operators import create_operator, create_token
from tests.helpers import post_twilio, twilio_form

FOOD = "Hola, no me llego la tarjeta alimentar este mes"
URGENT = "me pega mi pareja"
GENERAL = "quisiera hacer una consulta sobre un tramite"
STATUSES = ["new", "assigned", "in_progress", "waiting_citizen", "resolved", "closed"]
# The contract's table, written out: anything else (the same status included) is 409.
CONTRACT_TRANSITIONS = {
    "new": {"assigned", "in_progress", "waiting_citizen", "resolved", "closed"},
    "assigned": {"in_progress", "waiting_citizen", "resolved", "closed"},
    "in_progress": {"waiting_citizen", "resolved", "closed"},
    "waiting_citizen": {"in_progress", "resolved", "closed"},
    "resolved": {"closed", "in_progress"},
    "closed": {"in_progress"},
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
RECEIPT_NUMBER = re.compile(r"\b(\d{4}) (\d{4}) (\d{2})\b")
CONTRACT_CASE_KEYS = {
    "tracking_number",
    "status",
    "channel",
    "category",
    "department",
    "priority",
    "created_at",
    "updated_at",
    "citizen",
    "events",
    "survey",
}


@dataclass
class Api:
    """The app, its database and three operators: ALIM, GEN and an admin."""

    client: TestClient
    db_url: str
    tokens: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, user: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params or None, headers=self.headers(user))

    def post_status(self, user: str, number: str, body: Any) -> Any:
        return self.client.post(
            f"/api/v1/cases/{number}/status", json=body, headers=self.headers(user)
        )

    def open_case(self, text: str, sender: str) -> str:
        """Text the gateway as a citizen; return the tracking number of the receipt."""
        response = post_twilio(self.client, twilio_form(text, sender=sender))
        assert response.status_code == 200, response.text
        match = RECEIPT_NUMBER.search(response.text)
        assert match, response.text
        return "".join(match.groups())

    def session(self) -> Session:
        return Session(self._engine)

    def __post_init__(self) -> None:
        self._engine = make_engine(self.db_url)

    def set_status(self, number: str, status: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Case).where(Case.tracking_number == number).values(status=status))

    def events(self, number: str, kind: str = "status_changed") -> int:
        """Timeline events of one kind (status changes by default; notifications add more)."""
        with self.session() as s:
            query = (
                select(func.count())
                .select_from(CaseEvent)
                .join(Case, Case.id == CaseEvent.case_id)
                .where(Case.tracking_number == number, CaseEvent.kind == kind)
            )
            return int(s.execute(query).scalar_one())

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture
def api(client: TestClient, db_url: str, config: Config) -> Iterator[Api]:
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        known = config.departments.keys()
        create_operator(s, "ana", "operator", ["ALIM"], known)
        create_operator(s, "gema", "supervisor", ["GEN"], known)
        create_operator(s, "root", "admin", [], known)
        tokens = {user: create_token(s, user) for user in ("ana", "gema", "root")}
    engine.dispose()
    api = Api(client, db_url, tokens)
    yield api
    api.close()


def spaced(number: str) -> str:
    return f"{number[:4]} {number[4:8]} {number[8:]}"


# ---------------------------------------------------------------- authentication
def test_every_call_needs_a_valid_bearer_token(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    calls = [
        ("GET", "/api/v1/cases"),
        ("GET", f"/api/v1/cases/{number}"),
        ("POST", f"/api/v1/cases/{number}/status"),
        ("GET", "/api/v1/departments"),
        ("GET", "/api/v1/categories"),
    ]
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer vt_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {api.tokens['ana']}"},
        {"Authorization": api.tokens["ana"]},
    ]
    for method, path in calls:
        for headers in bad_headers:
            body = {"status": "closed"} if method == "POST" else None
            response = api.client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "error" in response.json()
    # Nothing the refused POSTs asked for happened.
    assert api.get("root", f"/api/v1/cases/{number}").json()["status"] == "new"


# ---------------------------------------------------------------- list
def test_list_is_newest_first_and_scoped_to_the_operators_departments(api: Api) -> None:
    food = api.open_case(FOOD, "+5491155550001")
    urgent = api.open_case(URGENT, "+5491155550002")
    general = api.open_case(GENERAL, "+5491155550003")

    everything = api.get("root", "/api/v1/cases")
    assert everything.status_code == 200
    body = everything.json()
    assert set(body) == {"items", "next"}
    assert body["next"] is None
    assert [c["tracking_number"] for c in body["items"]] == [general, urgent, food]
    assert [c["department"] for c in body["items"]] == ["ATC", "GEN", "ALIM"]

    ana = api.get("ana", "/api/v1/cases").json()
    assert [c["tracking_number"] for c in ana["items"]] == [food]
    gema = api.get("gema", "/api/v1/cases").json()
    assert [c["tracking_number"] for c in gema["items"]] == [urgent]
    assert gema["items"][0]["priority"] == "urgent"

    # Asking for another department does not widen what an operator may see.
    assert api.get("ana", "/api/v1/cases", department="GEN").json()["items"] == []
    by_department = api.get("root", "/api/v1/cases", department="GEN").json()["items"]
    assert [c["tracking_number"] for c in by_department] == [urgent]


def test_phone_filter_accepts_the_number_in_any_format(api: Api) -> None:
    mine = api.open_case(FOOD, "+5491155550001")
    api.open_case("necesito mercaderia para el comedor", "+5491155550004")

    formats = [
        "phone=%2B5491155550001",  # encoded plus
        "phone=+5491155550001",  # unencoded plus: arrives as a space
        "phone=%205491155550001",  # the same, as the space it became
        "phone=%2B54%209%2011%205555-0001",  # international with spaces and a hyphen
        "phone=%2B541155550001",  # without the mobile 9
        "phone=011%2015%205555-0001",  # national format, as written in Argentina
        "phone=(011)%2015-5555-0001",
        "phone=1155550001",
    ]
    for query in formats:
        response = api.client.get(f"/api/v1/cases?{query}", headers=api.headers("ana"))
        assert response.status_code == 200, (query, response.text)
        assert [c["tracking_number"] for c in response.json()["items"]] == [mine], query
    # A client library encoding " 549…" sends the plus that the unencoded form stands for.
    spaced_plus = api.get("ana", "/api/v1/cases", phone=" 5491155550001").json()["items"]
    assert [c["tracking_number"] for c in spaced_plus] == [mine]

    assert api.get("ana", "/api/v1/cases", phone="+5491155550099").json()["items"] == []
    # The phone of a case in another department shows nothing to this operator.
    api.open_case(URGENT, "+5491155550002")
    assert api.get("ana", "/api/v1/cases", phone="+5491155550002").json()["items"] == []

    bad = api.get("ana", "/api/v1/cases", phone="not a phone")
    assert bad.status_code == 400
    assert "phone" in bad.json()["error"]


def test_status_filter(api: Api) -> None:
    first = api.open_case(FOOD, "+5491155550001")
    second = api.open_case("el comedor del barrio no tiene comida", "+5491155550004")
    assert api.post_status("ana", first, {"status": "in_progress"}).status_code == 200

    in_progress = api.get("ana", "/api/v1/cases", status="in_progress").json()["items"]
    assert [c["tracking_number"] for c in in_progress] == [first]
    new = api.get("ana", "/api/v1/cases", status="new").json()["items"]
    assert [c["tracking_number"] for c in new] == [second]
    assert api.get("ana", "/api/v1/cases", status="closed").json()["items"] == []

    unknown = api.get("ana", "/api/v1/cases", status="archived")
    assert unknown.status_code == 400
    assert "archived" in unknown.json()["error"]
    assert "in_progress" in unknown.json()["error"]  # the allowed values are named


def test_search_by_text_and_by_tracking_number(api: Api) -> None:
    food = api.open_case(FOOD, "+5491155550001")
    kitchen = api.open_case("el merendero cerro y no hay comida", "+5491155550004")

    for q in ("tarjeta alimentar", "TARJETA", "Alimentar"):
        found = api.get("ana", "/api/v1/cases", q=q).json()["items"]
        assert [c["tracking_number"] for c in found] == [food], q
    found = api.get("ana", "/api/v1/cases", q="merendero").json()["items"]
    assert [c["tracking_number"] for c in found] == [kitchen]

    hyphenated = f"{food[:4]}-{food[4:8]}-{food[8:]}"
    for q in (food, spaced(food), hyphenated, f" {spaced(food)} "):
        found = api.get("ana", "/api/v1/cases", q=q).json()["items"]
        assert [c["tracking_number"] for c in found] == [food], q

    assert api.get("ana", "/api/v1/cases", q="pension").json()["items"] == []
    # A tracking number outside the operator's departments finds nothing.
    urgent = api.open_case(URGENT, "+5491155550002")
    assert api.get("ana", "/api/v1/cases", q=spaced(urgent)).json()["items"] == []
    # LIKE wildcards typed by a user are text, not patterns.
    assert api.get("ana", "/api/v1/cases", q="%").json()["items"] == []
    assert api.get("ana", "/api/v1/cases", q="_").json()["items"] == []


def test_pages_walk_every_case_exactly_once(api: Api) -> None:
    opened = [api.open_case(FOOD, f"+54911555500{10 + i}") for i in range(7)]
    newest_first = list(reversed(opened))

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = api.get("ana", "/api/v1/cases", **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 3
        seen.extend(c["tracking_number"] for c in body["items"])
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == newest_first
    assert pages == 3

    # Filters keep applying on later pages.
    first = api.get("ana", "/api/v1/cases", limit=2, status="new").json()
    rest = api.get("ana", "/api/v1/cases", limit=10, status="new", cursor=first["next"]).json()
    assert [c["tracking_number"] for c in first["items"] + rest["items"]] == newest_first
    assert rest["next"] is None


FORGED_CURSORS = [
    "not a cursor",
    "Zm9v",  # "foo"
    "!!!!",
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00|1").decode(),  # no time zone
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|99999999999999999999999").decode(),
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|-1|x").decode(),
]


def test_a_cursor_or_limit_the_api_did_not_issue_is_400(api: Api) -> None:
    api.open_case(FOOD, "+5491155550001")
    for cursor in FORGED_CURSORS:
        response = api.get("ana", "/api/v1/cases", cursor=cursor)
        assert response.status_code == 400, (cursor, response.text)
        assert "cursor" in response.json()["error"]
    for limit in ("0", "-1", "201", "ten", "1.5"):
        response = api.get("ana", "/api/v1/cases", limit=limit)
        assert response.status_code == 400, limit
        assert "limit" in response.json()["error"]


# ---------------------------------------------------------------- detail
def test_case_detail_carries_the_contract_fields(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    response = api.get("ana", f"/api/v1/cases/{number}")
    assert response.status_code == 200
    case = response.json()

    assert set(case) >= CONTRACT_CASE_KEYS
    assert case["tracking_number"] == number
    assert case["status"] == "new"
    assert case["channel"] == "sms"
    assert case["category"] == "tarjeta-alimentar"
    assert case["department"] == "ALIM"
    assert case["priority"] == "normal"
    assert case["survey"] is None
    assert case["citizen"] == {"phone": "+5491155550001", "name": None, "national_id": None}
    for key in ("created_at", "updated_at"):
        assert RFC3339_UTC.match(case[key]), case[key]
    assert case["created_at"] <= case["updated_at"]

    assert case["events"], "a new case has its creation on the timeline"
    for event in case["events"]:
        assert {"kind", "at", "actor", "text"} <= set(event)
        assert RFC3339_UTC.match(event["at"]), event
    created = case["events"][0]
    assert created["kind"] == "created"
    assert created["text"] == FOOD
    # The receipt the citizen got is on the timeline too.
    assert any(spaced(number) in e["text"] for e in case["events"][1:])

    # The list shows the same representation.
    listed = api.get("ana", "/api/v1/cases").json()["items"][0]
    assert listed == case


def test_urgent_case_detail(api: Api) -> None:
    number = api.open_case(URGENT, "+5491155550002")
    case = api.get("gema", f"/api/v1/cases/{number}").json()
    assert (case["category"], case["department"], case["priority"]) == (
        "violencia-genero",
        "GEN",
        "urgent",
    )


def test_tracking_number_in_the_path_is_accepted_as_citizens_write_it(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    a, b, c = number[:4], number[4:8], number[8:]
    for written in (number, f"{a}%20{b}%20{c}", f"{a}-{b}-{c}", f"{a}%20{b}-{c}"):
        response = api.get("ana", f"/api/v1/cases/{written}")
        assert response.status_code == 200, written
        assert response.json()["tracking_number"] == number
    status = api.post_status("ana", f"{a}%20{b}%20{c}", {"status": "assigned"})
    assert status.status_code == 200
    assert status.json()["status"] == "assigned"


def test_a_case_outside_the_operators_departments_is_404_like_an_unknown_one(api: Api) -> None:
    urgent = api.open_case(URGENT, "+5491155550002")
    hidden = api.get("ana", f"/api/v1/cases/{urgent}")
    assert hidden.status_code == 404
    unknown = api.get("ana", "/api/v1/cases/1234567890")
    assert unknown.status_code == 404
    assert hidden.json() == unknown.json()  # nothing tells the two apart
    assert api.get("gema", f"/api/v1/cases/{urgent}").status_code == 200
    assert api.get("root", f"/api/v1/cases/{urgent}").status_code == 200

    before = api.events(urgent)
    moved = api.post_status("ana", urgent, {"status": "closed", "note": "no es mio"})
    assert moved.status_code == 404
    assert api.events(urgent) == before
    assert api.get("gema", f"/api/v1/cases/{urgent}").json()["status"] == "new"


# ---------------------------------------------------------------- status changes
def test_every_transition_in_the_table_and_no_other(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    for source in STATUSES:
        for target in STATUSES:
            api.set_status(number, source)
            before = api.events(number)
            note = f"{source} a {target}"
            response = api.post_status("ana", number, {"status": target, "note": note})
            if target not in CONTRACT_TRANSITIONS[source]:
                assert response.status_code == 409, (source, target, response.text)
                assert source in response.json()["error"]
                assert api.events(number) == before
                case = api.get("ana", f"/api/v1/cases/{number}").json()
                assert case["status"] == source, (source, target)
                continue
            assert response.status_code == 200, (source, target, response.text)
            case = response.json()
            assert case["status"] == target
            assert case["tracking_number"] == number
            assert api.events(number) == before + 1
            last = [e for e in case["events"] if e["kind"] == "status_changed"][-1]
            assert last["actor"] == "ana"
            assert last["text"] == note
            assert RFC3339_UTC.match(last["at"])
            assert (last["from_status"], last["to_status"]) == (source, target)
            assert case["updated_at"] == last["at"]


def test_a_closed_case_can_be_reopened(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    closed = api.post_status("ana", number, {"status": "closed", "note": "entregada"})
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    again = api.post_status("ana", number, {"status": "closed"})
    assert again.status_code == 409
    reopened = api.post_status("ana", number, {"status": "in_progress", "note": "volvio a faltar"})
    assert reopened.status_code == 200
    case = api.get("ana", f"/api/v1/cases/{number}").json()
    assert case["status"] == "in_progress"
    changes = [
        (e["from_status"], e["to_status"], e["text"])
        for e in case["events"]
        if e["kind"] == "status_changed"
    ]
    assert changes[-2:] == [
        ("new", "closed", "entregada"),
        ("closed", "in_progress", "volvio a faltar"),
    ]
    assert (
        api.get("ana", "/api/v1/cases", status="in_progress").json()["items"][0]["tracking_number"]
        == number
    )


BAD_STATUS_BODIES = [
    (b'{"status": "archived"}', "archived"),
    (b'{"status": ""}', "status"),
    (b"{not json", "status"),
    (b"", "status"),
    (b'["closed"]', "status"),
    (b'{"note": "sin estado"}', "status"),
    (b'{"status": 3}', "status"),
    (b'{"status": "closed", "note": 7}', "note"),
    (b"\xff\xfe", "status"),
]


def test_a_bad_status_request_is_400_and_changes_nothing(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    before = api.events(number)
    for body, reason in BAD_STATUS_BODIES:
        response = api.client.post(
            f"/api/v1/cases/{number}/status",
            content=body,
            headers={**api.headers("ana"), "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (body, response.text)
        assert reason in response.json()["error"], body
    assert api.events(number) == before
    assert api.get("ana", f"/api/v1/cases/{number}").json()["status"] == "new"


def test_status_of_an_unknown_case_is_404(api: Api) -> None:
    response = api.post_status("root", "1234567890", {"status": "closed"})
    assert response.status_code == 404


# ---------------------------------------------------------------- reference data
def test_departments_and_categories_come_from_the_configuration(api: Api, config: Config) -> None:
    departments = api.get("ana", "/api/v1/departments")
    assert departments.status_code == 200
    codes = [d["code"] for d in departments.json()]
    assert codes == list(config.departments)
    assert {"ALIM", "GEN", "ATC"} <= set(codes)
    for d in departments.json():
        assert isinstance(d["name"], str) and d["name"]
    alim = next(d for d in departments.json() if d["code"] == "ALIM")
    assert alim["name"] == "Asistencia Alimentaria"

    categories = api.get("ana", "/api/v1/categories")
    assert categories.status_code == 200
    by_code = {c["code"]: c for c in categories.json()}
    assert set(by_code) == set(config.categories)
    for c in categories.json():
        assert c["department"] in codes
        assert isinstance(c["name"], str) and c["name"]
    assert by_code["tarjeta-alimentar"]["department"] == "ALIM"
    assert by_code["violencia-genero"]["department"] == "GEN"
    assert by_code["consulta-general"]["department"] == "ATC"


# ---------------------------------------------------------------- audit
def test_views_and_status_changes_are_audited(api: Api) -> None:
    number = api.open_case(FOOD, "+5491155550001")
    urgent = api.open_case(URGENT, "+5491155550002")
    api.get("ana", "/api/v1/cases", phone="+5491155550001")
    api.get("ana", f"/api/v1/cases/{number}")
    api.post_status("ana", number, {"status": "in_progress", "note": "llamamos"})
    api.post_status("ana", number, {"status": "in_progress"})  # refused: 409
    api.get("ana", f"/api/v1/cases/{urgent}")  # not hers: 404
    api.get("gema", f"/api/v1/cases/{urgent}")

    with api.session() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    trail = [(r.actor, r.action, r.target_id) for r in rows]
    assert trail == [
        ("ana", "case.list", "*"),
        ("ana", "case.view", number),
        ("ana", "case.status", number),
        ("gema", "case.view", urgent),
    ]
    listed, _, changed, _ = rows
    assert listed.detail is not None and listed.detail["count"] == 1
    assert changed.detail == {"status": "in_progress"}
    for row in rows:
        assert row.at.tzinfo is not None


def test_concurrent_status_changes_are_checked_against_the_committed_status(api: Api) -> None:
    """Two operators closing at once: the second sees the first's change and gets 409."""
    number = api.open_case(FOOD, "+5491155550001")
    api.set_status(number, "resolved")
    answers: list[int] = []
    with api.session() as s, s.begin():
        # Another operator's change, not yet committed, holding the case row.
        s.execute(update(Case).where(Case.tracking_number == number).values(status="closed"))
        worker = threading.Thread(
            target=lambda: answers.append(
                api.post_status("ana", number, {"status": "closed"}).status_code
            )
        )
        worker.start()
        time.sleep(0.5)  # let the request reach the database and wait on the row
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert answers == [409]
    case = api.get("ana", f"/api/v1/cases/{number}").json()
    assert [e["kind"] for e in case["events"]].count("status_changed") == 0


# ---------------------------------------------------------------- request bounds
def test_a_note_over_the_cap_is_400_and_changes_nothing(api: Api) -> None:
    from casestore.cases import NOTE_MAX

    number = api.open_case(FOOD, "+5491155550001")
    too_long = api.post_status(
        "ana", number, {"status": "in_progress", "note": "x" * (NOTE_MAX + 1)}
    )
    assert too_long.status_code == 400 and f"at most {NOTE_MAX}" in too_long.json()["error"]
    assert api.events(number) == 0
    assert api.get("ana", f"/api/v1/cases/{number}").json()["status"] == "new"
    fits = api.post_status("ana", number, {"status": "in_progress", "note": "x" * NOTE_MAX})
    assert fits.status_code == 200


def test_the_status_body_is_read_only_up_to_the_limit(api: Api) -> None:
    """A chunked body with no Content-Length is refused with 413 as soon as it passes 64 KiB:
    the route stops reading there instead of taking in everything the client sends."""
    number = api.open_case(FOOD, "+5491155550001")
    chunk = b" " * (16 * 1024)
    chunks_sent = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal chunks_sent
        chunks_sent += 1
        return {"type": "http.request", "body": chunk, "more_body": chunks_sent < 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": f"/api/v1/cases/{number}/status",
        "raw_path": f"/api/v1/cases/{number}/status".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"ventanilla.example.test"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            *[(k.lower().encode(), v.encode()) for k, v in api.headers("ana").items()],
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("ventanilla.example.test", 443),
        "state": {},
    }
    portal = api.client.portal
    assert portal is not None
    portal.call(api.client.app, scope, receive, send)
    assert sent[0]["status"] == 413
    assert chunks_sent <= 5  # 64 KiB and one chunk more, not 1000 chunks (16 MiB)
    assert api.events(number) == 0


@pytest.mark.parametrize("edge", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+05:00"])
def test_a_time_with_no_utc_equivalent_is_a_400(client: TestClient, token: str, edge: str) -> None:
    response = client.get(
        "/api/v1/surveys/scores",
        params={"from": edge},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "from: not an RFC 3339 time"}
