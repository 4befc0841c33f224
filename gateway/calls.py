"""Outbound calls through Twilio, Africa's Talking, or an outbox that only records.

Every caller answers with a `CallResult` or raises the same `SendError` the SMS senders raise,
so the worker treats a refused call like a refused message: `retryable` says whether trying
again can help. Secrets never appear in an error message or a log line.

The two providers bring the call back differently: Twilio fetches the `url` we pass with the
call; Africa's Talking takes no URL per call and posts the answered call to the number's one
configured voice callback, where we recognise it by the `sessionId` returned here.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from gateway.providers import registry
from gateway.providers.base import Caller, CallResult, CannotReconcile, SendError
from gateway.senders import (
    _CLOCK_SKEW,
    _json_object,
    _network_error,
    _scrub,
    optional_env,
    required_env,
    twilio_rest_client,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Twilio

# Twilio error codes a later attempt can get past although the HTTP status is a 4xx.
_TWILIO_RETRYABLE_CODES = frozenset({20429})  # too many concurrent requests


class TwilioCaller:
    """Places calls through Twilio's Calls API with the official SDK."""

    name: str = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.from_number = from_number
        self._secrets = (auth_token,)
        self._client: Any = twilio_rest_client(
            account_sid, auth_token, api_base_url=api_base_url, timeout=timeout
        )

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        if not url:
            raise SendError("twilio needs a URL for the call's instructions", retryable=False)
        kwargs: dict[str, Any] = {"to": to, "from_": self.from_number, "url": url}
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = ["answered", "completed"]
        try:
            call = self._client.calls.create(**kwargs)
        except TwilioException as exc:
            raise self._classify(exc) from None
        except requests.RequestException as exc:
            raise _network_error("twilio", exc, self._secrets) from None
        return CallResult(provider_ref=str(call.sid), status=str(call.status))

    def find_placed(self, to: str, since: datetime) -> str | None:
        """The sid of a call to `to` from our number created since `since`: asked after a
        worker died between Twilio accepting a call and our commit, before any redial."""
        try:
            found = self._client.calls.list(to=to, from_=self.from_number, limit=50)
        except TwilioException as exc:
            raise self._classify(exc) from None
        except requests.RequestException as exc:
            raise _network_error("twilio", exc, self._secrets) from None
        for call in found:
            created = getattr(call, "date_created", None)
            if created is None or created >= since - _CLOCK_SKEW:
                return str(call.sid)
        return None

    def _classify(self, exc: TwilioException) -> SendError:
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        if isinstance(exc, TwilioRestException):
            text = str(exc.msg)
        else:
            text = str(getattr(exc, "detail", None) or getattr(exc, "title", None) or type(exc))
        reason = _scrub(f"twilio HTTP {status} error {code}: {text}", self._secrets)
        code_str = None if code is None else str(code)
        if not isinstance(status, int):
            return SendError(reason, retryable=False, code=code_str)
        # 4xx: bad or unreachable number (21211, 21217), no permission to call that country
        # (21215, 21216), missing parameters: another attempt fails the same way.
        retryable = status == 429 or status >= 500 or code in _TWILIO_RETRYABLE_CODES
        return SendError(reason, retryable=retryable, code=code_str)


# --------------------------------------------------------------------------------------------
# Africa's Talking
#
# The documented REST call (POST {voice base}/call, form username/from/to, header apiKey) with
# `requests`, for the reasons gateway.senders gives for SMS, which hold for the SDK's Voice
# service too (africastalking 2.0.3): any non-2xx becomes AfricasTalkingException(text) with
# the HTTP status thrown away, so a 503 (retry) cannot be told from a 401 (do not); a 2xx body
# is parsed only when Content-Type is exactly "application/json"; and `Voice._baseUrl` lives on
# a module singleton that any `initialize()` in the process resets to the real host.

_AT_VOICE_DEFAULT_BASE = "https://voice.africastalking.com"
_AT_RECIPIENT = re.compile(r"^\+\d{1,3}\d{3,}$")
_AT_ACCEPTED = frozenset({"Queued"})
# Per-entry statuses that clear up by themselves; anything else (InvalidPhoneNumber,
# DestinationNotSupported, …) is final.
_AT_RETRYABLE = frozenset({"InsufficientCredit", "InternalServerError", "NotConnected"})


