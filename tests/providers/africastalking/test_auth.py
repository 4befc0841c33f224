"""Africa's Talking signs nothing: the secret token in every callback URL stands in for a
signature. Compared in constant time, never echoed, and without one configured all is refused."""

from __future__ import annotations

import pytest

from gateway.forms import BadRequest
from gateway.providers import africastalking
from tests.conftest import AT_TOKEN
from tests.providers.harness import Case, load_testdata

TABLES = [load_testdata(__file__, name) for name in ("sms", "delivery", "ussd", "voice")]


def test_right_token_passes() -> None:
    africastalking.verify_token(AT_TOKEN, AT_TOKEN)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("test-at-webhook-tokeN", id="one letter"),
        pytest.param(AT_TOKEN[:-1], id="prefix"),
        pytest.param(AT_TOKEN + "x", id="longer"),
        pytest.param(f" {AT_TOKEN}", id="leading space"),
        pytest.param("tést-at-webhook-token", id="non-ascii"),
    ],
)
def test_wrong_or_missing_token_is_403(given: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.verify_token(AT_TOKEN, given)
    assert info.value.status == 403
    assert AT_TOKEN not in info.value.reason


@pytest.mark.parametrize("expected", [None, ""])
@pytest.mark.parametrize("given", [None, "", AT_TOKEN])
def test_no_configured_token_refuses_everything(expected: str | None, given: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        africastalking.verify_token(expected, given)
    assert info.value.status == 403


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{t.path.stem}: {c.label}") for t in TABLES for c in t.cases]
)
def test_every_recorded_request_carries_the_token_unless_it_tests_its_absence(case: Case) -> None:
    tokens = [value for name, value in case.outgoing().query if name == "token"]
    if not case.signed:
        assert tokens == []
    elif case.error is not None and case.error["status"] == 403:
        assert tokens and tokens != [AT_TOKEN]
    else:
        assert tokens == [AT_TOKEN]
