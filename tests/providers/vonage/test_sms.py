"""Vonage SMS end to end: signed JSON in, a case, the reply sent by the worker through the
Messages API (the fake), and Vonage's status webhook recorded on the outbox row."""

from __future__ import annotations

import re

import redis
from sqlalchemy import update
from starlette.testclient import TestClient

from casestore.models import OutboundMessage
from tests.fakeprovider import FakeProvider
from tests.helpers import Db
from tests.providers.vonage.support import (
    inbound_sms,
    post_vonage,
)
from tests.test_outbox_worker import burst

TRACKING = re.compile(r"\b(\d{4} \d{4} \d{1,4})\b")


def test_request_opens_case_and_the_worker_sends_the_receipt(
    vonage_client: TestClient, db_url: str, vonage_worker: redis.Redis, fake_provider: FakeProvider
) -> None:
    message = inbound_sms("Hola, no me llega la tarjeta alimentar")
    response = post_vonage(vonage_client, "/webhooks/vonage/sms", message)
    assert response.status_code == 200
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.channel, case.category) == ("sms", "tarjeta-alimentar")
        (contact,) = db.contacts()
        assert contact.phone == "+5491155550001"  # Vonage's bare number, stored in E.164
        (queued,) = db.outbox()
        assert (queued.provider, queued.status) == ("vonage", "pending")
        assert case.tracking_number in queued.body.replace(" ", "")
    assert burst(db_url, vonage_worker) == 1
    (sent,) = fake_provider.messages
    assert (sent.provider, sent.to, sent.from_) == ("vonage", "5491155550001", "5491155550900")
    assert TRACKING.search(sent.body)
    with Db(db_url) as db:
        (row,) = db.outbox()
        assert (row.status, row.provider_ref) == ("sent", sent.ref)
    # Vonage reports the delivery: the outbox row follows; a late "submitted" never moves it back.
    status = {
        "message_uuid": sent.ref,
        "to": "5491155550001",
        "from": "5491155550900",
        "timestamp": "2026-11-22T14:03:20Z",
        "status": "delivered",
        "channel": "sms",
    }
    assert post_vonage(vonage_client, "/webhooks/vonage/status", status).status_code == 200
    late = dict(status, status="submitted")
    assert post_vonage(vonage_client, "/webhooks/vonage/status", late).status_code == 200
    with Db(db_url) as db:
        assert db.outbox()[0].status == "delivered"
    unknown = post_vonage(vonage_client, "/webhooks/vonage/status", dict(status, message_uuid="x"))
    assert unknown.status_code == 404


def test_redelivery_creates_nothing_new(vonage_client: TestClient, db_url: str) -> None:
    message = inbound_sms("Necesito turno para el DNI")
    assert post_vonage(vonage_client, "/webhooks/vonage/sms", message).status_code == 200
    assert post_vonage(vonage_client, "/webhooks/vonage/sms", message).status_code == 200
    with Db(db_url) as db:
        assert len(db.cases()) == 1 and len(db.outbox()) == 1


def test_urgent_message_is_flagged_and_answered_with_emergency_lines(
    vonage_client: TestClient, db_url: str
) -> None:
    message = inbound_sms("Mi pareja me pega, tengo miedo")
    assert post_vonage(vonage_client, "/webhooks/vonage/sms", message).status_code == 200
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.urgent and case.priority == "urgent"
        assert (case.category, case.department) == ("violencia-genero", "GEN")
        (reply,) = db.outbox()
        assert "144" in reply.body and "911" in reply.body


def test_rejected_status_records_the_error(vonage_client: TestClient, db_url: str) -> None:
    post_vonage(vonage_client, "/webhooks/vonage/sms", inbound_sms("Consulta"))
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(update(OutboundMessage).values(status="sent", provider_ref="uuid-sent-1"))
    report = {
        "message_uuid": "uuid-sent-1",
        "status": "undeliverable",
        "timestamp": "2026-11-22T14:03:20Z",
        "error": {"type": "https://developer.vonage.com/api-errors/messages#1320", "title": "1320",
                  "detail": "Message failed because the number is not reachable"},
    }  # fmt: skip
    assert post_vonage(vonage_client, "/webhooks/vonage/status", report).status_code == 200
    with Db(db_url) as db:
        (row,) = db.outbox()
        assert row.status == "undelivered"
