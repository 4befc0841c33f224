"""Outbound SMS senders against the fake provider: what is sent, and how failures are classified."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from gateway.providers import registry
from gateway.providers.africastalking.sender import AfricasTalkingSender
from gateway.providers.base import SendError, SendResult, SmsSender
from gateway.providers.outbox.sender import OutboxSender
from gateway.providers.registry import build_sender as sender_from_env
from gateway.providers.twilio.sender import TwilioSender
from tests.fakeprovider import (
    AT_API_KEY,
    AT_USERNAME,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    FakeProvider,
)

TWILIO_FROM = "+5491155550000"
CITIZEN = "+5491155550001"
AT_SENDER_ID = "VENTANILLA"
AT_CITIZEN = "+254711000001"
SECRETS = (TWILIO_AUTH_TOKEN, AT_API_KEY)
CALLBACK = "https://ventanilla.example/webhooks/twilio/status"


@pytest.fixture(autouse=True)
def only_local_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any request that would leave 127.0.0.1 (a real provider must never be called)."""
    original = requests.adapters.HTTPAdapter.send

    def guarded(self: requests.adapters.HTTPAdapter, request: Any, **kwargs: Any) -> Any:
        host = urlsplit(request.url).hostname
        assert host == "127.0.0.1", f"request to a real host: {host}"
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guarded)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def twilio(base: str, token: str = TWILIO_AUTH_TOKEN) -> TwilioSender:
    return TwilioSender(TWILIO_ACCOUNT_SID, token, TWILIO_FROM, api_base_url=base, timeout=2)


def africastalking(base: str, key: str = AT_API_KEY) -> AfricasTalkingSender:
    return AfricasTalkingSender(AT_USERNAME, key, AT_SENDER_ID, api_base_url=base, timeout=2)


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's real error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def at_recipient(status_code: int, status: str, number: str = AT_CITIZEN) -> dict[str, Any]:
    """AT's real answer for one recipient AT refused (HTTP 201 all the same)."""
    return {
        "SMSMessageData": {
            "Message": "Sent to 0/1 Total Cost: 0",
            "Recipients": [
                {
                    "statusCode": status_code,
                    "number": number,
                    "status": status,
                    "cost": "0",
                    "messageId": "None",
                }
            ],
        }
    }


# --------------------------------------------------------------------------------------------
# Success: the request on the wire


def test_twilio_sends_form_with_basic_auth(fake: FakeProvider) -> None:
    result = twilio(fake.url).send_sms(CITIZEN, "Su trámite 4821 3307 52", status_callback=CALLBACK)

    assert result.status == "queued"
    assert result.provider_ref.startswith("SM") and len(result.provider_ref) == 34
    [request] = fake.requests
    assert (request.method, request.path) == (
        "POST",
        f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json",
    )
    credentials = base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}".encode()).decode()
    assert request.header("Authorization") == f"Basic {credentials}"
    assert request.form == {
        "To": CITIZEN,
        "From": TWILIO_FROM,
        "Body": "Su trámite 4821 3307 52",
        "StatusCallback": CALLBACK,
    }
    [message] = fake.messages
    assert (message.provider, message.to, message.from_, message.ref) == (
        "twilio",
        CITIZEN,
        TWILIO_FROM,
        result.provider_ref,
    )


def test_twilio_whatsapp_recipient_is_sent_from_whatsapp_number(fake: FakeProvider) -> None:
    twilio(fake.url).send_sms("whatsapp:" + CITIZEN, "hola")

    [request] = fake.requests
    assert request.form["To"] == "whatsapp:" + CITIZEN
    assert request.form["From"] == "whatsapp:" + TWILIO_FROM
    assert "StatusCallback" not in request.form


