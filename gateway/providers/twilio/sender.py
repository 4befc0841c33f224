"""Outbound SMS and WhatsApp through Twilio's Messages API, with the official SDK."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any

from gateway.providers.base import SendResult
from gateway.providers.http import LoopSession
from gateway.providers.twilio.client import (
    AccountClient,
    account_from_env,
    created_since,
    refusals,
    rest_client,
)
from gateway.providers.twilio.sms import PROVIDER, WHATSAPP_PREFIX


class TwilioSender(AccountClient):
    """Sends through Twilio's Messages API with the official SDK."""

    name: str = PROVIDER

    @cached_property
    def _pool(self) -> LoopSession:
        return LoopSession(self._timeout)

    @cached_property
    def _async_client(self) -> Any:
        """The same SDK client for `create_async`, on a pooled aiohttp session."""
        account_sid, auth_token, api_base_url = self._account
        return rest_client(account_sid, auth_token, api_base_url=api_base_url, pool=self._pool)

    @property
    def sender_key(self) -> str:
        return f"{PROVIDER}:{self.from_number}"

    def _message_args(self, to: str, body: str, status_callback: str | None) -> dict[str, Any]:
        sender = self.from_number
        if to.startswith(WHATSAPP_PREFIX) and not sender.startswith(WHATSAPP_PREFIX):
            sender = WHATSAPP_PREFIX + sender
        kwargs: dict[str, Any] = {"to": to, "from_": sender, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        return kwargs

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one message; a `whatsapp:` recipient gets it from our number's WhatsApp form."""
        kwargs = self._message_args(to, body, status_callback)
        with refusals(self._secrets):
            message = self._client.messages.create(**kwargs)
        return SendResult(provider_ref=str(message.sid), status=str(message.status))

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        """`send_sms` with the SDK's `create_async`."""
        kwargs = self._message_args(to, body, status_callback)
        with refusals(self._secrets):
            message = await self._async_client.messages.create_async(**kwargs)
        return SendResult(provider_ref=str(message.sid), status=str(message.status))

    async def aclose(self) -> None:
        await self._pool.close()

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The sid of a message we already sent to `to` with this body since `since`, if any.

        Used after a worker died between Twilio accepting a message and our commit: the
        message is looked up before any resend, so the citizen does not get it twice.
        """
        with refusals(self._secrets):
            # DateSent filters by day; the exact time and the body settle it.
            messages = self._client.messages.list(to=to, date_sent_after=since, limit=100)
        for message in messages:
            if message.body == body and created_since(message, since):
                return str(message.sid)
        return None


def sender_from_env(env: Mapping[str, str], *, timeout: float) -> TwilioSender:
    """The sender of the deployment's Twilio account; ValueError names a missing variable."""
    account = account_from_env(env, "send SMS")
    return TwilioSender(
        account.sid,
        account.token,
        account.from_number,
        api_base_url=account.api_base_url,
        timeout=timeout,
    )
