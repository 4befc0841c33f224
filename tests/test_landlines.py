"""Landlines: a citizen who cannot take SMS hears receipts' status changes and surveys by a call.

Issue 8, defect 8: `contact_key` turned every Argentine number into the mobile form, so a
citizen calling from a landline got SMS that could not arrive. Runs on both databases, with the
Twilio SDK and the Africa's Talking REST client against tests/fakeprovider.py.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.menu_actions import KeypadRequest, open_case_by_keypad
from casestore.models import Contact, OutboundCall
from casestore.operators import create_operator
from gateway.app import create_app
from gateway.settings import load_settings
from gateway.workers import jobs
from sms.phone import normalise_phone, sms_unreachable_reason
from tests.conftest import TWILIO_SID, app_env, set_worker_env
from tests.console.conftest import PASSWORD, log_in
from tests.fakeprovider import FakeProvider
from tests.helpers import AT_TOKEN, PUBLIC_URL, Db, admin_token, sign, twilio_form
from tests.test_voice_survey import (
    AT_NUMBER,
    TWILIO_NUMBER,
    AtSurveyCall,
    TwilioSurveyCall,
)

LANDLINE = "+541155550077"  # "+54 11 5555 0077": an Argentine number without the 9
MOBILE = "+5491155550078"
PROVIDERS = ("twilio", "africastalking")


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        (LANDLINE, "fixed_line"),
        ("+541143210000", "fixed_line"),
        (MOBILE, None),
        (normalise_phone("011 15 5555-0078"), None),  # national "15" prefix: a mobile
        (normalise_phone("0223 15 555 0001"), None),
        ("+12025550100", None),  # US: fixed line or mobile, taken as SMS-capable
        ("+548002221234", "not_mobile"),  # toll-free
    ],
)
def test_the_number_type_says_who_cannot_take_sms(presented: str, reason: str | None) -> None:
    assert sms_unreachable_reason(presented) == reason


class Stack:
    def __init__(self, client: TestClient, db_url: str, connection: redis.Redis, provider: str):
        self.client, self.db_url, self.connection, self.provider = (
            client,
            db_url,
            connection,
            provider,
        )
        config = client.app.state.runtime.config  # type: ignore[attr-defined]
        self.config = config
        self.headers = {"Authorization": f"Bearer {admin_token(db_url, config.departments)}"}

    def text_in(self, phone: str, body: str = "Necesito turno para el DNI") -> str:
        """The citizen texts the provider's number: a new case; its tracking number."""
        if self.provider == "twilio":
            form = twilio_form(body, sender=phone)
            reply = self.client.post(
                "/webhooks/twilio/sms",
                data=form,
                headers={"X-Twilio-Signature": sign("/webhooks/twilio/sms", form)},
            )
        else:
            reply = self.client.post(
                f"/webhooks/africastalking/sms?token={AT_TOKEN}",
                data={
                    "from": phone,
                    "to": "12345",
                    "text": body,
                    "date": "2026-12-04 10:00:00",
                    "id": "ATXid_" + secrets.token_hex(12),
                    "linkId": "",
                    "networkCode": "72207",
                },
            )
        assert reply.status_code == 200, reply.text
        with Db(self.db_url) as db:
            return str(db.cases()[-1].tracking_number)

    def burst(self, config: Config | None = None) -> None:
        """The worker's --burst: due messages and calls sent (with `config`'s [delivery])."""
        from casestore.db import make_engine
        from gateway.workers.worker import run_burst

        engine = make_engine(self.db_url)
        try:
            run_burst(engine, self.connection, config)
        finally:
            engine.dispose()

    def status(self, number: str, status: str) -> None:
        response = self.client.post(
            f"/api/v1/cases/{number}/status", json={"status": status}, headers=self.headers
        )
        assert response.status_code == 200, response.text

    def contact(self, phone: str) -> Contact:
        with Db(self.db_url) as db, Session(db.engine) as session:
            return session.scalars(select(Contact).where(Contact.phone == phone)).one()

    def calls(self) -> list[OutboundCall]:
        with Db(self.db_url) as db, Session(db.engine) as session:
            return list(session.scalars(select(OutboundCall).order_by(OutboundCall.id)))


