"""Africa's Talking's documented REST API, called with `requests` / aiohttp, not its SDK.

The `africastalking` SDK (2.0.3) makes correct classification impossible, for SMS and voice:
- any non-2xx becomes `AfricasTalkingException(response.text)` with the HTTP status thrown away,
  so a 429 or 503 (retry) cannot be told from a 400 or 401 (do not) except by guessing from
  free text; and AT answers a Nigerian DND rejection with HTTP 409 *and* the usual JSON body;
- a 2xx body is parsed only when Content-Type is exactly "application/json" (with
  "; charset=utf-8" the caller gets a str);
- it is a module-level singleton whose `SMS._baseUrl` / `Voice._baseUrl` is reset by any other
  `initialize()` call in the process, which would silently send test traffic to the real host.
The requests are the SDK's own (same URLs, headers apiKey + Accept, same forms, same recipient
check), on pooled sessions with our timeout.
"""

from __future__ import annotations

import re

import requests

from gateway.providers.africastalking.sms import PROVIDER
from gateway.providers.base import SendError
from gateway.providers.errors import network_error, retryable_status, scrub

_RECIPIENT = re.compile(r"^\+\d{1,3}\d{3,}$")  # what the SDK's validate_phone accepts


def headers(api_key: str) -> dict[str, str]:
    """The headers of every request: the account's key, and JSON answers."""
    return {"apiKey": api_key, "Accept": "application/json"}


def check_recipient(to: str) -> None:
    """Refuse, before any request, a number AT would refuse (not international)."""
    if not _RECIPIENT.match(to):
        raise SendError(
            "africastalking needs an international number like +254711000001",
            retryable=False,
            code="invalid_number",
        )


class FormPoster:
    """POSTs forms to one AT endpoint on a pooled `requests` session; secrets kept out of errors."""

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.secrets = (api_key,)
        self._session = requests.Session()
        self._session.headers.update(headers(api_key))

    def post(self, form: dict[str, str]) -> tuple[int, str]:
        """(HTTP status, body); a transport failure is a `SendError`."""
        try:
            response = self._session.post(self.url, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise network_error(PROVIDER, exc, self.secrets) from None
        return response.status_code, response.text

    def http_error(self, http_status: int, text: str) -> SendError:
        """A refusal without AT's usual body (plain text, or empty)."""
        return SendError(
            scrub(f"{PROVIDER} HTTP {http_status}: {text or '(empty)'}", self.secrets),
            retryable=retryable_status(http_status),
        )

    def unreadable(self, http_status: int, text: str) -> SendError:
        """Accepted but unreadable: the message may be out or the phone ringing, so trying
        again could duplicate it."""
        return SendError(
            scrub(f"{PROVIDER} HTTP {http_status}, unexpected body: {text}", self.secrets),
            retryable=False,
        )
