"""Outbound SMS through Africa's Talking's SMS API (the documented REST call, see `rest`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from gateway.providers.africastalking.rest import FormPoster, check_recipient, headers
from gateway.providers.africastalking.sms import PROVIDER
from gateway.providers.base import CannotReconcile, SendError, SendResult
from gateway.providers.env import optional_env, required_env
from gateway.providers.errors import (
    TRANSPORT_ERRORS,
    json_object,
    network_error,
    retryable_status,
    scrub,
)
from gateway.providers.http import FORM, LoopSession

DEFAULT_BASE = "https://api.africastalking.com"

# Per-recipient statusCode in SMSMessageData.Recipients[]:
_ACCEPTED = frozenset({100, 101, 102})  # Processed, Sent, Queued
_RETRYABLE = frozenset(
    {
        405,  # InsufficientBalance: succeeds once the account is topped up
        500,  # InternalServerError
        501,  # GatewayError
        502,  # RejectedByGateway (a gateway-side refusal; treated as transient like 500/501)
    }
)
_OPTED_OUT = 406  # UserInBlacklist: the subscriber opted out of our sender id
# Final: 401 RiskHold, 402 InvalidSenderId, 403 InvalidPhoneNumber, 404 UnsupportedNumberType,
# 407 CouldNotRoute, 409 DoNotDisturbRejection (promotional sender outside the allowed hours)
# and any other code.


class AfricasTalkingSender:
    """Sends through Africa's Talking's SMS API (POST {base}/version1/messaging)."""

    name: str = PROVIDER

    def __init__(
        self,
        username: str,
        api_key: str,
        sender_id: str | None,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.username = username
        self.sender_id = sender_id or None
        self.url = (api_base_url or DEFAULT_BASE).rstrip("/") + "/version1/messaging"
        self.timeout = timeout
        self._poster = FormPoster(self.url, api_key, timeout)
        self._secrets = self._poster.secrets
        self._pool = LoopSession(timeout, headers(api_key))

    @property
    def sender_key(self) -> str:
        return f"{PROVIDER}:{self.sender_id or self.username}"

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        # AT's messaging API has no look-up of sent messages by recipient and time.
        raise CannotReconcile("Africa's Talking cannot be asked whether a message was sent")

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS. AT has no per-message callback: reports go to the account's one URL."""
        del status_callback  # configured once in AT's dashboard, not per message
        return self._classify(*self._poster.post(self._form(to, body)))

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        """`send_sms` on the running loop, with the same request and classification."""
        del status_callback
        form = urlencode(self._form(to, body)).encode()
        try:
            async with self._pool.get().post(
                self.url, data=form, headers={"Content-Type": FORM}
            ) as response:
                status, text = response.status, await response.text()
        except TRANSPORT_ERRORS as exc:
            raise network_error(PROVIDER, exc, self._secrets) from None
        return self._classify(status, text)

    async def aclose(self) -> None:
        await self._pool.close()

    def _form(self, to: str, body: str) -> dict[str, str]:
        check_recipient(to)
        form = {"username": self.username, "to": to, "message": body, "bulkSMSMode": "1"}
        if self.sender_id:
            form["from"] = self.sender_id
        return form

    def _classify(self, http_status: int, text: str) -> SendResult:
        payload = json_object(text)
        data = payload.get("SMSMessageData") if payload is not None else None
        if isinstance(data, dict):
            # The usual shape, even on some non-2xx answers (HTTP 409 for DND rejections).
            return self._recipient_result(http_status, data)
        if 200 <= http_status < 300:
            raise self._poster.unreadable(http_status, text)
        raise self._poster.http_error(http_status, text)

    def _recipient_result(self, http_status: int, data: dict[str, Any]) -> SendResult:
        recipients = data.get("Recipients")
        first = recipients[0] if isinstance(recipients, list) and recipients else None
        if not isinstance(first, dict):
            # e.g. {"Message": "InvalidSenderId", "Recipients": []}: refused as a whole.
            summary = str(data.get("Message") or "no recipients")
            raise SendError(
                scrub(f"{PROVIDER} HTTP {http_status}: {summary}", self._secrets),
                retryable=retryable_status(http_status),
            )
        status_code = first.get("statusCode")
        status = str(first.get("status") or "")
        message_id = str(first.get("messageId") or "")
        if status_code in _ACCEPTED and message_id not in ("", "None"):
            return SendResult(provider_ref=message_id, status=status)
        reason = scrub(f"{PROVIDER} statusCode {status_code}: {status}", self._secrets)
        code = None if status_code is None else str(status_code)
        if status_code == _OPTED_OUT:
            raise SendError(reason, retryable=False, code=code, opted_out=True)
        if status_code in _ACCEPTED:
            raise SendError(reason + " without a messageId", retryable=False, code=code)
        raise SendError(reason, retryable=status_code in _RETRYABLE, code=code)


def sender_from_env(env: Mapping[str, str], *, timeout: float) -> AfricasTalkingSender:
    """The sender of AT_USERNAME / AT_API_KEY (AT_SENDER_ID, AT_API_BASE_URL optional);
    ValueError names a missing variable."""
    return AfricasTalkingSender(
        required_env(env, "AT_USERNAME", "send SMS"),
        required_env(env, "AT_API_KEY", "send SMS"),
        optional_env(env, "AT_SENDER_ID"),
        api_base_url=optional_env(env, "AT_API_BASE_URL"),
        timeout=timeout,
    )
