"""Twilio voice against recorded webhook bodies: the call parsed (pure), then every recorded
request (a new call, each follow-up step) posted signed to the real app, on SQLite and
PostgreSQL. Scripted calls through the whole menu are in tests/gateway/test_voice_twilio.py."""

from __future__ import annotations

import pytest

from gateway.providers.twilio import voice as voice_twilio
from tests.providers.conftest import Post
from tests.providers.harness import Case, assert_parser_refuses, load_testdata

VOICE = load_testdata(__file__, "voice")


@pytest.mark.parametrize("case", VOICE.params(having="parsed"))
def test_parse_call(case: Case) -> None:
    assert case.expect is not None
    call = voice_twilio.parse_call(case.form(), "AR")
    assert call == voice_twilio.VoiceCall(**case.expect["parsed"])


@pytest.mark.parametrize("case", VOICE.params(having="error"))
def test_parse_call_refuses_malformed(case: Case) -> None:
    assert_parser_refuses(case, lambda form: voice_twilio.parse_call(form, "AR"))


@pytest.mark.parametrize("case", VOICE.params())
def test_recorded_voice_requests_over_http(post_case: Post, case: Case) -> None:
    post_case(case)
