"""The harness itself: every table loads, a malformed entry fails loudly with its label, the
signers sign as the providers do, and the guards it relies on are really on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import AT_TOKEN, PUBLIC_URL, TWILIO_TOKEN
from tests.providers.harness import (
    TableError,
    assert_network_guard_active,
    assert_no_secret_leaked,
    iter_tables,
    parse_table,
)
from tests.providers.signing import (
    SIGNERS,
    VONAGE_SIGNATURE_SECRET,
    OutgoingRequest,
    sign,
    vonage_jwt,
)

HERE = Path(__file__).parent
GOOD: dict[str, Any] = {
    "label": "plain",
    "method": "POST",
    "path": "/webhooks/twilio/sms",
    "body": "MessageSid=SM1&From=%2B5491155550001&To=%2B5491155550000&Body=Hola",
    "expect": {"status": 200},
}


def test_every_table_loads_and_names_a_provider_with_a_signer() -> None:
    tables = list(iter_tables(HERE))
    assert {t.path.parent.parent.name for t in tables} >= {"twilio", "africastalking", "vonage"}
    for table in tables:
        assert table.provider in SIGNERS
        assert table.path.parent.parent.name == table.provider  # tables live with their tests


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expect": None}, "exactly one of 'expect' and 'error'"),
        ({"error": {"status": 400, "reason": "x"}}, "exactly one of 'expect' and 'error'"),
        ({"method": "PUT"}, "method must be one of"),
        ({"path": "/webhooks/twilio/sms?x=1"}, "carry no query"),
        ({"body": None}, "'body' is required"),
        ({"expect": {"status": 400}}, "2xx"),
        ({"expect": {"stauts": 200}}, "unknown expect key(s) ['stauts']"),
        ({"expect": {"inbound": {"text": "Hola"}}}, "expect.inbound needs every field"),
        ({"expect": {"case": {"category": "x"}}}, "expect.case needs expect.inbound"),
        ({"expect": {"body_contains": "Hola"}}, "must be a list of strings"),
        ({"headers": {"X-Twilio-Signature": 1}}, "headers must map strings to strings"),
        ({"pad_to": 3}, "pad_to must be a byte count larger than the body"),
        ({"bodyy": "x"}, "unknown case key(s) ['bodyy']"),
    ],
)
def test_a_malformed_case_fails_loudly_naming_its_label(
    change: dict[str, Any], message: str
) -> None:
    case = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(TableError) as info:
        parse_table("t.json", {"provider": "twilio", "cases": [case]})
    assert "t.json case 0 ('plain')" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"status": 500, "reason": "x"}, "error.status must be one of [400, 403, 413]"),
        ({"status": 400}, "error needs 'reason'"),
        ({"status": 400, "contains": ""}, "error.contains must be a non-empty string"),
    ],
)
def test_a_malformed_error_fails_loudly(error: dict[str, Any], message: str) -> None:
    case = {k: v for k, v in GOOD.items() if k != "expect"} | {"error": error}
    with pytest.raises(TableError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_table("t.json", {"provider": "twilio", "cases": [case]})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"provider": "nobody", "cases": [GOOD]}, "provider must be one of"),
        ({"provider": "twilio", "cases": []}, "'cases' must be a non-empty list"),
        ({"provider": "twilio", "cases": [GOOD, GOOD]}, "label 'plain' is used twice"),
        ({"provider": "twilio", "cases": [GOOD], "extra": 1}, "unknown table key(s)"),
        (
            {"provider": "twilio", "content_type": "application/json", "cases": [GOOD]},
            "body is not JSON",
        ),
    ],
)
def test_a_malformed_table_fails_loudly(document: dict[str, Any], message: str) -> None:
    with pytest.raises(TableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_table("t.json", document)


def test_padding_grows_the_body_to_the_size_asked() -> None:
    table = parse_table("t.json", {"provider": "twilio", "cases": [GOOD | {"pad_to": 70_000}]})
    assert len(table.cases[0].content) == 70_000


# ---------------------------------------------------------------- signers
def test_twilio_signer_signs_the_public_url_with_its_query_and_every_field() -> None:
    body = b"CallSid=CA1&From=%2B5491155550001&ToCity=&Digits=1"
    request = OutgoingRequest(
        "POST",
        "/webhooks/twilio/voice",
        (("step", "1"),),
        {"Content-Type": "application/x-www-form-urlencoded"},
        body,
    )
    signed = sign("twilio", request)
    url = f"{PUBLIC_URL}/webhooks/twilio/voice?step=1"
    form = {"CallSid": "CA1", "From": "+5491155550001", "ToCity": "", "Digits": "1"}
    assert signed.header("x-twilio-signature") == RequestValidator(TWILIO_TOKEN).compute_signature(
        url, form
    )
    kept = sign("twilio", signed.with_header("X-Twilio-Signature", "other"))
    assert kept.header("X-Twilio-Signature") == signed.header("X-Twilio-Signature")


def test_africastalking_signer_puts_the_token_first_and_keeps_one_given() -> None:
    request = OutgoingRequest("POST", "/webhooks/africastalking/voice", (("step", "2"),))
    assert sign("africastalking", request).target == (
        f"/webhooks/africastalking/voice?token={AT_TOKEN}&step=2"
    )
    wrong = OutgoingRequest("POST", "/webhooks/africastalking/sms", (("token", "wrong"),))
    assert sign("africastalking", wrong).query == (("token", "wrong"),)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_vonage_signer_is_an_hs256_jwt_whose_payload_hash_is_the_body() -> None:
    body = b'{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","text":"Hola"}'
    request = OutgoingRequest("POST", "/webhooks/vonage/sms", (), {}, body)
    token = sign("vonage", request).header("Authorization")
    assert token is not None and token.startswith("Bearer ")
    header, claims, signature = token.removeprefix("Bearer ").split(".")
    assert json.loads(_b64decode(header)) == {"alg": "HS256", "typ": "JWT"}
    mac = hmac.new(VONAGE_SIGNATURE_SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256)
    assert hmac.compare_digest(_b64decode(signature), mac.digest())
    payload = json.loads(_b64decode(claims))
    assert payload["payload_hash"] == hashlib.sha256(body).hexdigest()
    assert {"iat", "jti", "iss"} <= set(payload)
    other = vonage_jwt(body + b" ", now=payload["iat"])
    assert json.loads(_b64decode(other.split(".")[1]))["payload_hash"] != payload["payload_hash"]


# ---------------------------------------------------------------- guards
def test_the_network_guard_is_on() -> None:
    assert_network_guard_active()


def test_a_secret_in_a_log_line_is_caught() -> None:
    leak = logging.LogRecord("gateway", logging.INFO, __file__, 1, "token=%s", (AT_TOKEN,), None)
    with pytest.raises(AssertionError, match="VENTANILLA_AT_WEBHOOK_TOKEN reached a log line"):
        assert_no_secret_leaked([leak])
    # The test's own HTTP client logs the URLs it requests: not the app's doing.
    client = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "POST ?token=%s", (AT_TOKEN,), None
    )
    assert_no_secret_leaked([client])
