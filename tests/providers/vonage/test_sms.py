"""Vonage SMS end to end: signed JSON in, a case, the reply sent by the worker through the
Messages API (the fake), and Vonage's status webhook recorded on the outbox row."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import update
from starlette.testclient import TestClient

from casestore.models import OutboundMessage
from gateway.forms import BadRequest
from gateway.providers.base import WebhookRequest
from gateway.providers.vonage.webhooks import VonageWebhooks
from tests.fakeprovider import FakeProvider
from tests.helpers import Db
from tests.providers.vonage.support import (
    TESTDATA,
    inbound_sms,
    post_vonage,
    signed,
    vonage_env,
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


# ---------------------------------------------------------------- recorded payloads
# The table format of the shared harness (tests/providers/): label, method, path, query?,
# headers?, body, expect | error. This runner is a stand-in until that harness lands.


def _cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((TESTDATA / name).read_text())
    return cases


@pytest.mark.parametrize("case", _cases("sms.json"), ids=lambda c: c["label"])
def test_recorded_payloads(case: dict[str, Any]) -> None:
    adapter = VonageWebhooks(vonage_env())
    raw = case["body"] if isinstance(case["body"], str) else json.dumps(case["body"])
    body = raw.encode()
    headers = {k.lower(): v for k, v in signed(body).items()}
    headers.update({k.lower(): v for k, v in case.get("headers", {}).items()})
    request = WebhookRequest(
        url="https://ventanilla.example.test" + case["path"],
        headers=headers,
        query=case.get("query", {}),
        body=body,
        raw_body=body,
    )
    assert case["method"] == "POST"
    try:
        adapter.verify(request)
        if case["path"] == VonageWebhooks.sms_path:
            parsed: Any = adapter.parse_sms(request, datetime(2026, 11, 22, tzinfo=UTC), "AR")
        else:
            parsed = adapter.parse_status(request)
    except BadRequest as exc:
        assert "error" in case, f"{case['label']}: refused with {exc.reason!r}"
        assert (exc.status, exc.reason) == (case["error"]["status"], case["error"]["reason"])
        return
    assert "expect" in case, f"{case['label']}: accepted, expected {case.get('error')}"
    for field, value in case["expect"].items():
        assert getattr(parsed, field) == value, field
