"""Africa's Talking voice against recorded callback bodies: each callback parsed (pure), then
posted with the URL token to the real app, as the first request of its call session, on
SQLite and PostgreSQL. Scripted calls are in tests/gateway/test_voice_africastalking.py."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from gateway.providers.africastalking import parse_voice
from tests.providers.conftest import Post
from tests.providers.harness import Case, assert_parser_refuses, load_testdata

VOICE = load_testdata(__file__, "voice")


@pytest.mark.parametrize("case", VOICE.params(having="parsed"))
def test_parse_voice(case: Case) -> None:
    assert case.expect is not None
    assert asdict(parse_voice(case.form(), "AR")) == case.expect["parsed"]


@pytest.mark.parametrize("case", VOICE.params(having="error"))
def test_parse_voice_refuses_malformed(case: Case) -> None:
    assert_parser_refuses(case, lambda form: parse_voice(form, "AR"))


@pytest.mark.parametrize("case", VOICE.params())
def test_recorded_voice_callbacks_over_http(post_case: Post, case: Case) -> None:
    post_case(case)