def test_twilio_sent_messages_can_be_listed_for_reconciliation(fake: FakeProvider) -> None:
    sent = twilio(fake.url).send_sms(CITIZEN, "hola")
    twilio(fake.url).send_sms("+5491155550002", "otro")

    answer = requests.get(
        f"{fake.url}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json",
        params={"To": CITIZEN, "DateSent>": "2020-01-01"},
        auth=(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN),
        timeout=2,
    )

    assert answer.status_code == 200
    assert [m["sid"] for m in answer.json()["messages"]] == [sent.provider_ref]


def test_africastalking_sends_form_with_api_key(fake: FakeProvider) -> None:
    result = africastalking(fake.url).send_sms(AT_CITIZEN, "Su tramite 4821 3307 52")

    assert result.status == "Success"
    assert result.provider_ref.startswith("ATXid_")
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/version1/messaging")
    assert request.header("apiKey") == AT_API_KEY
    assert request.header("Accept") == "application/json"
    assert request.form == {
        "username": AT_USERNAME,
        "to": AT_CITIZEN,
        "message": "Su tramite 4821 3307 52",
        "from": AT_SENDER_ID,
        "bulkSMSMode": "1",
    }
    [message] = fake.messages
    assert (message.provider, message.to, message.from_, message.ref) == (
        "africastalking",
        AT_CITIZEN,
        AT_SENDER_ID,
        result.provider_ref,
    )


def test_africastalking_without_sender_id_sends_no_from(fake: FakeProvider) -> None:
    sender = AfricasTalkingSender(AT_USERNAME, AT_API_KEY, None, api_base_url=fake.url)
    sender.send_sms(AT_CITIZEN, "hola")

    assert "from" not in fake.requests[0].form


def test_africastalking_queued_and_processed_are_accepted(fake: FakeProvider) -> None:
    for code, status in ((102, "Queued"), (100, "Processed")):
        body = at_recipient(code, status)
        body["SMSMessageData"]["Recipients"][0]["messageId"] = f"ATXid_{code}"
        fake.fail_next("africastalking", 201, body)
        result = africastalking(fake.url).send_sms(AT_CITIZEN, "hola")
        assert result == SendResult(provider_ref=f"ATXid_{code}", status=status)


def test_outbox_records_without_sending(fake: FakeProvider) -> None:
    sender = OutboxSender()
    result = sender.send_sms(CITIZEN, "hola", status_callback=CALLBACK)

    assert result.status == "recorded"
    assert result.provider_ref.startswith("outbox-") and len(result.provider_ref) == 39
    assert [(r.to, r.body, r.provider_ref) for r in sender.records] == [
        (CITIZEN, "hola", result.provider_ref)
    ]
    assert fake.requests == []


# --------------------------------------------------------------------------------------------
# Failures: one table for every provider


@dataclass(frozen=True)
class FailureCase:
    id: str
    sender: Callable[[str], SmsSender]  # built from the base URL
    to: str
    script: tuple[str, int, dict[str, Any] | str] | None  # what the fake answers next
    retryable: bool
    code: str | None = None
    opted_out: bool = False
    base: str = "fake"  # "fake", or "closed" for a port where nothing listens


