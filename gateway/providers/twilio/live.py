"""Twilio live-call control: a call in progress gets new TwiML through the Calls API.

That is how a caller moves to another department's queue (a transfer) or to a queue of their
own that the operator's Dial then empties.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from gateway.providers.base import SendError
from gateway.providers.twilio.client import refusals, rest_client


@lru_cache(maxsize=4)
def _rest(account_sid: str, auth_token: str, base_url: str | None) -> Any:
    return rest_client(account_sid, auth_token, api_base_url=base_url)


def redirect_call(env: Mapping[str, str], call_sid: str, twiml: str) -> None:
    """Give a live Twilio call new TwiML (Calls API update); SendError if Twilio refuses."""
    sid, token = env.get("TWILIO_ACCOUNT_SID", ""), env.get("TWILIO_AUTH_TOKEN", "")
    if not sid or not token:
        raise SendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set", retryable=False)
    client = _rest(sid, token, env.get("TWILIO_API_BASE_URL") or None)
    with refusals((token,)):
        client.calls(call_sid).update(twiml=twiml)
