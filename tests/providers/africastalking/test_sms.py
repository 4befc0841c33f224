"""Africa's Talking messages against recorded callback bodies: inbound SMS and delivery reports
parsed (pure), then posted with the URL token to the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.forms import BadRequest
from gateway.providers import africastalking
from tests.providers.conftest import Post
from tests.providers.harness import (
    Case,
    assert_parser_refuses,
    expected_inbound,
    expected_status,
    load_testdata,
)

SMS = load_testdata(__file__, "sms")
DELIVERY = load_testdata(__file__, "delivery")
RECEIVED_AT = datetime(2025, 3, 14, 13, 5, 9, tzinfo=UTC)


# ---------------------------------------------------------------- inbound SMS
@pytest.mark.parametrize("case", SMS.params(having="inbound"))
def test_parse_sms(case: Case) -> None:
    inbound = africastalking.parse_sms(case.form(), RECEIVED_AT, "AR")
    assert inbound == expected_inbound(case, RECEIVED_AT)


@pytest.mark.parametrize("case", SMS.params(having="error"))
def test_parse_sms_refuses_malformed_forms(case: Case) -> None:
    assert_parser_refuses(case, lambda form: africastalking.parse_sms(form, RECEIVED_AT, "AR"))


def test_national_number_is_read_in_the_deployment_country() -> None:
    form = {"id": "f1d2d2f9-24f0-4ac6-9c4e-2a6b0f0c5e11", "from": "0711 555 001", "text": "Habari"}
    inbound = africastalking.parse_sms(form, RECEIVED_AT, "KE")
    assert (inbound.sender, inbound.phone) == ("+254711555001", "+254711555001")


@pytest.mark.parametrize("case", SMS.params())
def test_recorded_sms_over_http(post_case: Post, case: Case) -> None:
    post_case(case)


# ---------------------------------------------------------------- delivery reports
@pytest.mark.parametrize("case", DELIVERY.params(having="outbox_status"))
def test_parse_delivery(case: Case) -> None:
    assert africastalking.parse_delivery(case.form()) == expected_status(case)


def test_delivery_table_covers_every_at_status() -> None:
    recorded = {c.expect["outbox_status"]["provider_status"] for c in DELIVERY.cases if c.expect}
    assert recorded == set(africastalking.STATUS_MAP)


@pytest.mark.parametrize("case", DELIVERY.params(having="error"))
def test_parse_delivery_refuses_malformed_reports(case: Case) -> None:
    assert_parser_refuses(case, africastalking.parse_delivery)


def test_unknown_status_names_every_allowed_value() -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.parse_delivery({"id": "ATXid_0", "status": "Exploded"})
    assert all(status in info.value.reason for status in africastalking.STATUS_MAP)


@pytest.mark.parametrize("case", DELIVERY.params())
def test_recorded_delivery_reports_over_http(post_case: Post, case: Case) -> None:
    post_case(case)
