"""Builders for signed provider requests and database look-ups used across tests."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from casestore.db import make_engine
from casestore.models import Base, Case, Contact, Interaction, OutboundMessage
from casestore.operators import create_operator, create_token

_sids = itertools.count(1)
TWILIO_TOKEN = "test-twilio-auth-token"
PUBLIC_URL = "https://ventanilla.example.test"
AT_TOKEN = "test-at-webhook-token"


def message_sid() -> str:
    return f"SM{next(_sids):032x}"


def twilio_form(body: str, sender: str = "+5491155550001", **extra: str) -> dict[str, str]:
    """A real-shaped Twilio inbound SMS form (blank ToCity/ToZip included, as Twilio sends)."""
    sid = extra.pop("MessageSid", None) or message_sid()
    form = {
        "ToCountry": "AR",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "AR",
        "To": "+5491155559999",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def sign(path: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(PUBLIC_URL + path, form))


def post_twilio(
    client: TestClient, form: dict[str, str], path: str = "/webhooks/twilio/sms"
) -> Any:
    return client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})


def at_form(text: str, sender: str = "+5491155550001", ref: str | None = None) -> dict[str, str]:
    return {
        "linkId": "",
        "text": text,
        "to": "22384",
        "id": ref or f"ATXid_{next(_sids):024x}",
        "date": "2026-11-22 14:03:11",
        "from": sender,
        "networkCode": "99999",
    }


def post_at(client: TestClient, form: dict[str, str], kind: str = "sms") -> Any:
    return client.post(f"/webhooks/africastalking/{kind}?token={AT_TOKEN}", data=form)


def admin_token(db_url: str, departments: Collection[str]) -> str:
    """Create the operator "admin" (every department) and return a new API token for it."""
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        create_operator(session, "admin", "admin", [], departments)
        session.flush()
        value = create_token(session, "admin")
    engine.dispose()
    return value


def counts(db_url: str) -> dict[str, int]:
    """Rows per table: the proof that a refused request changed nothing."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        result = {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables
        }
    engine.dispose()
    return result


class Db:
    """A small ORM view of the test database."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()

    def cases(self) -> list[Case]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Case).order_by(Case.id)))

    def contacts(self) -> list[Contact]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Contact).order_by(Contact.id)))

    def interactions(self) -> list[Interaction]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Interaction).order_by(Interaction.id)))

    def outbox(self) -> list[OutboundMessage]:
        with Session(self.engine) as s:
            return list(s.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
