"""Vonage messages: recorded Messages API webhooks (testdata/sms.json) parsed (pure), then
posted signed to the real app on SQLite and PostgreSQL; then SMS end to end: signed JSON in, a
case, the reply sent by the worker through the Messages API (the fake), and Vonage's status
webhook recorded on the outbox row."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import update
from starlette.testclient import TestClient

from casestore.models import OutboundMessage
from gateway.providers.vonage import sms
from gateway.providers.vonage.webhooks import VonageWebhooks
from tests.fakeprovider import FakeProvider
from tests.helpers import Db
from tests.providers.conftest import Post
from tests.providers.harness import (
    Case,
    assert_refuses,
    expected_inbound,
    expected_status,
    load_testdata,
)
from tests.providers.vonage.support import (
    inbound_sms,
    post_vonage,
)
from tests.test_outbox_worker import burst

SMS = load_testdata(__file__, "sms")
RECEIVED_AT = datetime(2026, 11, 22, 14, 3, 11, tzinfo=UTC)


def _parse(case: Case) -> object:
    """What the parser for the case's path makes of its body (as the adapter reads it)."""
    data = sms.json_body(case.content)
    if case.path == VonageWebhooks.status_path:
        return sms.parse_status(data)
    return sms.parse_sms(data, RECEIVED_AT, "AR")


# ---------------------------------------------------------------- recorded webhooks
@pytest.mark.parametrize("case", SMS.params(having="inbound"))
def test_parse_sms(case: Case) -> None:
    inbound = sms.parse_sms(sms.json_body(case.content), RECEIVED_AT, "AR")
    assert inbound == expected_inbound(case, RECEIVED_AT)


@pytest.mark.parametrize("case", SMS.params(having="outbox_status"))
def test_parse_status(case: Case) -> None:
    assert sms.parse_status(sms.json_body(case.content)) == expected_status(case)


def test_status_table_covers_every_vonage_status() -> None:
    recorded = {
        c.expect["outbox_status"]["provider_status"]
        for c in SMS.cases
        if c.expect is not None and "outbox_status" in c.expect
    }
    assert recorded == set(sms.STATUS_MAP)


@pytest.mark.parametrize("case", SMS.params(having="error"))
def test_parse_refuses_malformed_webhooks(case: Case) -> None:
    assert_refuses(case, lambda: _parse(case))


@pytest.mark.parametrize("case", SMS.params())
def test_recorded_sms_over_http(post_case: Post, case: Case) -> None:
    post_case(case)


# ---------------------------------------------------------------- end to end
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
