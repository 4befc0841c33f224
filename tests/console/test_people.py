"""Phones are contact points: operators link them to people, a phone may be shared."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.db import make_engine
from casestore.models import Person, PersonPhone
from tests.console.conftest import log_in
from tests.helpers import post_twilio, twilio_form

MOTHER_PHONE = "+5491155550701"
FAMILY_PHONE = "+5491155550702"


def open_case(client: TestClient, text: str, phone: str) -> str:
    reply = post_twilio(client, twilio_form(text, sender=phone)).text
    return re.search(r"(\d{4} \d{4} \d{2})", reply).group(1).replace(" ", "")  # type: ignore[union-attr]


def record_person(client: TestClient, csrf: str, number: str, name: str, dni: str) -> str:
    response = client.post(
        f"/console/cases/{number}",
        data={"csrf_token": csrf, "action": "person", "name": name, "national_id": dni},
    )
    assert response.status_code == 200, response.text
    return response.text


def test_one_person_two_phones_and_one_shared_phone(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    first = open_case(client, "No me llega la tarjeta alimentar", MOTHER_PHONE)
    second = open_case(client, "Pido mercaderia para el comedor", FAMILY_PHONE)
    third = open_case(client, "Consulta por la tarjeta alimentar de mi hijo", FAMILY_PHONE)
    add_operator("ana", departments=("ALIM",))
    csrf = log_in(client, "ana")
    record_person(client, csrf, first, "Marta Gomez", "20111222")
    page = record_person(client, csrf, second, "Marta Gomez", "20111222")
    assert MOTHER_PHONE in page and FAMILY_PHONE in page  # this person's phones
    page = record_person(client, csrf, third, "Jorge Gomez", "30111222")
    assert "Marta Gomez" in page and "Jorge Gomez" in page  # people who use this phone
    engine = make_engine(db_url)
    with Session(engine) as session:
        people = {p.national_id: p.id for p in session.scalars(select(Person))}
        links = session.execute(select(PersonPhone.person_id, PersonPhone.contact_id)).all()
    engine.dispose()
    assert set(people) == {"20111222", "30111222"}
    assert len(links) == 3
    bad = client.post(
        f"/console/cases/{first}",
        data={"csrf_token": csrf, "action": "person", "name": "X", "national_id": "12"},
    )
    assert bad.status_code == 400 and "DNI" in bad.text


def test_erasure_removes_the_person_and_links(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    number = open_case(client, "Tarjeta alimentar", MOTHER_PHONE)
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    record_person(client, csrf, number, "Marta Gomez", "20111222")
    erased = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "national_id": "20111222", "action": "erase", "confirm": "yes"},
    )
    assert erased.status_code == 200
    engine = make_engine(db_url)
    with Session(engine) as session:
        assert session.scalars(select(Person)).all() == []
        assert session.scalars(select(PersonPhone)).all() == []
    engine.dispose()
