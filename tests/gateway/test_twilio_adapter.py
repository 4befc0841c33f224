"""The Twilio adapter against recorded webhook bodies: inbound SMS/WhatsApp, status callbacks,
X-Twilio-Signature and TwiML replies. Pure functions, no app and no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from casestore.inbound import Inbound, StatusUpdate
from gateway.forms import BadRequest, parse_form
from gateway.providers import twilio

TESTDATA = json.loads(
    (Path(__file__).parent / "testdata" / "twilio_sms.json").read_text(encoding="utf-8")
)
RECEIVED_AT = datetime(2025, 3, 14, 13, 5, 9, tzinfo=UTC)
FORM_TYPE = "application/x-www-form-urlencoded"

# The test vector of PROVIDERS.md (Twilio's own documentation example).
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

TOKEN = "test-twilio-auth-token"
WEBHOOK_URL = "https://ventanilla.example.test/webhooks/twilio/sms"


def _form(case: dict[str, Any]) -> dict[str, str]:
    return parse_form(case["body"].encode("utf-8"), FORM_TYPE)


def _cases(section: str, outcome: str) -> list[Any]:
    return [pytest.param(c, id=c["label"]) for c in TESTDATA[section] if outcome in c]


# ---------------------------------------------------------------- inbound SMS
@pytest.mark.parametrize("case", _cases("inbound_sms", "inbound"))
def test_parse_sms(case: dict[str, Any]) -> None:
    expected = dict(case["inbound"], media_urls=tuple(case["inbound"]["media_urls"]))
    inbound = twilio.parse_sms(_form(case), RECEIVED_AT, "AR")
    assert inbound == Inbound(provider="twilio", received_at=RECEIVED_AT, **expected)


@pytest.mark.parametrize("case", _cases("inbound_sms", "error"))
def test_parse_sms_refuses_malformed_forms(case: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        twilio.parse_sms(_form(case), RECEIVED_AT, "AR")
    assert info.value.status == case["error"]["status"]
    assert info.value.reason == case["error"]["reason"]


def test_recorded_forms_keep_their_blank_fields() -> None:
    plain = _form(TESTDATA["inbound_sms"][0])
    assert {plain[k] for k in ("ToCity", "ToZip", "FromZip", "ToState", "FromCity")} == {""}


def test_media_urls_stop_at_num_media() -> None:
    form = _form(TESTDATA["inbound_sms"][1])
    form["MediaUrl2"] = "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME9"
    assert len(twilio.parse_sms(form, RECEIVED_AT, "AR").media_urls) == 2


# ---------------------------------------------------------------- X-Twilio-Signature
def _sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def test_signature_test_vector_passes() -> None:
    twilio.verify_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        pytest.param(VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, VECTOR_SIGNATURE, id="field"),
        pytest.param(
            VECTOR_URL, {**VECTOR_PARAMS, "Extra": "1"}, VECTOR_SIGNATURE, id="added field"
        ),
        pytest.param(
            "https://mycompany.com/myapp.php?foo=1&bar=3", VECTOR_PARAMS, VECTOR_SIGNATURE, id="url"
        ),
        pytest.param(VECTOR_URL, VECTOR_PARAMS, "1/KCTR6DLpKmkAf8muzZqo1nDgQ=", id="signature"),
        pytest.param(VECTOR_URL, VECTOR_PARAMS, "", id="empty signature"),
        pytest.param(VECTOR_URL, VECTOR_PARAMS, None, id="no header"),
    ],
)
def test_signature_changed_anything_is_403(
    url: str, params: dict[str, str], signature: str | None
) -> None:
    with pytest.raises(BadRequest) as info:
        twilio.verify_signature(VECTOR_TOKEN, url, params, signature)
    assert info.value.status == 403


def test_signature_wrong_token_is_403() -> None:
    with pytest.raises(BadRequest) as info:
        twilio.verify_signature("54321", VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)
    assert info.value.status == 403


@pytest.mark.parametrize("token", [None, ""])
def test_signature_without_a_configured_token_is_403(token: str | None) -> None:
    # Even a request signed with an empty key must not get through.
    signature = _sign(VECTOR_URL, VECTOR_PARAMS, token="")
    with pytest.raises(BadRequest) as info:
        twilio.verify_signature(token, VECTOR_URL, VECTOR_PARAMS, signature)
    assert info.value.status == 403


def test_signature_covers_blank_fields() -> None:
    form = _form(TESTDATA["inbound_sms"][0])
    signature = _sign(WEBHOOK_URL, form)
    twilio.verify_signature(TOKEN, WEBHOOK_URL, form, signature)

    # A parser that drops blank fields (parse_qsl without keep_blank_values) breaks real traffic.
    dropped = {k: v for k, v in form.items() if v != ""}
    assert len(dropped) < len(form)
    with pytest.raises(BadRequest) as info:
        twilio.verify_signature(TOKEN, WEBHOOK_URL, dropped, signature)
    assert info.value.status == 403


@pytest.mark.parametrize("case", _cases("inbound_sms", "inbound"))
def test_signature_over_every_recorded_body(case: dict[str, Any]) -> None:
    form = _form(case)
    twilio.verify_signature(TOKEN, WEBHOOK_URL, form, _sign(WEBHOOK_URL, form))


def test_signature_accepts_the_url_with_or_without_the_default_port() -> None:
    form = _form(TESTDATA["inbound_sms"][0])
    signature = _sign("https://ventanilla.example.test:443/webhooks/twilio/sms", form)
    twilio.verify_signature(TOKEN, WEBHOOK_URL, form, signature)


# ---------------------------------------------------------------- status callbacks
@pytest.mark.parametrize("case", _cases("status_callbacks", "update"))
def test_parse_status(case: dict[str, Any]) -> None:
    update = twilio.parse_status(_form(case))
    assert update == StatusUpdate(provider="twilio", **case["update"])


def test_status_table_covers_every_twilio_status() -> None:
    recorded = {c["update"]["provider_status"] for c in TESTDATA["status_callbacks"]}
    assert recorded == set(twilio.STATUS_MAP)


@pytest.mark.parametrize("case", _cases("bad_status_callbacks", "error"))
def test_parse_status_refuses_malformed_callbacks(case: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        twilio.parse_status(_form(case))
    assert info.value.status == case["error"]["status"]
    assert info.value.reason == case["error"]["reason"]


def test_unknown_status_names_every_allowed_value() -> None:
    with pytest.raises(BadRequest) as info:
        twilio.parse_status({"MessageSid": "SM" + "a" * 32, "MessageStatus": "exploded"})
    assert all(status in info.value.reason for status in twilio.STATUS_MAP)


def test_status_is_read_case_insensitively() -> None:
    update = twilio.parse_status({"MessageSid": "SM" + "b" * 32, "MessageStatus": " Delivered "})
    assert (update.status, update.provider_status) == ("delivered", "delivered")


# ---------------------------------------------------------------- TwiML replies
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "DesarrolloSocial: recibimos su pedido 4821 3307 52.",
            "<Message>DesarrolloSocial: recibimos su pedido 4821 3307 52.</Message>",
        ),
        ("Tom & Jerry <3 > 2", "<Message>Tom &amp; Jerry &lt;3 &gt; 2</Message>"),
        ("¿Qué pasó? ñandú", "<Message>¿Qué pasó? ñandú</Message>"),
    ],
)
def test_render_sms_reply(text: str, message: str) -> None:
    twiml = twilio.render_sms_reply(text)
    assert twiml.endswith(f"<Response>{message}</Response>")
    assert twiml.count("<Message>") == 1


@pytest.mark.parametrize("text", [None, ""])
def test_render_sms_reply_without_text_sends_nothing(text: str | None) -> None:
    twiml = twilio.render_sms_reply(text)
    assert twiml.endswith("<Response />")
    assert "<Message" not in twiml
