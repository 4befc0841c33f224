"""Outbound calls through Africa's Talking's voice API (the documented REST call, see `rest`).

AT takes no URL per call: it posts the answered call to the number's one configured voice
callback, where we recognise it by the `sessionId` returned here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gateway.providers.africastalking.rest import FormPoster, check_recipient
from gateway.providers.africastalking.sms import PROVIDER
from gateway.providers.base import CallResult, CannotReconcile, SendError
from gateway.providers.env import optional_env, required_env
from gateway.providers.errors import json_object, scrub

DEFAULT_VOICE_BASE = "https://voice.africastalking.com"
_ACCEPTED = frozenset({"Queued"})
# Per-entry statuses that clear up by themselves; anything else (InvalidPhoneNumber,
# DestinationNotSupported, …) is final.
_RETRYABLE = frozenset({"InsufficientCredit", "InternalServerError", "NotConnected"})


class AfricasTalkingCaller:
    """Places calls through Africa's Talking's voice API (POST {voice base}/call)."""

    name: str = PROVIDER

    def __init__(
        self,
        username: str,
        api_key: str,
        from_number: str,
        *,
        voice_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.username = username
        self.from_number = from_number
        self.url = (voice_base_url or DEFAULT_VOICE_BASE).rstrip("/") + "/call"
        self.timeout = timeout
        self._poster = FormPoster(self.url, api_key, timeout)
        self._secrets = self._poster.secrets

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Dial `to`. AT takes no per-call URL: the number's voice callback runs the call."""
        del url, status_callback  # configured once for the number in AT's dashboard
        check_recipient(to)
        form = {"username": self.username, "from": self.from_number, "to": to}
        return self._classify(*self._poster.post(form))

    def find_placed(self, to: str, since: datetime) -> str | None:
        """Africa's Talking has no list of calls placed: a redial cannot be ruled out."""
        raise CannotReconcile("africastalking cannot list the calls it placed")

    def _classify(self, http_status: int, text: str) -> CallResult:
        payload = json_object(text)
        if not 200 <= http_status < 300:
            raise self._poster.http_error(http_status, text)
        entries = payload.get("entries") if payload is not None else None
        first = entries[0] if isinstance(entries, list) and entries else None
        if not isinstance(first, dict):
            if payload is None:
                raise self._poster.unreadable(http_status, text)
            # {"entries": [], "errorMessage": "Invalid callerId"}: refused as a whole.
            message = str(payload.get("errorMessage") or "no entries")
            raise SendError(
                scrub(f"{PROVIDER} refused the call: {message}", self._secrets),
                retryable=False,
            )
        status = str(first.get("status") or "")
        session_id = str(first.get("sessionId") or "")
        if status in _ACCEPTED and session_id not in ("", "None"):
            return CallResult(provider_ref=session_id, status=status)
        reason = scrub(f"{PROVIDER} call status {status or '(none)'}", self._secrets)
        if status in _ACCEPTED:
            raise SendError(reason + " without a sessionId", retryable=False, code=status)
        raise SendError(reason, retryable=status in _RETRYABLE, code=status or None)


def caller_from_env(env: Mapping[str, str]) -> AfricasTalkingCaller:
    """The caller of AT_USERNAME / AT_API_KEY / AT_VOICE_NUMBER (AT_VOICE_BASE_URL optional);
    ValueError names a missing variable."""
    return AfricasTalkingCaller(
        required_env(env, "AT_USERNAME", "place calls"),
        required_env(env, "AT_API_KEY", "place calls"),
        required_env(env, "AT_VOICE_NUMBER", "place calls"),
        voice_base_url=optional_env(env, "AT_VOICE_BASE_URL"),
    )
