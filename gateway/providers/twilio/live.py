"""Twilio live-call control: a call in progress gets new TwiML through the Calls API.

That is how a caller moves to another department's queue (a transfer) or to a queue of their
own that the operator's Dial then empties.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from gateway.providers.base import SendError
from gateway.senders import _network_error, _scrub

MOVES_LIVE_CALLS = True  # a caller can be moved between queues mid-call


@lru_cache(maxsize=4)
def _rest(account_sid: str, auth_token: str, base_url: str | None) -> Any:
    client: Any = TwilioClient(account_sid, auth_token, http_client=TwilioHttpClient(timeout=10))
    client.edge = None  # TWILIO_EDGE / TWILIO_REGION would rewrite the host
    client.region = None
    if base_url:
        client.api.base_url = base_url.rstrip("/")
    return client


def redirect_call(env: Mapping[str, str], call_sid: str, twiml: str) -> None:
    """Give a live Twilio call new TwiML (Calls API update); SendError if Twilio refuses."""
    sid, token = env.get("TWILIO_ACCOUNT_SID", ""), env.get("TWILIO_AUTH_TOKEN", "")
    if not sid or not token:
        raise SendError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set", retryable=False)
    client = _rest(sid, token, env.get("TWILIO_API_BASE_URL") or None)
    try:
        client.calls(call_sid).update(twiml=twiml)
    except TwilioException as exc:
        status = getattr(exc, "status", None)
        text = _scrub(f"twilio HTTP {status}: {getattr(exc, 'msg', exc)}", (token,))
        retryable = isinstance(status, int) and (status == 429 or status >= 500)
        raise SendError(text, retryable=retryable) from None
    except requests.RequestException as exc:
        raise _network_error("twilio", exc, (token,)) from None
