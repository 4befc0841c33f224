"""A flood from a number with no case is kept unlinked: supervisors find the number and its
messages on the console's list of limited numbers (and a notice on the case list)."""

from __future__ import annotations

from collections.abc import Callable

from casestore.config import Limits
from tests.conftest import Client
from tests.console.conftest import log_in
from tests.gateway.test_ussd import Phone
from tests.helpers import Db, post_twilio, twilio_form

PHONE = "+5491155550351"
SPAM = [f"Gane un premio, responda YA {i}" for i in range(3)]


def test_a_flood_with_no_case_is_listed_with_its_messages(
    client_with: Client, db_url: str, add_operator: Callable[..., str]
) -> None:
    client = client_with(Limits(sms_per_minute=2, new_cases_per_day=0))
    for text in ["AYUDA", "AYUDA", *SPAM]:  # keywords open no case; then over the limit
        post_twilio(client, twilio_form(text, sender=PHONE))
    with Db(db_url) as db:
        assert db.cases() == []
        kept = [i.text for i in db.interactions() if i.direction == "in" and i.case_id is None]
        assert kept[2:] == SPAM  # stored, linked to no case
        assert db.contacts()[0].limit_hit == "sms_per_minute"

    add_operator("ana")
    log_in(client, "ana")
    assert "/console/limited" not in client.get("/console").text
    assert client.get("/console/limited").status_code == 403  # no department: supervisors
    client.cookies.clear()

    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    listing = client.get("/console").text
    assert "1 número(s) superaron un límite" in listing and 'href="/console/limited"' in listing
    page = client.get("/console/limited")
    assert page.status_code == 200
    assert PHONE in page.text and "SMS por minuto: más de 2" in page.text
    assert all(text in page.text for text in SPAM)
    assert "3 mensaje(s) sin pedido" not in page.text  # the two AYUDA count as well
    assert "5 mensaje(s) sin pedido" in page.text

    bad = client.post("/console/limited", data={"csrf_token": csrf, "id": "abc"})
    assert bad.status_code == 400 and "id must be a whole number" in bad.text
    with Db(db_url) as db:
        contact_id = db.contacts()[0].id
    reviewed = client.post("/console/limited", data={"csrf_token": csrf, "id": str(contact_id)})
    assert reviewed.status_code == 200 and "No hay números limitados" in reviewed.text
    assert "superaron un límite" not in client.get("/console").text


def test_a_ussd_flood_from_a_new_number_is_listed(
    client_with: Client, db_url: str, add_operator: Callable[..., str]
) -> None:
    client = client_with(Limits(ussd_sessions_per_hour=1))
    for _ in range(3):
        Phone(client, PHONE).dial()
    with Db(db_url) as db:
        (contact,) = db.contacts()
        assert (contact.phone, contact.limit_hit) == (PHONE, "ussd_sessions_per_hour")
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    log_in(client, "sofia")
    page = client.get("/console/limited").text
    assert PHONE in page and "Sesiones USSD por hora: más de 1" in page
