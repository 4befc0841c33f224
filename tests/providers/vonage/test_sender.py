"""VonageSender against the fake Messages API: what is sent, and which failures are retried."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.providers.base import CannotReconcile, SendError
from gateway.providers.vonage.sender import sender_from_env
from tests.fakeprovider import VONAGE_API_SECRET, VONAGE_APPLICATION_ID, FakeProvider
from tests.providers.vonage.support import vonage_env


def test_sends_with_the_application_jwt(fake_provider: FakeProvider) -> None:
    sender = sender_from_env(vonage_env(fake_provider.url))
    result = sender.send_sms("+5491155550001", "Su pedido 4821 3307 52 fue recibido.")
    (message,) = fake_provider.messages
    assert result.provider_ref == message.ref
    assert (message.to, message.from_) == ("5491155550001", "5491155550900")
    assert message.body == "Su pedido 4821 3307 52 fue recibido."
    (request,) = fake_provider.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert (request.header("authorization") or "").startswith("Bearer ")
    assert sender.sender_key == "vonage:+5491155550900"


def test_sends_with_basic_auth_without_an_application(fake_provider: FakeProvider) -> None:
    env = {
        k: v
        for k, v in vonage_env(fake_provider.url).items()
        if k not in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY")
    }
    sender_from_env(env).send_sms("+5491155550001", "Hola")
    assert (fake_provider.requests[0].header("authorization") or "").startswith("Basic ")
    assert len(fake_provider.messages) == 1


def test_async_path_sends_the_same_request(fake_provider: FakeProvider) -> None:
    sender = sender_from_env(vonage_env(fake_provider.url))

    async def send() -> str:
        result = await sender.send_sms_async("+5491155550001", "Hola")
        await sender.aclose()
        return result.provider_ref

    ref = asyncio.run(send())
    assert [m.ref for m in fake_provider.messages] == [ref]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(401, False), (422, False), (402, True), (429, True), (500, True), (503, True)],
)
def test_refusals_say_whether_to_retry(
    fake_provider: FakeProvider, status: int, retryable: bool
) -> None:
    fake_provider.fail_next("vonage", status, {"title": "Refused", "detail": "scripted"})
    sender = sender_from_env(vonage_env(fake_provider.url))
    with pytest.raises(SendError) as caught:
        sender.send_sms("+5491155550001", "Hola")
    assert caught.value.retryable is retryable
    assert caught.value.code == str(status)
    assert fake_provider.messages == []


def test_wrong_credentials_are_final_and_secrets_stay_out(fake_provider: FakeProvider) -> None:
    env = {
        **vonage_env(fake_provider.url),
        "VONAGE_APPLICATION_ID": "",
        "VONAGE_API_SECRET": VONAGE_API_SECRET + "-wrong",
    }
    with pytest.raises(SendError) as caught:
        sender_from_env(env).send_sms("+5491155550001", "Hola")
    assert caught.value.retryable is False and caught.value.code == "401"
    assert VONAGE_API_SECRET not in repr(caught.value) and VONAGE_APPLICATION_ID not in repr(
        caught.value
    )


def test_timeout_and_unreachable_are_retryable(fake_provider: FakeProvider) -> None:
    fake_provider.fail_next("vonage", 202, {"message_uuid": "late"}, delay=1.0)
    sender = sender_from_env(vonage_env(fake_provider.url), timeout=0.2)
    with pytest.raises(SendError) as caught:
        sender.send_sms("+5491155550001", "Hola")
    assert caught.value.retryable is True
    closed = sender_from_env(vonage_env("http://127.0.0.1:9"))
    with pytest.raises(SendError) as refused:
        closed.send_sms("+5491155550001", "Hola")
    assert refused.value.retryable is True


def test_not_a_number_is_final_and_nothing_is_sent(fake_provider: FakeProvider) -> None:
    with pytest.raises(SendError) as caught:
        sender_from_env(vonage_env(fake_provider.url)).send_sms("vecino", "Hola")
    assert caught.value.retryable is False and caught.value.code == "invalid_number"
    assert fake_provider.requests == []


def test_cannot_reconcile(fake_provider: FakeProvider) -> None:
    sender = sender_from_env(vonage_env(fake_provider.url))
    with pytest.raises(CannotReconcile):
        sender.find_sent("+5491155550001", "Hola", since=datetime.now(UTC))


def test_missing_configuration_names_the_variable() -> None:
    with pytest.raises(ValueError, match="VONAGE_FROM_NUMBER"):
        sender_from_env({k: v for k, v in vonage_env().items() if k != "VONAGE_FROM_NUMBER"})
