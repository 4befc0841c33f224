"""Outbound SMS through Vonage's Messages API (POST /v1/messages, channel sms)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vonage_messages.models import Sms

from gateway.providers.base import CannotReconcile, SendError, SendResult
from gateway.providers.env import required_env
from gateway.providers.vonage.client import VonageApi, api_from_env, sdk_model

MESSAGES_PATH = "/v1/messages"


def bare(number: str) -> str:
    """E.164 as Vonage writes it: without the "+"."""
    return number.strip().removeprefix("+")


class VonageSender:
    """Sends SMS with the SDK's message model, through the shared Vonage client."""

    name: str = "vonage"

    def __init__(self, api: VonageApi, from_number: str) -> None:
        self.api = api
        self.from_number = from_number

    @property
    def sender_key(self) -> str:
        return f"vonage:{self.from_number}"

    def _payload(self, to: str, body: str, status_callback: str | None) -> dict[str, Any]:
        message = sdk_model(
            Sms,
            to=bare(to),
            from_=bare(self.from_number),
            text=body,
            webhook_url=status_callback,
        )
        payload: dict[str, Any] = message.model_dump(by_alias=True, exclude_none=True)
        return payload

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS; statuses come to the application's status URL (or `status_callback`)."""
        data = self.api.post(MESSAGES_PATH, self._payload(to, body, status_callback))
        return _result(data)

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        data = await self.api.post_async(MESSAGES_PATH, self._payload(to, body, status_callback))
        return _result(data)

    async def aclose(self) -> None:
        await self.api.aclose()

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        # The Messages API has no search of sent messages by recipient and time.
        raise CannotReconcile("vonage cannot be asked whether a message was sent")


def _result(data: Mapping[str, Any]) -> SendResult:
    ref = data.get("message_uuid")
    if not isinstance(ref, str) or not ref:
        raise SendError("vonage accepted the message without a message_uuid", retryable=False)
    return SendResult(provider_ref=ref, status="submitted")


def sender_from_env(env: Mapping[str, str], *, timeout: float = 10.0) -> VonageSender:
    """The sender of VENTANILLA_SMS_PROVIDER=vonage, from the VONAGE_* variables."""
    return VonageSender(
        api_from_env(env, timeout, "send SMS"), required_env(env, "VONAGE_FROM_NUMBER", "send SMS")
    )
