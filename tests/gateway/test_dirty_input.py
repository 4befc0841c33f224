"""Bytes the database cannot store: every field is cleaned once at the edge, so a NUL (GSM-7
"@"), a lone surrogate or an overlong provider id never loses a message, never a 5xx."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import is_refused_input, is_unreachable, make_engine
from casestore.fit import column_length, fit_ref
from casestore.models import AuditEvent, CaseEvent, Interaction
from casestore.operators import create_operator
from gateway.forms import clean_json, clean_text
from gateway.settings import Settings
from tests.console.conftest import PASSWORD, log_in
from tests.helpers import AT_TOKEN, Db, at_form, counts, post_at, post_twilio, sign, twilio_form
from tests.settings import POSTGRES_ADMIN_URL

TRACKING = re.compile(r"(\d{4} \d{4} \d{2})")
NUL_TEXT = "Hola\x00 no me llega la tarjeta alimentar\x07 \x1b"
CLEAN_TEXT = "Hola no me llega la tarjeta alimentar "


def number_in(text: str) -> str:
    match = TRACKING.search(text)
    assert match, text
    return match.group(1).replace(" ", "")


# ---------------------------------------------------------------- the pure functions
def test_clean_text_drops_controls_keeps_line_breaks_replaces_lone_surrogates() -> None:
    assert clean_text("a\x00b\x01c\td\ne\rf\x1fg") == "abc\td\ne\rfg"
    assert clean_text("x\ud800y\udfffz") == "x\ufffdy\ufffdz"
    assert clean_text("ñandú 😀 @") == "ñandú 😀 @"
    assert clean_json({"a\x00": ["b\x00", {"c": "\ud83d"}], "n": 1}) == {
        "a": ["b", {"c": "\ufffd"}],
        "n": 1,
    }


def test_long_ids_become_a_deterministic_prefix_and_digest() -> None:
    limit = column_length(Interaction.provider_ref)
    assert limit == 80
    long_id = "SM" + "a" * 300
    fitted = fit_ref(long_id, limit)
    assert len(fitted) == limit and fitted.startswith("SMaaa")
    assert fit_ref(long_id, limit) == fitted
    assert fit_ref(long_id + "b", limit) != fitted
    assert fit_ref("SM123", limit) == "SM123"


# ---------------------------------------------------------------- provider webhooks
def test_nul_in_signed_twilio_sms_is_stored_cleaned(client: TestClient, db_url: str) -> None:
    form = twilio_form(NUL_TEXT, sender="+5491155550401")
    response = post_twilio(client, form)  # signed over the fields as sent, NUL included
    assert response.status_code == 200, response.text
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description == CLEAN_TEXT
        assert number_in(response.text) == case.tracking_number
    # The signature is still checked, over the received fields.
    bad = client.post(
        "/webhooks/twilio/sms",
        data=twilio_form(NUL_TEXT),
        headers={"X-Twilio-Signature": sign("/webhooks/twilio/sms", twilio_form("otro"))},
    )
    assert bad.status_code == 403


def test_nul_in_africastalking_sms_is_stored_cleaned(client: TestClient, db_url: str) -> None:
    response = post_at(client, at_form(NUL_TEXT, sender="+5491155550402"))
    assert response.status_code == 200, response.text
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description == CLEAN_TEXT


def test_lone_surrogate_and_invalid_utf8_in_sms_are_replaced(
    client: TestClient, db_url: str
) -> None:
    body = (
        urlencode(at_form("placeholder", sender="+5491155550403")).replace(
            "placeholder", "sin%ED%A0%80agua%FF%00"
        )
    ).encode()
    response = client.post(
        f"/webhooks/africastalking/sms?token={AT_TOKEN}",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description.startswith("sin") and case.description.endswith("agua\ufffd")
        assert "\x00" not in case.description


def test_overlong_message_sid_is_kept_and_still_deduplicated(
    client: TestClient, db_url: str
) -> None:
    sid = "SM" + uuid.uuid4().hex * 8  # 258 characters: over the 80 of the column
    form = twilio_form("Necesito chapas para el techo", sender="+5491155550404", MessageSid=sid)
    form["SmsSid"] = form["SmsMessageSid"] = sid
    first = post_twilio(client, form)
    assert first.status_code == 200, first.text
    before = counts(db_url)
    again = post_twilio(client, form)
    assert (again.status_code, again.text) == (200, first.text)
    assert counts(db_url) == before
    with Db(db_url) as db:
        inbound = [i for i in db.interactions() if i.direction == "in"]
        assert [i.provider_ref for i in inbound] == [fit_ref(sid, 80)]
        assert len(db.cases()) == 1


def test_overlong_africastalking_id_and_ussd_session_are_kept(
    client: TestClient, db_url: str
) -> None:
    response = post_at(
        client, at_form("Sin luz", sender="+5491155550405", ref="ATXid_" + "9" * 200)
    )
    assert response.status_code == 200, response.text
    with Db(db_url) as db:
        assert len(db.cases()) == 1


def _ussd(client: TestClient, session: str, text: str) -> str:
    form = {
        "sessionId": session,
        "serviceCode": "*384*123#",
        "phoneNumber": "+5491155550406",
        "networkCode": "72207",
        "text": text,
    }
    response = client.post(f"/webhooks/africastalking/ussd?token={AT_TOKEN}", data=form)
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("session", ["ATUid_nul", "ATUid_" + "f" * 120])
def test_ussd_free_text_with_nul_opens_the_case(
    client: TestClient, db_url: str, session: str
) -> None:
    inputs: list[str] = []
    _ussd(client, session, "")
    for value in ("1", "98", "2", "Sin gas\x00 hace 3 dias", "1"):
        inputs.append(value)
        last = _ussd(client, session, "*".join(inputs))
    assert last.startswith("END Pedido registrado."), last
    again = _ussd(client, session, "*".join(inputs))  # a redelivery: same answer, no new case
    assert again == last
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description == "Sin gas hace 3 dias"
        assert case.tracking_number == number_in(last)


def test_overlong_status_error_code_is_kept(client: TestClient) -> None:
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "failed", "ErrorCode": "9" * 100}
    response = post_twilio(client, form, path="/webhooks/twilio/status")
    assert response.status_code == 404  # unknown message id: refused cleanly, not a 5xx


# ---------------------------------------------------------------- the JSON API
def test_api_query_and_note_with_nul_and_surrogates(
    client: TestClient, db_url: str, token: str
) -> None:
    reply = post_twilio(client, twilio_form("No me llega la tarjeta alimentar")).text
    number = number_in(reply)
    headers = {"Authorization": f"Bearer {token}"}
    for params in ({"q": "tarjeta\x00"}, {"department": "ALIM\x00"}, {"status": "new\x00"}):
        response = client.get("/api/v1/cases", params=params, headers=headers)
        assert response.status_code == 200, (params, response.text)
        assert [c["tracking_number"] for c in response.json()["items"]] == [number]
    raw = b'{"status": "in_progress", "note": "llamar\\u0000 al \\ud800 vecino"}'
    response = client.post(
        f"/api/v1/cases/{number}/status",
        content=raw,
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    engine = make_engine(db_url)
    with Session(engine) as session:
        texts = list(
            session.scalars(select(CaseEvent.text).where(CaseEvent.kind == "status_changed"))
        )
    engine.dispose()
    assert "llamar al \ufffd vecino" in texts


# ---------------------------------------------------------------- the console
def add_operator(db_url: str, config: Config, username: str) -> None:
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        create_operator(
            session, username, "operator", ["ALIM"], config.departments.keys(), password=PASSWORD
        )
    engine.dispose()


def test_console_login_search_and_note_with_nul(
    client: TestClient, db_url: str, config: Config
) -> None:
    reply = post_twilio(client, twilio_form("No me llega la tarjeta alimentar")).text
    number = number_in(reply)
    add_operator(db_url, config, "ana")
    failed = client.post(
        "/console/login", data={"username": "ana\x00" + "x" * 300, "password": "a"}
    )
    assert failed.status_code == 401
    token = log_in(client, "ana\x00")
    search = client.get("/console", params={"q": "tarjeta\x00", "department": "ALIM\x00"})
    assert search.status_code == 200
    assert number in search.text.replace(" ", "")
    noted = client.post(
        f"/console/cases/{number}",
        data={"csrf_token": token, "action": "note", "text": "llamó\x00 la vecina"},
        follow_redirects=False,
    )
    assert noted.status_code < 400, noted.text
    engine = make_engine(db_url)
    with Session(engine) as session:
        notes = list(session.scalars(select(CaseEvent.text).where(CaseEvent.kind == "note")))
        actors = list(session.scalars(select(AuditEvent.actor)))
    engine.dispose()
    assert "llamó la vecina" in notes
    assert all(len(actor) <= 64 for actor in actors)


def test_console_multipart_form_with_nul_is_cleaned(
    client: TestClient, db_url: str, config: Config
) -> None:
    number = number_in(post_twilio(client, twilio_form("Necesito chapas para el techo")).text)
    add_operator(db_url, config, "bea")
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        from casestore.models import Operator, OperatorDepartment

        operator = session.scalar(select(Operator).where(Operator.username == "bea"))
        assert operator is not None
        session.add(OperatorDepartment(operator_id=operator.id, department="HAB"))
    engine.dispose()
    token = log_in(client, "bea")
    fields = {"csrf_token": token, "action": "note", "text": "vino\x00 el vecino\x01"}
    noted = client.post(
        f"/console/cases/{number}",
        files={k: (None, v) for k, v in fields.items()},
        follow_redirects=False,
    )
    assert noted.status_code < 400, noted.text
    engine = make_engine(db_url)
    with Session(engine) as session:
        notes = list(session.scalars(select(CaseEvent.text).where(CaseEvent.kind == "note")))
    engine.dispose()
    assert "vino el vecino" in notes


def test_unreachable_is_told_from_refused(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    closed = make_engine("postgresql://nobody@127.0.0.1:9/none")
    with pytest.raises(DBAPIError) as down:
        closed.connect()
    closed.dispose()
    assert is_unreachable(down.value) and not is_refused_input(down.value)
    missing = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(DBAPIError) as gone:
        missing.connect()
    missing.dispose()
    assert is_unreachable(gone.value)
    engine = make_engine(POSTGRES_ADMIN_URL)
    with pytest.raises(DBAPIError) as refused, engine.connect() as conn:
        conn.execute(text("SELECT :v"), {"v": "a\x00b"})
    engine.dispose()
    assert is_refused_input(refused.value) and not is_unreachable(refused.value)


def test_a_refused_value_is_a_400_and_only_an_unreachable_database_a_503(
    settings: Settings, config: Config
) -> None:
    """The app's handler for database errors that reach it: the driver's classes decide."""
    from sqlalchemy import text
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from gateway.app import create_app

    def refused(request: Request) -> Response:
        engine = make_engine(POSTGRES_ADMIN_URL)  # PostgreSQL refuses a NUL; SQLite keeps it
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT :v"), {"v": "a\x00b"})  # past the cleaning on purpose
        finally:
            engine.dispose()
        return Response("unreachable code")

    def unreachable(request: Request) -> Response:
        engine = make_engine("postgresql://nobody@127.0.0.1:9/none")
        try:
            engine.connect()
        finally:
            engine.dispose()
        return Response("unreachable code")

    app = create_app(settings, config)
    app.router.routes += [Route("/refused", refused), Route("/unreachable", unreachable)]
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        response = client.get("/refused")
        assert response.status_code == 400
        assert "cannot store" in response.json()["error"]
        down = client.get("/unreachable")
        assert (down.status_code, down.json()) == (503, {"error": "database unavailable"})
