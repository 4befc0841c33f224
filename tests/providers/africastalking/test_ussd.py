"""Africa's Talking USSD against recorded callback bodies: each request parsed (pure), then
posted with the URL token to the real app, as the first request of its session, on SQLite and
PostgreSQL. Walks through the whole menu are in tests/gateway/test_ussd.py."""

from __future__ import annotations

import pytest

from gateway.providers.africastalking import UssdRequest, parse_ussd
from tests.providers.conftest import Post
from tests.providers.harness import Case, assert_parser_refuses, load_testdata

USSD = load_testdata(__file__, "ussd")


@pytest.mark.parametrize("case", USSD.params(having="parsed"))
def test_parse_ussd(case: Case) -> None:
    assert case.expect is not None
    assert parse_ussd(case.form(), "AR") == UssdRequest(**case.expect["parsed"])


@pytest.mark.parametrize("case", USSD.params(having="error"))
def test_parse_ussd_refuses_malformed_forms(case: Case) -> None:
    assert_parser_refuses(case, lambda form: parse_ussd(form, "AR"))


@pytest.mark.parametrize("case", USSD.params())
def test_recorded_ussd_requests_over_http(post_case: Post, case: Case) -> None:
    post_case(case)