@pytest.fixture(params=PROVIDERS)
def stack(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    redis_url: str,
    fake_provider: FakeProvider,
) -> Iterator[Stack]:
    provider: str = request.param
    set_worker_env(
        monkeypatch,
        db_url,
        fake_provider.url,
        at_number=AT_NUMBER,
        twilio_number=TWILIO_NUMBER,
        AT_SENDER_ID="DesSocial",
    )
    env = app_env(
        db_url,
        redis_url,
        VENTANILLA_SMS_PROVIDER=provider,
        VENTANILLA_VOICE_PROVIDER=provider,
        AT_VOICE_NUMBER=AT_NUMBER,
    )
    from casestore.config import load_config

    with TestClient(create_app(load_settings(env), load_config(env={})), base_url=PUBLIC_URL) as c:
        connection = redis.Redis.from_url(redis_url)
        yield Stack(c, db_url, connection, provider)
        connection.close()
    jobs.dispose_engines()


def _said(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter("Say")]


def _answer_notice(stack: Stack, fake: FakeProvider, ref: str) -> ET.Element:
    if stack.provider == "twilio":
        (placed,) = [c for c in fake.calls if c.ref == ref]
        return TwilioSurveyCall(stack.client, placed.form["Url"], ref).answer()
    return AtSurveyCall(stack.client, ref).answer()


def _landline_call_opens_a_case(stack: Stack) -> str:
    """A citizen finishes a new request on the voice menu from a landline."""
    with Db(stack.db_url) as db, Session(db.engine) as session, session.begin():
        request = KeypadRequest(
            phone=LANDLINE,
            channel="voice",
            provider=stack.provider,
            provider_ref="CA" + "7" * 32,
            category=next(iter(stack.config.categories)),
            description="",
            recording_url=None,
            urgent=False,
            language="es",
            now=datetime.now(UTC),
        )
        opened = open_case_by_keypad(session, stack.config, request, sms_provider=stack.provider)
    assert not opened.sms_copy  # the number is spoken in the call; no SMS to a landline
    return opened.tracking_number


def test_a_landline_caller_hears_status_changes_by_a_call(
    stack: Stack, fake_provider: FakeProvider
) -> None:
    number = _landline_call_opens_a_case(stack)
    contact = stack.contact(normalise_phone("+5491155550077"))  # keyed by the mobile form
    assert (contact.sms_capable, contact.sms_capable_reason) == (False, "fixed_line")
    stack.status(number, "in_progress")
    with Db(stack.db_url) as db:
        assert db.outbox() == []  # no SMS that cannot arrive
    (notice,) = stack.calls()
    assert (notice.kind, notice.to_address, notice.provider) == (
        "notice",
        LANDLINE,  # dialled as the landline it is, not as "+54 9 11 …" (someone's mobile)
        stack.provider,
    )
    assert notice.message and number in notice.message.replace(" ", "")
    stack.burst()
    (placed,) = fake_provider.calls
    assert placed.to == LANDLINE
    assert fake_provider.messages == []
    if stack.provider == "twilio":
        assert placed.form["Url"] == f"{PUBLIC_URL}/webhooks/twilio/notice?call={notice.id}"
    root = _answer_notice(stack, fake_provider, placed.ref)
    assert _said(root) == [notice.message, notice.message]
    stack.burst()
    assert len(fake_provider.calls) == 1  # placed once


