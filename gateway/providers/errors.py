"""Transport failures classified once for every provider client: can a retry help?

A provider's own refusals (Twilio error codes, Africa's Talking status codes) are classified in
its package; what is shared lives here: secrets scrubbed from every reason, an HTTP status or a
dropped connection turned into a `SendError` the same way on the sync and the async path.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import requests

from gateway.providers.base import SendError

# Longest provider text kept in a SendError reason: enough to diagnose, short enough to store.
MAX_REASON = 300

# Every transport failure a client may see: `requests` on the sync path, aiohttp on the async
# one (the SDKs let both through unchanged).
TRANSPORT_ERRORS = (requests.RequestException, aiohttp.ClientError, TimeoutError)

# The transport failures a retry can get past: refused or dropped connections, timeouts, a body
# cut short. Anything else (a malformed URL, a redirect loop) will not get better.
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove every secret from text meant for an error message or a log line, and shorten it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def network_error(provider: str, exc: Exception, secrets: tuple[str, ...]) -> SendError:
    """A transport failure: retryable when the request may simply not have got through."""
    # A read timeout may come after the provider accepted the message, so a retry can duplicate
    # it; we still retry (a lost notification is worse), and the reference can be reconciled
    # later from the provider's message list.
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    return SendError(f"{provider} unreachable: {detail}", retryable=isinstance(exc, _RETRYABLE))


def retryable_status(http_status: int) -> bool:
    """An HTTP answer a later attempt can get past: rate limited, or the provider's fault."""
    return http_status == 429 or http_status >= 500


def json_object(text: str) -> dict[str, Any] | None:
    """The body as a JSON object, or None (providers' errors are often plain text)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
