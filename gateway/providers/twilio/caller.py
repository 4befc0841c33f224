"""Outbound calls through Twilio's Calls API, with the official SDK: Twilio fetches the call's
instructions from the URL we pass."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.providers.base import CallResult, SendError
from gateway.providers.twilio.client import AccountClient, account_from_env, created_since, refusals
from gateway.providers.twilio.sms import PROVIDER


class TwilioCaller(AccountClient):
    """Places calls through Twilio's Calls API with the official SDK."""

    name: str = PROVIDER

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Dial `to`; Twilio fetches the call's first instructions from `url`."""
        if not url:
            raise SendError("twilio needs a URL for the call's instructions", retryable=False)
        kwargs: dict[str, Any] = {"to": to, "from_": self.from_number, "url": url}
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = ["answered", "completed"]
        with refusals(self._secrets):
            call = self._client.calls.create(**kwargs)
        return CallResult(provider_ref=str(call.sid), status=str(call.status))

    def find_placed(self, to: str, since: datetime) -> str | None:
        """The sid of a call to `to` from our number created since `since`: asked after a
        worker died between Twilio accepting a call and our commit, before any redial."""
        with refusals(self._secrets):
            found = self._client.calls.list(to=to, from_=self.from_number, limit=50)
        for call in found:
            if created_since(call, since):
                return str(call.sid)
        return None


def caller_from_env(env: Mapping[str, str]) -> TwilioCaller:
    """The caller of the deployment's Twilio account; ValueError names a missing variable."""
    account = account_from_env(env, "place calls")
    return TwilioCaller(
        account.sid,
        account.token,
        account.from_number,
        api_base_url=account.api_base_url,
    )
