"""The Africa's Talking adapter against recorded callback bodies: inbound SMS, delivery reports
and the URL token that stands in for a signature. Pure functions, no app and no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from casestore.inbound import Inbound, StatusUpdate
from gateway.forms import BadRequest, parse_form
from gateway.providers import africastalking

TESTDATA = json.loads(
    (Path(__file__).parent / "testdata" / "africastalking_sms.json").read_text(encoding="utf-8")
)
RECEIVED_AT = datetime(2025, 3, 14, 13, 5, 9, tzinfo=UTC)
FORM_TYPE = "application/x-www-form-urlencoded"
TOKEN = "test-at-webhook-token"


def _form(case: dict[str, Any]) -> dict[str, str]:
    return parse_form(case["body"].encode("utf-8"), FORM_TYPE)


def _cases(section: str, outcome: str) -> list[Any]:
    return [pytest.param(c, id=c["label"]) for c in TESTDATA[section] if outcome in c]


# ---------------------------------------------------------------- inbound SMS
@pytest.mark.parametrize("case", _cases("inbound_sms", "inbound"))
def test_parse_sms(case: dict[str, Any]) -> None:
    expected = dict(case["inbound"], media_urls=tuple(case["inbound"]["media_urls"]))
    inbound = africastalking.parse_sms(_form(case), RECEIVED_AT, "AR")
    assert inbound == Inbound(provider="africastalking", received_at=RECEIVED_AT, **expected)


@pytest.mark.parametrize("case", _cases("inbound_sms", "error"))
def test_parse_sms_refuses_malformed_forms(case: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.parse_sms(_form(case), RECEIVED_AT, "AR")
    assert info.value.status == case["error"]["status"]
    assert info.value.reason == case["error"]["reason"]


def test_national_number_is_read_in_the_deployment_country() -> None:
    form = {"id": "f1d2d2f9-24f0-4ac6-9c4e-2a6b0f0c5e11", "from": "0711 555 001", "text": "Habari"}
    inbound = africastalking.parse_sms(form, RECEIVED_AT, "KE")
    assert (inbound.sender, inbound.phone) == ("+254711555001", "+254711555001")


# ---------------------------------------------------------------- delivery reports
@pytest.mark.parametrize("case", _cases("delivery_reports", "update"))
def test_parse_delivery(case: dict[str, Any]) -> None:
    update = africastalking.parse_delivery(_form(case))
    assert update == StatusUpdate(provider="africastalking", **case["update"])


def test_delivery_table_covers_every_at_status() -> None:
    recorded = {c["update"]["provider_status"] for c in TESTDATA["delivery_reports"]}
    assert recorded == set(africastalking.STATUS_MAP)


@pytest.mark.parametrize("case", _cases("bad_delivery_reports", "error"))
def test_parse_delivery_refuses_malformed_reports(case: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.parse_delivery(_form(case))
    assert info.value.status == case["error"]["status"]
    assert info.value.reason == case["error"]["reason"]


def test_unknown_status_names_every_allowed_value() -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.parse_delivery({"id": "ATXid_0", "status": "Exploded"})
    assert all(status in info.value.reason for status in africastalking.STATUS_MAP)


# ---------------------------------------------------------------- ?token=
def test_right_token_passes() -> None:
    africastalking.verify_token(TOKEN, TOKEN)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("test-at-webhook-tokeN", id="one letter"),
        pytest.param(TOKEN[:-1], id="prefix"),
        pytest.param(TOKEN + "x", id="longer"),
        pytest.param(f" {TOKEN}", id="leading space"),
        pytest.param("tést-at-webhook-token", id="non-ascii"),
    ],
)
def test_wrong_or_missing_token_is_403(given: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.verify_token(TOKEN, given)
    assert info.value.status == 403
    assert TOKEN not in info.value.reason


@pytest.mark.parametrize("expected", [None, ""])
@pytest.mark.parametrize("given", [None, "", TOKEN])
def test_no_configured_token_refuses_everything(expected: str | None, given: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.verify_token(expected, given)
    assert info.value.status == 403