FAILURES = [
    # Twilio
    FailureCase(
        "twilio-500",
        twilio,
        CITIZEN,
        ("twilio", 500, twilio_error(500, 20500, "Internal Server Error")),
        retryable=True,
        code="20500",
    ),
    FailureCase(
        "twilio-503-html",
        twilio,
        CITIZEN,
        ("twilio", 503, "<html>Service Unavailable</html>"),
        retryable=True,
        code="503",  # no JSON body: the SDK falls back to the HTTP status as the code
    ),
    FailureCase(
        "twilio-429",
        twilio,
        CITIZEN,
        ("twilio", 429, twilio_error(429, 20429, "Too Many Requests")),
        retryable=True,
        code="20429",
    ),
    FailureCase(
        "twilio-21610-opted-out",
        twilio,
        CITIZEN,
        ("twilio", 400, twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")),
        retryable=False,
        code="21610",
        opted_out=True,
    ),
    FailureCase(
        "twilio-400-invalid-to",
        twilio,
        CITIZEN,
        ("twilio", 400, twilio_error(400, 21211, "Invalid 'To' Phone Number: +54911555")),
        retryable=False,
        code="21211",
    ),
    FailureCase(
        "twilio-400-queue-full",
        twilio,
        CITIZEN,
        ("twilio", 400, twilio_error(400, 21611, "This 'From' number has exceeded the queue")),
        retryable=True,
        code="21611",
    ),
    FailureCase(
        "twilio-401-wrong-token",
        lambda base: twilio(base, token="wrong-token-also-secret"),
        CITIZEN,
        None,
        retryable=False,
        code="20003",
    ),
    FailureCase(
        "twilio-connection-refused",
        twilio,
        CITIZEN,
        None,
        retryable=True,
        base="closed",
    ),
    # Africa's Talking: per-recipient codes inside a 201
    FailureCase(
        "at-403-invalid-number",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 201, at_recipient(403, "InvalidPhoneNumber")),
        retryable=False,
        code="403",
    ),
    FailureCase(
        "at-406-blacklist",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 201, at_recipient(406, "UserInBlacklist")),
        retryable=False,
        code="406",
        opted_out=True,
    ),
    FailureCase(
        "at-407-could-not-route",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 201, at_recipient(407, "CouldNotRoute")),
        retryable=False,
        code="407",
    ),
    FailureCase(
        "at-405-insufficient-balance",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 201, at_recipient(405, "InsufficientBalance")),
        retryable=True,
        code="405",
    ),
    FailureCase(
        "at-500-recipient",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 201, at_recipient(500, "InternalServerError")),
        retryable=True,
        code="500",
    ),
    FailureCase(
        "at-invalid-sender-id",
        africastalking,
        AT_CITIZEN,
        (
            "africastalking",
            201,
            {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}},
        ),
        retryable=False,
    ),
    # Africa's Talking: HTTP-level answers
    FailureCase(
        "at-409-dnd",  # AT answers a Nigerian DND rejection with HTTP 409 and the usual body
        africastalking,
        AT_CITIZEN,
        ("africastalking", 409, at_recipient(409, "DoNotDisturbRejection", "+2348030000001")),
        retryable=False,
        code="409",
    ),
    FailureCase(
        "at-http-500",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 500, "Internal Server Error"),
        retryable=True,
    ),
    FailureCase(
        "at-http-502-empty",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 502, ""),
        retryable=True,
    ),
    FailureCase(
        "at-http-429",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 429, "Too Many Requests"),
        retryable=True,
    ),
    FailureCase(
        "at-http-400",
        africastalking,
        AT_CITIZEN,
        ("africastalking", 400, "Request is missing required form field 'message'"),
        retryable=False,
    ),
    FailureCase(
        "at-401-wrong-key",
        lambda base: africastalking(base, key="wrong-key-also-secret"),
        AT_CITIZEN,
        None,
        retryable=False,
    ),
    FailureCase(
        "at-bad-number-not-sent",
        africastalking,
        "0711000001",
        None,
        retryable=False,
        code="invalid_number",
    ),
    FailureCase(
        "at-connection-refused",
        africastalking,
        AT_CITIZEN,
        None,
        retryable=True,
        base="closed",
    ),
]


