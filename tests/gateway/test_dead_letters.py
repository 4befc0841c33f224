"""A contact the database refuses even after cleaning is acknowledged and kept raw as a dead
letter (in the database, else in a file under [storage] var_dir), and supervisors see it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore import dead_letters
from casestore.config import Config
from casestore.db import make_engine
from casestore.models import DeadLetter
from casestore.operators import create_operator
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.console.conftest import PASSWORD, log_in
from tests.helpers import AT_TOKEN, Db, at_form, post_at, post_twilio, twilio_form

REFUSED_WORD = "rechazame"
FOOD = f"No me llega la tarjeta alimentar {REFUSED_WORD}\x00"


@contextlib.contextmanager
def refusing(db_url: str, table: str, column: str) -> Iterator[None]:
    """Make the database refuse rows of `table` whose `column` holds REFUSED_WORD."""
    engine = make_engine(db_url)
    name = f"refuse_{table}"
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                    f"CHECK ({column} NOT LIKE '%{REFUSED_WORD}%')"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    f"WHEN NEW.{column} LIKE '%{REFUSED_WORD}%' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
            else:
                conn.execute(text(f"DROP TRIGGER {name}"))
        engine.dispose()


@pytest.fixture
def var_client(settings: Settings, config: Config, tmp_path: Path) -> Iterator[TestClient]:
    storage = {"var_dir": str(tmp_path / "var")}
    app = create_app(settings, replace(config, raw={**config.raw, "storage": storage}))
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


def letters(db_url: str) -> list[DeadLetter]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))
    engine.dispose()
    return rows


def add_operator(db_url: str, config: Config, name: str, role: str, *departments: str) -> None:
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        create_operator(
            session, name, role, list(departments), config.departments.keys(), password=PASSWORD
        )
    engine.dispose()


def test_refused_sms_is_acknowledged_and_kept_raw(var_client: TestClient, db_url: str) -> None:
    form = twilio_form(FOOD, sender="+5491155550501")
    with refusing(db_url, "interactions", "text"):
        twilio = post_twilio(var_client, form)
        at = post_at(var_client, at_form(FOOD, sender="+5491155550502"))
    assert twilio.status_code == 200, twilio.text
    assert "<Message>" not in twilio.text  # no receipt: there is no case
    assert at.status_code == 200, at.text
    with Db(db_url) as db:
        assert db.cases() == [] and db.interactions() == []
    twilio_letter, at_letter = letters(db_url)
    assert (twilio_letter.provider, twilio_letter.channel) == ("twilio", "sms")
    assert twilio_letter.provider_ref == form["MessageSid"]
    assert twilio_letter.department == "ALIM"
    assert twilio_letter.route == "/webhooks/twilio/sms"
    assert json.loads(twilio_letter.payload)["Body"] == FOOD  # raw: the NUL is kept
    assert at_letter.provider == "africastalking"
    assert json.loads(at_letter.payload)["text"] == FOOD


def test_letter_goes_to_a_file_when_the_database_refuses_it_too(
    var_client: TestClient, db_url: str, config: Config, tmp_path: Path
) -> None:
    with refusing(db_url, "interactions", "text"), refusing(db_url, "dead_letters", "payload"):
        response = post_twilio(var_client, twilio_form(FOOD, sender="+5491155550503"))
    assert response.status_code == 200, response.text
    assert letters(db_url) == []
    (line,) = (tmp_path / "var" / "dead-letters.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert json.loads(kept["payload"])["Body"] == FOOD
    add_operator(db_url, config, "jefa", "admin")
    token = log_in(var_client, "jefa")
    page = var_client.get("/console/dead-letters")
    assert page.status_code == 200
    assert "Mensajes sin guardar" in page.text and "guardado en archivo" in page.text
    assert "tarjeta alimentar" in page.text
    done = var_client.post(
        "/console/dead-letters",
        data={"csrf_token": token, "id": f"file-{kept['id']}"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "tarjeta alimentar" not in var_client.get("/console/dead-letters").text


def test_console_shows_letters_by_department_and_marks_them_handled(
    var_client: TestClient, db_url: str, config: Config
) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        ids = {
            department: dead_letters.keep(
                session,
                dead_letters.Letter(
                    received_at=now,
                    channel="sms",
                    provider="twilio",
                    route="/webhooks/twilio/sms",
                    provider_ref=f"SM-{department}",
                    department=department,
                    fields={"Body": f"pedido de {department or 'nadie'}\x00"},
                    error="DataError: refused",
                ),
            )
            for department in ("ALIM", "HAB", None)
        }
    engine.dispose()
    add_operator(db_url, config, "ope", "operator", "ALIM")
    add_operator(db_url, config, "sup", "supervisor", "ALIM")
    add_operator(db_url, config, "jefa", "admin")

    log_in(var_client, "ope")
    assert var_client.get("/console/dead-letters").status_code == 403

    token = log_in(var_client, "sup")
    page = var_client.get("/console/dead-letters").text
    assert "pedido de ALIM" in page and "pedido de HAB" not in page and "de nadie" not in page
    assert "Alimentaria" in page or config.departments["ALIM"].label("es") in page
    other = var_client.post(
        "/console/dead-letters", data={"csrf_token": token, "id": f"db-{ids['HAB']}"}
    )
    assert other.status_code == 404
    own = var_client.post(
        "/console/dead-letters",
        data={"csrf_token": token, "id": f"db-{ids['ALIM']}"},
        follow_redirects=False,
    )
    assert own.status_code == 303
    assert "pedido de ALIM" not in var_client.get("/console/dead-letters").text
    assert "pedido de ALIM" in var_client.get("/console/dead-letters?all=1").text

    log_in(var_client, "jefa")
    page = var_client.get("/console/dead-letters").text
    assert "pedido de HAB" in page and "pedido de nadie" in page
    (handled,) = [row for row in letters(db_url) if row.resolved_at is not None]
    assert (handled.department, handled.resolved_by) == ("ALIM", "sup")


def test_refused_ussd_request_is_kept_and_the_session_ends_politely(
    var_client: TestClient, db_url: str
) -> None:
    session = "ATUid_dead_letter"
    inputs: list[str] = []

    def send(text_: str) -> str:
        form = {
            "sessionId": session,
            "serviceCode": "*384*123#",
            "phoneNumber": "+5491155550506",
            "networkCode": "72207",
            "text": text_,
        }
        response = var_client.post(f"/webhooks/africastalking/ussd?token={AT_TOKEN}", data=form)
        assert response.status_code == 200, response.text
        return response.text

    send("")
    with refusing(db_url, "cases", "description"):
        for value in ("1", "98", "2", f"sin gas {REFUSED_WORD}\x00", "1"):
            inputs.append(value)
            last = send("*".join(inputs))
    assert last.startswith("END "), last
    with Db(db_url) as db:
        assert db.cases() == []
    (letter,) = letters(db_url)
    assert (letter.channel, letter.provider) == ("ussd", "africastalking")
    assert REFUSED_WORD in json.loads(letter.payload)["text"]


def test_a_refused_urgent_sms_still_gets_the_emergency_lines(
    var_client: TestClient, db_url: str, config: Config
) -> None:
    """Urgent always wins: with no case there is no receipt, but the emergency lines go back
    in Twilio's answer at once."""
    urgent = f"ayuda mi pareja me pego, violencia de genero {REFUSED_WORD}"
    with refusing(db_url, "interactions", "text"):
        response = post_twilio(var_client, twilio_form(urgent, sender="+5491155550503"))
    assert response.status_code == 200, response.text
    assert config.emergency_lines["es"].split(".")[0] in response.text  # "Emergencias 911"
    ((letter),) = letters(db_url)
    assert json.loads(letter.payload)["Body"] == urgent
