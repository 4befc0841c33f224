"""Abuse limits over the real stack ([limits]): SMS per number and minute, new cases per
citizen and day, USSD sessions per number and hour. Each keeps what the citizen sent, tells
the citizen (or stays silent, for a flood), never refuses an urgent message, and shows on the
case for operators: timeline event, console list marker, API event list."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.config import Limits
from casestore.models import CaseEvent, Contact
from tests.conftest import Client
from tests.gateway.test_ussd import Phone
from tests.helpers import Db, at_form, post_at, post_twilio, twilio_form

PHONE = "+5491155550301"
URGENT = "ayuda mi pareja me pego, violencia de genero, tengo miedo"


def reply_of(xml: str) -> str:
    match = re.search(r"<Message>(.*)</Message>", xml, re.S)
    return match.group(1) if match else ""


def limit_events(db_url: str) -> list[CaseEvent]:
    with Db(db_url) as db, Session(db.engine) as session:
        return list(
            session.scalars(
                select(CaseEvent).where(CaseEvent.kind == "limit_hit").order_by(CaseEvent.id)
            )
        )


def texts_on(db_url: str, case_id: int) -> list[str]:
    with Db(db_url) as db, Session(db.engine) as session:
        return list(
            session.scalars(
                select(CaseEvent.text)
                .where(CaseEvent.case_id == case_id, CaseEvent.kind.in_(["created", "message_in"]))
                .order_by(CaseEvent.id)
            )
        )


# ---------------------------------------------------------------- SMS per number and minute


def test_sms_flood_is_kept_but_not_answered_and_urgent_still_wins(
    client_with: Client, db_url: str, token: str
) -> None:
    client = client_with(Limits(sms_per_minute=3, new_cases_per_day=0))
    sent = [f"Necesito mercaderia, mensaje {i}" for i in range(1, 6)]
    replies = [reply_of(post_twilio(client, twilio_form(t, sender=PHONE)).text) for t in sent]
    assert "recibimos su pedido" in replies[0] and "sumamos su mensaje" in replies[1]
    assert replies[2] and replies[3:] == ["", ""]  # over the limit: no automatic reply
    with Db(db_url) as db:
        (case,) = db.cases()
        assert [i.text for i in db.interactions() if i.direction == "in"] == sent
        assert case.limit_hit_at is not None
    assert texts_on(db_url, case.id) == sent  # every message kept on the case
    (event,) = limit_events(db_url)  # marked once per flood, not once per message
    assert (event.case_id, event.actor, event.data) == (
        case.id,
        "system",
        {"limit": "sms_per_minute", "max": 3},
    )
    # Urgent is never refused: a case, the emergency lines, at once.
    urgent = reply_of(post_twilio(client, twilio_form(URGENT, sender=PHONE)).text)
    assert "URGENTE" in urgent and "144" in urgent
    with Db(db_url) as db:
        assert [c.urgent for c in db.cases()] == [False, True]
    detail = client.get(
        f"/api/v1/cases/{case.tracking_number}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert "limit_hit" in [e["kind"] for e in detail["events"]]


def test_sms_flood_over_africastalking_sends_nothing_more(client_with: Client, db_url: str) -> None:
    client = client_with(Limits(sms_per_minute=2, new_cases_per_day=0))
    for i in range(4):
        assert post_at(client, at_form(f"Hola {i}", sender=PHONE)).status_code == 200
    with Db(db_url) as db:
        assert len([m for m in db.outbox() if m.kind == "reply"]) == 2
        assert len([i for i in db.interactions() if i.direction == "in"]) == 4
        assert len(db.cases()) == 1


# ---------------------------------------------------------------- new cases per citizen and day


def test_new_cases_over_the_daily_limit_join_the_latest_open_case(
    client_with: Client, db_url: str
) -> None:
    # A zero conversation window: every message would open a new case.
    client = client_with(
        Limits(sms_per_minute=0, new_cases_per_day=2), conversation_window_minutes=0
    )
    first = reply_of(post_twilio(client, twilio_form("Necesito chapas", sender=PHONE)).text)
    second = reply_of(post_twilio(client, twilio_form("Y un colchon", sender=PHONE)).text)
    third = reply_of(post_twilio(client, twilio_form("Y frazadas", sender=PHONE)).text)
    assert "recibimos su pedido" in first and "recibimos su pedido" in second
    with Db(db_url) as db:
        cases = db.cases()
    assert len(cases) == 2
    latest = cases[-1]
    spaced = (
        f"{latest.tracking_number[:4]} {latest.tracking_number[4:8]} {latest.tracking_number[8:]}"
    )
    assert "varios pedidos suyos hoy" in third and spaced in third
    assert texts_on(db_url, latest.id) == ["Y un colchon", "Y frazadas"]
    (event,) = limit_events(db_url)
    assert event.case_id == latest.id and event.data == {"limit": "new_cases_per_day", "max": 2}
    # Urgent opens its own case whatever the count.
    urgent = reply_of(post_twilio(client, twilio_form(URGENT, sender=PHONE)).text)
    assert "URGENTE" in urgent
    with Db(db_url) as db:
        assert len(db.cases()) == 3
        (contact,) = db.contacts()
        assert contact.case_count == 3


# ---------------------------------------------------------------- USSD sessions per hour


def test_ussd_sessions_over_the_hourly_limit_end_with_a_notice(
    client_with: Client, db_url: str
) -> None:
    client = client_with(Limits(sms_per_minute=0, new_cases_per_day=0, ussd_sessions_per_hour=2))
    post_twilio(client, twilio_form("Necesito chapas", sender=PHONE))
    for _ in range(2):
        assert Phone(client, PHONE).dial().startswith("CON ")
    over = Phone(client, PHONE).dial()
    assert over.startswith("END ") and "Intente en una hora" in over and "911" in over
    again = Phone(client, PHONE).dial()
    assert again.startswith("END ")
    (event,) = limit_events(db_url)  # one event for the first dial over the limit
    with Db(db_url) as db:
        (case,) = db.cases()
    assert event.case_id == case.id and event.data == {"limit": "ussd_sessions_per_hour", "max": 2}


def test_ussd_limit_notice_speaks_the_citizens_language(client_with: Client, db_url: str) -> None:
    client = client_with(Limits(ussd_sessions_per_hour=1))
    post_twilio(client, twilio_form("HELP", sender=PHONE))  # an English keyword: language en
    with Db(db_url) as db, Session(db.engine) as session:
        assert session.scalars(select(Contact.language)).one() == "en"
    Phone(client, PHONE).dial()
    over = Phone(client, PHONE).dial()
    assert over.startswith("END ") and "Try again in an hour" in over
    assert limit_events(db_url) == []  # no case to mark: the phone has none


def test_a_redelivered_message_is_not_counted_again(client_with: Client, db_url: str) -> None:
    """Twilio redelivers a webhook it did not see answered: the same MessageSid is one SMS."""
    client = client_with(Limits(sms_per_minute=2, new_cases_per_day=0))
    first = twilio_form("Necesito mercaderia", sender=PHONE)
    for _ in range(4):  # the message and three redeliveries of it
        assert "recibimos su pedido" in reply_of(post_twilio(client, first).text)
    with Db(db_url) as db:
        assert db.contacts()[0].inbound_count == 1
    second = reply_of(post_twilio(client, twilio_form("y frazadas", sender=PHONE)).text)
    assert "sumamos su mensaje" in second  # the second SMS of the minute: still answered
    assert limit_events(db_url) == []
    at = at_form("Hola de nuevo", sender=PHONE, ref="ATXid_redelivered")
    for _ in range(3):
        assert post_at(client, at).status_code == 200
    with Db(db_url) as db:
        assert db.contacts()[0].inbound_count == 3
        assert len([i for i in db.interactions() if i.direction == "in"]) == 3


def test_new_cases_per_day_count_every_citizen_channel(client_with: Client, db_url: str) -> None:
    """SMS, USSD and WhatsApp from one number share one daily count of new cases."""
    client = client_with(
        Limits(sms_per_minute=0, new_cases_per_day=2, ussd_sessions_per_hour=0),
        conversation_window_minutes=0,
    )
    assert "recibimos su pedido" in reply_of(
        post_twilio(client, twilio_form("Necesito chapas", sender=PHONE)).text
    )
    done = Phone(client, PHONE).send("1", "98", "2", "Sin gas", "1")
    assert done.startswith("END Pedido registrado.")
    with Db(db_url) as db:
        assert len(db.cases()) == 2 and db.contacts()[0].case_count == 2
        first, latest = db.cases()
    # The third request today, on WhatsApp: joins the case the number last texted on, and
    # says so.
    wa = reply_of(
        post_twilio(client, twilio_form("Necesito mercaderia", sender=f"whatsapp:{PHONE}")).text
    )
    assert "varios pedidos suyos hoy" in wa
    # The fourth, on USSD: joins it too; the screen gives that case's number, the SMS says why.
    again = Phone(client, PHONE).send("1", "98", "2", "Sigo sin gas", "1")
    assert again.startswith("END Pedido registrado.") and latest.tracking_number in again.replace(
        " ", ""
    )
    with Db(db_url) as db:
        assert len(db.cases()) == 2
        last_sms = [m for m in db.outbox() if m.kind == "receipt"][-1]
        assert "varios pedidos suyos hoy" in last_sms.body
    assert texts_on(db_url, first.id) == ["Necesito chapas", "Necesito mercaderia"]
    assert texts_on(db_url, latest.id) == ["Sin gas", "Sigo sin gas"]
    assert [e.data["limit"] for e in limit_events(db_url)] == ["new_cases_per_day"] * 2
    # Urgent is never joined, over the limit or not: its own case, at once.
    urgent = Phone(client, PHONE).send("1", "1")
    assert urgent.startswith("END Pedido URGENTE") and "144" in urgent
    with Db(db_url) as db:
        assert [c.urgent for c in db.cases()] == [False, False, True]
