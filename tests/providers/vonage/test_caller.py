"""VonageCaller against the fake Voice API: the call fetches our answer URL; failures classified."""

from __future__ import annotations

import json

import pytest

from gateway.providers.base import SendError
from gateway.providers.vonage.caller import caller_from_env
from tests.fakeprovider import FakeProvider
from tests.providers.vonage.support import vonage_env

ANSWER = "https://ventanilla.example.test/webhooks/vonage/voice/answer"
EVENT = "https://ventanilla.example.test/webhooks/vonage/voice/event"


def test_places_a_call_that_fetches_our_ncco(fake_provider: FakeProvider) -> None:
    caller = caller_from_env(vonage_env(fake_provider.url))
    result = caller.place_call("+5491155550001", url=ANSWER, status_callback=EVENT)
    (call,) = fake_provider.calls
    assert (result.provider_ref, result.status) == (call.ref, "started")
    assert (call.provider, call.to, call.from_) == ("vonage", "5491155550001", "5491155550900")
    assert json.loads(call.form["answer_url"]) == [ANSWER]
    assert json.loads(call.form["event_url"]) == [EVENT]
    (request,) = fake_provider.requests
    assert (request.method, request.path) == ("POST", "/v1/calls")
    assert (request.header("authorization") or "").startswith("Bearer ")


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (401, False), (500, True)])
def test_refusals_say_whether_to_redial(
    fake_provider: FakeProvider, status: int, retryable: bool
) -> None:
    fake_provider.fail_next("vonage", status, {"title": "Refused", "detail": "scripted"})
    with pytest.raises(SendError) as caught:
        caller_from_env(vonage_env(fake_provider.url)).place_call(
            "+5491155550001", url=ANSWER, status_callback=None
        )
    assert caught.value.retryable is retryable
    assert fake_provider.calls == []


def test_timeout_is_retryable(fake_provider: FakeProvider) -> None:
    fake_provider.fail_next("vonage", 201, {"uuid": "late", "status": "started"}, delay=1.0)
    caller = caller_from_env(vonage_env(fake_provider.url), timeout=0.2)
    with pytest.raises(SendError) as caught:
        caller.place_call("+5491155550001", url=ANSWER, status_callback=None)
    assert caught.value.retryable is True


def test_voice_needs_the_application(fake_provider: FakeProvider) -> None:
    env = {k: v for k, v in vonage_env(fake_provider.url).items() if k != "VONAGE_PRIVATE_KEY"}
    with pytest.raises(SendError, match="VONAGE_APPLICATION_ID"):
        caller_from_env(env).place_call("+5491155550001", url=ANSWER, status_callback=None)
    assert fake_provider.requests == []


def test_without_an_answer_url_nothing_is_dialled(fake_provider: FakeProvider) -> None:
    with pytest.raises(SendError) as caught:
        caller_from_env(vonage_env(fake_provider.url)).place_call(
            "+5491155550001", url=None, status_callback=None
        )
    assert caught.value.retryable is False
    assert fake_provider.requests == []
