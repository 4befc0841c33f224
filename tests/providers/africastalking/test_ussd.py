"""Africa's Talking USSD against recorded callback bodies: each request parsed (pure), then
posted with the URL token to the real app, as the first request of its session, on SQLite and
PostgreSQL. Walks through the whole menu are in tests/gateway/test_ussd.py."""

from __future__ import annotations

import pytest

from gateway.forms import BadRequest
from gateway.routes import ussd
from tests.providers.conftest import Post
from tests.providers.harness import Case, load_testdata

USSD = load_testdata(__file__, "ussd")


@pytest.mark.parametrize("case", USSD.params(having="parsed"))
def test_parse_ussd(case: Case) -> None:
    assert case.expect is not None
    assert ussd.parse_ussd(case.form(), "AR") == ussd.UssdRequest(**case.expect["parsed"])


@pytest.mark.parametrize("case", USSD.params(having="error"))
def test_parse_ussd_refuses_malformed_forms(case: Case) -> None:
    assert case.error is not None
    with pytest.raises(BadRequest) as info:
        ussd.parse_ussd(case.form(), "AR")
    assert (info.value.status, info.value.reason) == (case.error["status"], case.error["reason"])


@pytest.mark.parametrize("case", USSD.params())
def test_recorded_ussd_requests_over_http(post_case: Post, case: Case) -> None:
    post_case(case)
