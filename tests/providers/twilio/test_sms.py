"""Twilio messages against recorded webhook bodies: inbound SMS/WhatsApp and status callbacks
parsed (pure), then posted signed to the real app on SQLite and PostgreSQL; TwiML replies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.forms import BadRequest
from gateway.providers import twilio
from tests.providers.conftest import Post
from tests.providers.harness import (
    Case,
    assert_parser_refuses,
    expected_inbound,
    expected_status,
    load_testdata,
)

SMS = load_testdata(__file__, "sms")
STATUS = load_testdata(__file__, "status")
RECEIVED_AT = datetime(2025, 3, 14, 13, 5, 9, tzinfo=UTC)


# ---------------------------------------------------------------- inbound SMS
@pytest.mark.parametrize("case", SMS.params(having="inbound"))
def test_parse_sms(case: Case) -> None:
    inbound = twilio.parse_sms(case.form(), RECEIVED_AT, "AR")
    assert inbound == expected_inbound(case, RECEIVED_AT)


@pytest.mark.parametrize("case", SMS.params(having="error"))
def test_parse_sms_refuses_malformed_forms(case: Case) -> None:
    assert_parser_refuses(case, lambda form: twilio.parse_sms(form, RECEIVED_AT, "AR"))


def test_recorded_forms_keep_their_blank_fields() -> None:
    plain = SMS.case("plain SMS, blank ToCity/ToZip/FromZip kept").form()
    assert {plain[k] for k in ("ToCity", "ToZip", "FromZip", "ToState", "FromCity")} == {""}


def test_media_urls_stop_at_num_media() -> None:
    form = SMS.case("MMS with two photos").form()
    form["MediaUrl2"] = "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME9"
    assert len(twilio.parse_sms(form, RECEIVED_AT, "AR").media_urls) == 2


@pytest.mark.parametrize("case", SMS.params())
def test_recorded_sms_over_http(post_case: Post, case: Case) -> None:
    post_case(case)


# ---------------------------------------------------------------- status callbacks
@pytest.mark.parametrize("case", STATUS.params(having="outbox_status"))
def test_parse_status(case: Case) -> None:
    assert twilio.parse_status(case.form()) == expected_status(case)


def test_status_table_covers_every_twilio_status() -> None:
    recorded = {c.expect["outbox_status"]["provider_status"] for c in STATUS.cases if c.expect}
    assert recorded == set(twilio.STATUS_MAP)


@pytest.mark.parametrize("case", STATUS.params(having="error"))
def test_parse_status_refuses_malformed_callbacks(case: Case) -> None:
    assert_parser_refuses(case, twilio.parse_status)


def test_unknown_status_names_every_allowed_value() -> None:
    with pytest.raises(BadRequest) as info:
        twilio.parse_status({"MessageSid": "SM" + "a" * 32, "MessageStatus": "exploded"})
    assert all(status in info.value.reason for status in twilio.STATUS_MAP)


def test_status_is_read_case_insensitively() -> None:
    update = twilio.parse_status({"MessageSid": "SM" + "b" * 32, "MessageStatus": " Delivered "})
    assert (update.status, update.provider_status) == ("delivered", "delivered")


@pytest.mark.parametrize("case", STATUS.params())
def test_recorded_status_callbacks_over_http(post_case: Post, case: Case) -> None:
    post_case(case)


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