class AfricasTalkingCaller:
    """Places calls through Africa's Talking's voice API (documented REST call; see above)."""

    name: str = "africastalking"

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
        self.url = (voice_base_url or _AT_VOICE_DEFAULT_BASE).rstrip("/") + "/call"
        self.timeout = timeout
        self._secrets = (api_key,)
        self._session = requests.Session()
        self._session.headers.update({"apiKey": api_key, "Accept": "application/json"})

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Dial `to`. AT takes no per-call URL: the number's voice callback runs the call."""
        del url, status_callback  # configured once for the number in AT's dashboard
        if not _AT_RECIPIENT.match(to):
            raise SendError(
                "africastalking needs an international number like +254711000001",
                retryable=False,
                code="invalid_number",
            )
        form = {"username": self.username, "from": self.from_number, "to": to}
        try:
            response = self._session.post(self.url, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise _network_error("africastalking", exc, self._secrets) from None
        return self._classify(response.status_code, response.text)

    def find_placed(self, to: str, since: datetime) -> str | None:
        """Africa's Talking has no list of calls placed: a redial cannot be ruled out."""
        raise CannotReconcile("africastalking cannot list the calls it placed")

    def _classify(self, http_status: int, text: str) -> CallResult:
        payload = _json_object(text)
        if not 200 <= http_status < 300:
            retryable = http_status == 429 or http_status >= 500
            raise SendError(
                _scrub(f"africastalking HTTP {http_status}: {text or '(empty)'}", self._secrets),
                retryable=retryable,
            )
        entries = payload.get("entries") if payload is not None else None
        first = entries[0] if isinstance(entries, list) and entries else None
        if not isinstance(first, dict):
            if payload is None:
                # Accepted but unreadable: the phone may be ringing, so do not dial again.
                raise SendError(
                    _scrub(
                        f"africastalking HTTP {http_status}, unexpected body: {text}",
                        self._secrets,
                    ),
                    retryable=False,
                )
            # {"entries": [], "errorMessage": "Invalid callerId"}: refused as a whole.
            message = str(payload.get("errorMessage") or "no entries")
            raise SendError(
                _scrub(f"africastalking refused the call: {message}", self._secrets),
                retryable=False,
            )
        status = str(first.get("status") or "")
        session_id = str(first.get("sessionId") or "")
        if status in _AT_ACCEPTED and session_id not in ("", "None"):
            return CallResult(provider_ref=session_id, status=status)
        reason = _scrub(f"africastalking call status {status or '(none)'}", self._secrets)
        if status in _AT_ACCEPTED:
            raise SendError(reason + " without a sessionId", retryable=False, code=status)
        raise SendError(reason, retryable=status in _AT_RETRYABLE, code=status or None)


# --------------------------------------------------------------------------------------------
# Outbox


@dataclass(frozen=True)
class RecordedCall:
    provider_ref: str
    to: str
    url: str | None


class OutboxCaller:
    """Records calls without placing them (the default; the simulator can answer them)."""

    name: str = "outbox"

    def __init__(self, keep: int = 1000) -> None:
        self.records: deque[RecordedCall] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        ref = "outbox-" + uuid.uuid4().hex
        with self._lock:
            self.records.append(RecordedCall(ref, to, url))
        logger.info("outbox recorded call %s", ref)
        return CallResult(provider_ref=ref, status="recorded")

    def find_placed(self, to: str, since: datetime) -> str | None:
        raise CannotReconcile("the outbox keeps no calls across processes")


class TwilioRecordings:
    """Call recordings Twilio keeps for an account: listed per call and deleted on erasure."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._secrets = (auth_token,)
        self._client: Any = twilio_rest_client(
            account_sid, auth_token, api_base_url=api_base_url, timeout=timeout
        )

    def of_call(self, call_sid: str) -> list[str]:
        """The recording SIDs of one call (GET …/Recordings.json?CallSid=…)."""
        try:
            return [str(r.sid) for r in self._client.recordings.list(call_sid=call_sid)]
        except TwilioException as exc:
            raise SendError(_scrub(str(exc), self._secrets), retryable=True) from None
        except requests.RequestException as exc:
            raise _network_error("twilio", exc, self._secrets) from None

    def delete(self, recording_sid: str) -> None:
        """Delete one recording (DELETE …/Recordings/RE….json); one already gone is fine."""
        try:
            self._client.recordings(recording_sid).delete()
        except TwilioRestException as exc:
            if exc.status != 404:
                raise SendError(_scrub(str(exc), self._secrets), retryable=True) from None
        except TwilioException as exc:
            raise SendError(_scrub(str(exc), self._secrets), retryable=True) from None
        except requests.RequestException as exc:
            raise _network_error("twilio", exc, self._secrets) from None


def recordings_from_env(env: Mapping[str, str]) -> TwilioRecordings | None:
    """Twilio's recordings API for this deployment, or None without a Twilio account."""
    sid, token = optional_env(env, "TWILIO_ACCOUNT_SID"), optional_env(env, "TWILIO_AUTH_TOKEN")
    if sid is None or token is None:
        return None
    return TwilioRecordings(sid, token, api_base_url=optional_env(env, "TWILIO_API_BASE_URL"))


# --------------------------------------------------------------------------------------------
# Configuration

CALLER_NAMES = tuple(p.name for p in registry.PROVIDERS if p.voice)


def _required(env: Mapping[str, str], variable: str) -> str:
    return required_env(env, variable, "place calls")


_optional = optional_env


def caller_from_env(name: str, env: Mapping[str, str]) -> Caller:
    """Build the caller `name` (VENTANILLA_VOICE_PROVIDER) from the contract's variables."""
    if name == "twilio":
        return TwilioCaller(
            _required(env, "TWILIO_ACCOUNT_SID"),
            _required(env, "TWILIO_AUTH_TOKEN"),
            _required(env, "TWILIO_FROM_NUMBER"),
            api_base_url=_optional(env, "TWILIO_API_BASE_URL"),
        )
    if name == "africastalking":
        return AfricasTalkingCaller(
            _required(env, "AT_USERNAME"),
            _required(env, "AT_API_KEY"),
            _required(env, "AT_VOICE_NUMBER"),
            voice_base_url=_optional(env, "AT_VOICE_BASE_URL"),
        )
    if name == "vonage":
        from gateway.providers.vonage.caller import caller_from_env as vonage_caller

        return vonage_caller(env)
    if name == "outbox":
        return OutboxCaller()
    raise ValueError(f"unknown voice provider {name!r}; expected one of {', '.join(CALLER_NAMES)}")
