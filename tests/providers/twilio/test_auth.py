"""X-Twilio-Signature: Twilio's own test vector, every way a request can differ from what was
signed, and every recorded body of every Twilio table signed and verified."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from gateway.forms import BadRequest
from gateway.providers import twilio
from tests.conftest import PUBLIC_URL, TWILIO_TOKEN
from tests.providers.harness import Case, load_testdata

TABLES = [load_testdata(__file__, name) for name in ("sms", "status", "voice")]
SMS = TABLES[0]

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
WEBHOOK_URL = f"{PUBLIC_URL}/webhooks/twilio/sms"


def _sign(url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    # The SDK's own computation, so the gateway's is checked against Twilio's, not itself.
    return str(RequestValidator(token).compute_signature(url, form))


def test_signature_test_vector_passes() -> None:
    twilio.verify_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


def test_compute_signature_gives_the_test_vector() -> None:
    assert twilio.compute_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE


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
    form = SMS.case("plain SMS, blank ToCity/ToZip/FromZip kept").form()
    signature = _sign(WEBHOOK_URL, form)
    twilio.verify_signature(TWILIO_TOKEN, WEBHOOK_URL, form, signature)

    # A parser that drops blank fields (parse_qsl without keep_blank_values) breaks real traffic.
    dropped = {k: v for k, v in form.items() if v != ""}
    assert len(dropped) < len(form)
    with pytest.raises(BadRequest) as info:
        twilio.verify_signature(TWILIO_TOKEN, WEBHOOK_URL, dropped, signature)
    assert info.value.status == 403


SIGNED = [
    pytest.param(c, id=f"{t.path.stem}: {c.label}")
    for t in TABLES
    for c in t.cases
    if c.signed and "X-Twilio-Signature" not in c.headers and c.pad_to is None
]


@pytest.mark.parametrize("case", SIGNED)
def test_signature_over_every_recorded_body(case: Case) -> None:
    form = case.form()
    url = case.outgoing().public_url
    twilio.verify_signature(TWILIO_TOKEN, url, form, _sign(url, form))
    assert case.outgoing().header("X-Twilio-Signature") == _sign(url, form)


def test_signature_accepts_the_url_with_or_without_the_default_port() -> None:
    form = SMS.case("plain SMS, blank ToCity/ToZip/FromZip kept").form()
    signature = _sign("https://ventanilla.example.test:443/webhooks/twilio/sms", form)
    twilio.verify_signature(TWILIO_TOKEN, WEBHOOK_URL, form, signature)