@pytest.mark.parametrize("case", FAILURES, ids=[c.id for c in FAILURES])
def test_failure_is_classified(
    case: FailureCase, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if case.script is not None:
        fake.fail_next(*case.script)
    base = fake.url if case.base == "fake" else closed_port_url()

    with pytest.raises(SendError) as caught:
        case.sender(base).send_sms(case.to, "Su trámite 4821 3307 52")

    error = caught.value
    assert (error.retryable, error.code, error.opted_out) == (
        case.retryable,
        case.code,
        case.opted_out,
    )
    assert error.reason
    assert fake.messages == []
    visible = " ".join([str(error), repr(error), error.reason, caplog.text])
    for secret in (*SECRETS, "wrong-token-also-secret", "wrong-key-also-secret"):
        assert secret not in visible


@pytest.mark.parametrize("provider", ["twilio", "africastalking"])
def test_timeout_is_retryable(provider: str, fake: FakeProvider) -> None:
    fake.fail_next(provider, 201, {}, delay=1.0)
    sender: SmsSender
    if provider == "twilio":
        sender = TwilioSender(
            TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, api_base_url=fake.url, timeout=0.2
        )
        to = CITIZEN
    else:
        sender = AfricasTalkingSender(
            AT_USERNAME, AT_API_KEY, AT_SENDER_ID, api_base_url=fake.url, timeout=0.2
        )
        to = AT_CITIZEN

    with pytest.raises(SendError) as caught:
        sender.send_sms(to, "hola")

    assert caught.value.retryable


# --------------------------------------------------------------------------------------------
# Configuration


def test_sender_from_env_builds_each_provider(fake: FakeProvider) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "TWILIO_API_BASE_URL": fake.url,
        "AT_USERNAME": AT_USERNAME,
        "AT_API_KEY": AT_API_KEY,
        "AT_SENDER_ID": "",
        "AT_API_BASE_URL": fake.url + "/",
    }

    for name, to in (("twilio", CITIZEN), ("africastalking", AT_CITIZEN), ("outbox", CITIZEN)):
        sender = sender_from_env(name, env)
        assert sender.name == name
        sender.send_sms(to, "hola")

    assert [m.provider for m in fake.messages] == ["twilio", "africastalking"]
    assert "from" not in fake.requests[1].form  # an empty AT_SENDER_ID means AT's default


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("twilio", "TWILIO_ACCOUNT_SID"),
        ("twilio", "TWILIO_AUTH_TOKEN"),
        ("twilio", "TWILIO_FROM_NUMBER"),
        ("africastalking", "AT_USERNAME"),
        ("africastalking", "AT_API_KEY"),
    ],
)
def test_sender_from_env_names_the_missing_variable(name: str, missing: str) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "AT_USERNAME": AT_USERNAME,
        "AT_API_KEY": AT_API_KEY,
    }
    del env[missing]

    with pytest.raises(ValueError, match=missing) as caught:
        sender_from_env(name, env)
    assert TWILIO_AUTH_TOKEN not in str(caught.value) and AT_API_KEY not in str(caught.value)


def test_sender_from_env_refuses_unknown_provider() -> None:
    with pytest.raises(ValueError, match="twilio, africastalking, outbox"):
        sender_from_env("carrier-pigeon", {})


def test_registry_builds_one_sender_per_environment_and_timeout(fake: FakeProvider) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "TWILIO_API_BASE_URL": fake.url,
        "VENTANILLA_PUBLIC_URL": "https://ventanilla.example",  # not a provider's variable
    }
    try:
        first = registry.sender("twilio", timeout=5.0, env=env)
        assert (
            registry.sender("twilio", timeout=5.0, env={**env, "VENTANILLA_PUBLIC_URL": ""})
            is first
        )
        assert registry.sender("twilio", timeout=2.0, env=env) is not first
        changed = registry.sender(
            "twilio", timeout=5.0, env={**env, "TWILIO_FROM_NUMBER": "+5491155550009"}
        )
        assert changed is not first
        changed.send_sms(CITIZEN, "hola")
        assert fake.requests[-1].form["From"] == "+5491155550009"
    finally:
        registry.forget_clients()


def test_a_provider_line_that_claims_sms_without_a_sender_is_refused() -> None:
    with pytest.raises(TypeError, match="carrier-pigeon"):
        registry.ProviderInfo(
            "carrier-pigeon",
            ("PIGEON_",),
            label="Carrier pigeon",
            sms=True,
            voice=False,
            queues_callers=False,
            moves_live_calls=False,
        )