@pytest.mark.parametrize("stack", ["twilio"], indirect=True)
def test_a_notice_call_with_a_control_character_is_checked_as_twilio_signed_it(
    stack: Stack, fake_provider: FakeProvider
) -> None:
    """The edge cleans a NUL out of the fields, but Twilio signed the bytes it sent: the
    notice route checks the signature over those, like every other Twilio route."""
    number = _landline_call_opens_a_case(stack)
    stack.status(number, "in_progress")
    stack.burst()
    (placed,) = fake_provider.calls
    (notice,) = stack.calls()
    call = TwilioSurveyCall(stack.client, placed.form["Url"], placed.ref)
    root = call.post(placed.form["Url"], CallerName="Rosa\x00Perez")
    assert _said(root) == [notice.message, notice.message]


def test_a_provider_landline_error_sends_later_notices_by_call(
    stack: Stack, fake_provider: FakeProvider
) -> None:
    # The citizen texts from a number the provider later says cannot take SMS.
    number = stack.text_in(MOBILE)
    stack.status(number, "in_progress")
    stack.burst()
    sent = [m for m in fake_provider.messages if m.to == MOBILE]
    assert sent, "the notification went by SMS first"
    ref = sent[-1].ref
    if stack.provider == "twilio":
        form = {
            "MessageSid": ref,
            "MessageStatus": "undelivered",
            "ErrorCode": "30006",
            "AccountSid": TWILIO_SID,
            "To": MOBILE,
            "From": TWILIO_NUMBER,
            "ApiVersion": "2010-04-01",
        }
        path = "/webhooks/twilio/status"
        answer = stack.client.post(
            path, data=form, headers={"X-Twilio-Signature": sign(path, form)}
        )
        reason = "twilio:30006"
    else:
        answer = stack.client.post(
            f"/webhooks/africastalking/delivery?token={AT_TOKEN}",
            data={
                "id": ref,
                "status": "Failed",
                "phoneNumber": MOBILE,
                "networkCode": "72207",
                "failureReason": "UnsupportedNumberType",
                "retryCount": "0",
            },
        )
        reason = "africastalking:UnsupportedNumberType"
    assert answer.status_code == 200, answer.text
    contact = stack.contact(MOBILE)
    assert (contact.sms_capable, contact.sms_capable_reason) == (False, reason)
    before = len(fake_provider.messages)
    stack.status(number, "resolved")
    stack.burst()
    assert len(fake_provider.messages) == before  # no more SMS
    (placed,) = fake_provider.calls
    assert placed.to == MOBILE
    root = _answer_notice(stack, fake_provider, placed.ref)
    (notice,) = [c for c in stack.calls() if c.kind == "notice"]
    assert _said(root)[0] == notice.message


def test_the_case_page_says_notices_go_by_call(stack: Stack) -> None:
    number = _landline_call_opens_a_case(stack)
    with Db(stack.db_url) as db, Session(db.engine) as session, session.begin():
        create_operator(
            session,
            "supA",
            "admin",
            (),
            stack.config.departments.keys(),
            password=PASSWORD,
        )
    log_in(stack.client, "supA")
    page = stack.client.get(f"/console/cases/{number}")
    assert page.status_code == 200
    assert "línea fija — avisos por llamada" in page.text
    assert LANDLINE in page.text


def test_a_missed_call_from_a_landline_is_called_back_on_the_landline(stack: Stack) -> None:
    from casestore.calls import MissedCall, request_missed_call_callback

    with Db(stack.db_url) as db, Session(db.engine) as session, session.begin():
        outcome = request_missed_call_callback(
            session,
            phone=LANDLINE,
            provider=stack.provider,
            limit_per_day=3,
            timezone=stack.config.timezone,
            now=datetime.now(UTC),
        )
    assert outcome is MissedCall.QUEUED
    (call,) = stack.calls()
    assert call.to_address == LANDLINE  # not "+54 9 11 5555 0077", someone else's mobile
    contact = stack.contact(normalise_phone("+5491155550077"))
    assert (contact.sms_capable, contact.sms_capable_reason) == (False, "fixed_line")
