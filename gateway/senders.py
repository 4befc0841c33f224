"""Outbound SMS through Twilio, Africa's Talking, or an outbox that only records.

Every sender answers with a `SendResult` or raises `SendError`, which says whether a retry can
help (`retryable`) and whether the provider refused because the citizen opted out
(`opted_out`). Secrets (auth token, API key) never appear in an error message or a log line.

Each sender sends one message at a time (`send_sms`) or, for the worker's batches, many at
once on one event loop (`send_sms_async`, on a pooled aiohttp session; `aclose` releases it).
Both paths build the same request and classify failures the same way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from gateway.providers import registry
from gateway.providers.base import CannotReconcile, SendError, SendResult, SmsSender

logger = logging.getLogger(__name__)

# Longest provider text kept in a SendError reason: enough to diagnose, short enough to store.
_MAX_REASON = 300


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove every secret from text meant for an error message or a log line, and shorten it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _network_error(
    provider: str, exc: requests.RequestException, secrets: tuple[str, ...]
) -> SendError:
    """A transport failure: retryable when the request may simply not have got through."""
    # A read timeout may come after the provider accepted the message, so a retry can duplicate
    # it; we still retry (a lost notification is worse), and the reference can be reconciled
    # later from the provider's message list.
    retryable = isinstance(
        exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
    )
    detail = _scrub(f"{type(exc).__name__}: {exc}", secrets)
    return SendError(f"{provider} unreachable: {detail}", retryable=retryable)


# What `_network_error` retries, on the async path: refused or dropped connections, timeouts,
# a body cut short. Anything else (a malformed URL, a redirect loop) will not get better.
_AIO_RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def _aio_network_error(provider: str, exc: Exception, secrets: tuple[str, ...]) -> SendError:
    """A transport failure on the async path, classified as `_network_error` does."""
    detail = _scrub(f"{type(exc).__name__}: {exc}", secrets)
    return SendError(f"{provider} unreachable: {detail}", retryable=isinstance(exc, _AIO_RETRYABLE))


_FORM = "application/x-www-form-urlencoded"

# Set by a caller that paces its sends (`watch_write`): resolved with the loop's clock when the
# request of the send started in that context has been written to the connection, after any
# connection set-up, which is when the provider starts counting it.
_WRITTEN: ContextVar[asyncio.Future[float] | None] = ContextVar("written", default=None)


def watch_write() -> asyncio.Future[float]:
    """A future for when the next request is written, for a task created after this call in
    the current context (a task copies the context it is created in)."""
    future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    _WRITTEN.set(future)
    return future


async def _on_request_written(_session: Any, _context: Any, _params: Any) -> None:
    future = _WRITTEN.get()
    if future is not None and not future.done():
        future.set_result(asyncio.get_running_loop().time())


class _LoopSession:
    """One aiohttp session per event loop: a pooled session cannot move between loops."""

    def __init__(self, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_request_written)
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # Bounded by the caller's concurrency; the connector's own cap is a backstop.
                connector=aiohttp.TCPConnector(limit=256),
                trace_configs=[trace],
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
        self._loop = None


# --------------------------------------------------------------------------------------------
# Twilio


# Twilio error codes that a later attempt can get past although the HTTP status is a 4xx.
_TWILIO_RETRYABLE_CODES = frozenset(
    {
        20429,  # too many concurrent requests (arrives as HTTP 429 too)
        21611,  # the sender's outgoing queue is full (~10 hours of traffic): it drains
    }
)
_CLOCK_SKEW = timedelta(minutes=2)


_TWILIO_OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient" (the citizen sent STOP)


class _AiohttpTwilioClient(AsyncHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's async transport on our pooled session.

    The SDK's own AsyncTwilioHttpClient (twilio 9.13) builds its session in `__init__`, which
    needs a running loop, never applies its own `timeout`, and passes aiohttp's deprecated
    `auth=`; this one takes the session of the running loop, applies the timeout, sends Basic
    auth as a header, and does not log every request at INFO as the SDK's clients do.
    """

    def __init__(self, session: _LoopSession) -> None:
        super().__init__(logger, True, session.timeout)
        self._session = session

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        sent_headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            sent_headers["Authorization"] = "Basic " + token
        body = None
        if data:
            # Encoded as `requests` encodes the sync client's form; aiohttp's FormData costs
            # about a third of the request's CPU.
            body = urlencode(data, doseq=True).encode()
            sent_headers["Content-Type"] = _FORM
        async with self._session.get().request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]  # the SDK passes str values
            data=body,
            headers=sent_headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self._session.timeout),
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text()
            return TwilioResponse(response.status, text, response.headers)


def twilio_rest_client(
    account_sid: str, auth_token: str, *, api_base_url: str | None, timeout: float
) -> Any:
    """The official SDK's client for api.twilio.com, or for TWILIO_API_BASE_URL when set."""
    client: Any = TwilioClient(
        account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout)
    )
    # Only the variables in our contract configure the client: TWILIO_EDGE / TWILIO_REGION
    # read from os.environ would rewrite the host, even the one of TWILIO_API_BASE_URL.
    client.edge = None
    client.region = None
    if api_base_url:
        # twilio 9.13: every api.twilio.com resource builds its URL from the Api domain's
        # `base_url` (twilio/base/domain.py, Domain.absolute_url), and `client.api` is cached.
        client.api.base_url = api_base_url.rstrip("/")
    return client


class TwilioSender:
    """Sends through Twilio's Messages API with the official SDK."""

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
        # The same SDK client for `create_async`, on a pooled aiohttp session.
        self._pool = _LoopSession(timeout)
        self._async_client: Any = TwilioClient(
            account_sid, auth_token, http_client=_AiohttpTwilioClient(self._pool)
        )
        self._async_client.edge = None
        self._async_client.region = None
        if api_base_url:
            self._async_client.api.base_url = api_base_url.rstrip("/")

    @property
    def sender_key(self) -> str:
        return f"twilio:{self.from_number}"

    def _message_args(self, to: str, body: str, status_callback: str | None) -> dict[str, Any]:
        sender = self.from_number
        if to.startswith("whatsapp:") and not sender.startswith("whatsapp:"):
            sender = "whatsapp:" + sender
        kwargs: dict[str, Any] = {"to": to, "from_": sender, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        return kwargs

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        """`send_sms` with the SDK's `create_async`."""
        kwargs = self._message_args(to, body, status_callback)
        try:
            message = await self._async_client.messages.create_async(**kwargs)
        except TwilioException as exc:
            raise self._classify(exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aio_network_error("twilio", exc, self._secrets) from None
        return SendResult(provider_ref=str(message.sid), status=str(message.status))

    async def aclose(self) -> None:
        await self._pool.close()

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one message; a `whatsapp:` recipient gets it from our number's WhatsApp form."""
        kwargs = self._message_args(to, body, status_callback)
        try:
            message = self._client.messages.create(**kwargs)
        except TwilioException as exc:
            raise self._classify(exc) from None
        except requests.RequestException as exc:
            # The SDK lets transport errors from `requests` through unchanged.
            raise _network_error("twilio", exc, self._secrets) from None
        return SendResult(provider_ref=str(message.sid), status=str(message.status))

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The sid of a message we already sent to `to` with this body since `since`, if any.

        Used after a worker died between Twilio accepting a message and our commit: the
        message is looked up before any resend, so the citizen does not get it twice.
        """
        try:
            # DateSent filters by day; the exact time and the body settle it.
            messages = self._client.messages.list(to=to, date_sent_after=since, limit=100)
        except TwilioException as exc:
            raise self._classify(exc) from None
        except requests.RequestException as exc:
            raise _network_error("twilio", exc, self._secrets) from None
        for message in messages:
            created = getattr(message, "date_created", None)
            if message.body == body and (created is None or created >= since - _CLOCK_SKEW):
                return str(message.sid)
        return None

    def _classify(self, exc: TwilioException) -> SendError:
        # TwilioRestException (classic JSON errors) and TwilioServiceException (RFC 9457 errors)
        # both carry `status` and `code`; anything else is a local SDK failure.
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        if isinstance(exc, TwilioRestException):
            text = str(exc.msg)
        else:
            text = str(getattr(exc, "detail", None) or getattr(exc, "title", None) or type(exc))
        reason = _scrub(f"twilio HTTP {status} error {code}: {text}", self._secrets)
        code_str = None if code is None else str(code)
        if code == _TWILIO_OPTED_OUT:
            return SendError(reason, retryable=False, code=code_str, opted_out=True)
        if not isinstance(status, int):
            return SendError(reason, retryable=False, code=code_str)
        retryable = status == 429 or status >= 500 or code in _TWILIO_RETRYABLE_CODES
        return SendError(reason, retryable=retryable, code=code_str)


# --------------------------------------------------------------------------------------------
# Africa's Talking
#
# We call AT's documented REST API (POST {base}/version1/messaging) with `requests` instead of
# the `africastalking` SDK (2.0.3), because the SDK makes correct classification impossible:
# - any non-2xx becomes `AfricasTalkingException(response.text)` with the HTTP status thrown away,
#   so a 429 or 503 (retry) cannot be told from a 400 or 401 (do not) except by guessing from
#   free text; and AT answers a Nigerian DND rejection with HTTP 409 *and* the usual JSON body;
# - a 2xx body is parsed only when Content-Type is exactly "application/json" (with
#   "; charset=utf-8" the caller gets a str);
# - it is a module-level singleton whose `SMS._baseUrl` is reset by any other `initialize()`
#   call in the process, which would silently send test traffic to the real host.
# The request is the SDK's own (same URL, headers apiKey + Accept, form username/to/message/
# from/bulkSMSMode, same recipient check), on a pooled session with our timeout.

_AT_DEFAULT_BASE = "https://api.africastalking.com"
_AT_RECIPIENT = re.compile(r"^\+\d{1,3}\d{3,}$")  # what the SDK's validate_phone accepts

# Per-recipient statusCode in SMSMessageData.Recipients[]:
_AT_ACCEPTED = frozenset({100, 101, 102})  # Processed, Sent, Queued
_AT_RETRYABLE = frozenset(
    {
        405,  # InsufficientBalance: succeeds once the account is topped up
        500,  # InternalServerError
        501,  # GatewayError
        502,  # RejectedByGateway (a gateway-side refusal; treated as transient like 500/501)
    }
)
_AT_OPTED_OUT = 406  # UserInBlacklist: the subscriber opted out of our sender id
# Final: 401 RiskHold, 402 InvalidSenderId, 403 InvalidPhoneNumber, 404 UnsupportedNumberType,
# 407 CouldNotRoute, 409 DoNotDisturbRejection (promotional sender outside the allowed hours)
# and any other code.


class AfricasTalkingSender:
    """Sends through Africa's Talking's SMS API (documented REST call; see the note above)."""

    name: str = "africastalking"

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
        self.url = (api_base_url or _AT_DEFAULT_BASE).rstrip("/") + "/version1/messaging"
        self.timeout = timeout
        self._secrets = (api_key,)
        self._session = requests.Session()
        self._session.headers.update({"apiKey": api_key, "Accept": "application/json"})
        self._pool = _LoopSession(timeout, {"apiKey": api_key, "Accept": "application/json"})

    @property
    def sender_key(self) -> str:
        return f"africastalking:{self.sender_id or self.username}"

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        # AT's messaging API has no look-up of sent messages by recipient and time.
        raise CannotReconcile("Africa's Talking cannot be asked whether a message was sent")

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS. AT has no per-message callback: reports go to the account's one URL."""
        del status_callback  # configured once in AT's dashboard, not per message
        form = self._form(to, body)
        try:
            response = self._session.post(self.url, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise _network_error("africastalking", exc, self._secrets) from None
        return self._classify(response.status_code, response.text)

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        """`send_sms` on the running loop, with the same request and classification."""
        del status_callback
        form = urlencode(self._form(to, body)).encode()
        try:
            async with self._pool.get().post(
                self.url, data=form, headers={"Content-Type": _FORM}
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aio_network_error("africastalking", exc, self._secrets) from None
        return self._classify(status, text)

    async def aclose(self) -> None:
        await self._pool.close()

    def _form(self, to: str, body: str) -> dict[str, str]:
        if not _AT_RECIPIENT.match(to):
            raise SendError(
                "africastalking needs an international number like +254711000001",
                retryable=False,
                code="invalid_number",
            )
        form = {"username": self.username, "to": to, "message": body, "bulkSMSMode": "1"}
        if self.sender_id:
            form["from"] = self.sender_id
        return form

    def _classify(self, http_status: int, text: str) -> SendResult:
        payload = _json_object(text)
        data = payload.get("SMSMessageData") if payload is not None else None
        if isinstance(data, dict):
            # The usual shape, even on some non-2xx answers (HTTP 409 for DND rejections).
            return self._recipient_result(http_status, data)
        if 200 <= http_status < 300:
            # Accepted but unreadable: the message may be out, so retrying could duplicate it.
            raise SendError(
                _scrub(
                    f"africastalking HTTP {http_status}, unexpected body: {text}", self._secrets
                ),
                retryable=False,
            )
        retryable = http_status == 429 or http_status >= 500
        raise SendError(
            _scrub(f"africastalking HTTP {http_status}: {text or '(empty)'}", self._secrets),
            retryable=retryable,
            code=None,
        )

    def _recipient_result(self, http_status: int, data: dict[str, Any]) -> SendResult:
        recipients = data.get("Recipients")
        first = recipients[0] if isinstance(recipients, list) and recipients else None
        if not isinstance(first, dict):
            # e.g. {"Message": "InvalidSenderId", "Recipients": []}: refused as a whole.
            summary = str(data.get("Message") or "no recipients")
            retryable = http_status == 429 or http_status >= 500
            raise SendError(
                _scrub(f"africastalking HTTP {http_status}: {summary}", self._secrets),
                retryable=retryable,
            )
        status_code = first.get("statusCode")
        status = str(first.get("status") or "")
        message_id = str(first.get("messageId") or "")
        if status_code in _AT_ACCEPTED and message_id not in ("", "None"):
            return SendResult(provider_ref=message_id, status=status)
        reason = _scrub(f"africastalking statusCode {status_code}: {status}", self._secrets)
        code = None if status_code is None else str(status_code)
        if status_code == _AT_OPTED_OUT:
            raise SendError(reason, retryable=False, code=code, opted_out=True)
        if status_code in _AT_ACCEPTED:
            raise SendError(reason + " without a messageId", retryable=False, code=code)
        raise SendError(reason, retryable=status_code in _AT_RETRYABLE, code=code)


def _json_object(text: str) -> dict[str, Any] | None:
    """The body as a JSON object, or None (AT's errors are often plain text)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

    # --------------------------------------------------------------------------------------------
    # Outbox


@dataclass(frozen=True)
class OutboxRecord:
    """One message the outbox sender recorded instead of sending."""

    provider_ref: str
    to: str
    body: str
    status_callback: str | None


class OutboxSender:
    """Records messages without sending them (the default provider; for development and demos)."""

    name: str = "outbox"

    def __init__(self, keep: int = 1000) -> None:
        # Bounded, so a long-running server in outbox mode does not grow without limit.
        self.records: deque[OutboxRecord] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Record the message and answer as if a provider had accepted it."""
        ref = "outbox-" + uuid.uuid4().hex
        with self._lock:
            self.records.append(OutboxRecord(ref, to, body, status_callback))
        logger.info("outbox recorded %s (%d characters)", ref, len(body))
        return SendResult(provider_ref=ref, status="recorded")

    sender_key: str = "outbox"

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        return self.send_sms(to, body, status_callback=status_callback)

    async def aclose(self) -> None:
        return None

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        raise CannotReconcile("the outbox keeps no record across processes")


# --------------------------------------------------------------------------------------------
# Configuration

SENDER_NAMES = tuple(p.name for p in registry.PROVIDERS if p.sms)


def required_env(env: Mapping[str, str], variable: str, purpose: str = "send SMS") -> str:
    """A provider variable that must be set; the error names it (shared with gateway.calls)."""
    value = env.get(variable, "").strip()
    if not value:
        raise ValueError(f"{variable} must be set to {purpose} through this provider")
    return value


def optional_env(env: Mapping[str, str], variable: str) -> str | None:
    return env.get(variable, "").strip() or None


_required, _optional = required_env, optional_env


def sender_from_env(name: str, env: Mapping[str, str], *, timeout: float = 10.0) -> SmsSender:
    """Build the sender `name` from the TWILIO_* / AT_* variables of the contract; `timeout`
    is how long one request to the provider may take ([delivery] timeout_seconds)."""
    if name == "twilio":
        return TwilioSender(
            _required(env, "TWILIO_ACCOUNT_SID"),
            _required(env, "TWILIO_AUTH_TOKEN"),
            _required(env, "TWILIO_FROM_NUMBER"),
            api_base_url=_optional(env, "TWILIO_API_BASE_URL"),
            timeout=timeout,
        )
    if name == "africastalking":
        return AfricasTalkingSender(
            _required(env, "AT_USERNAME"),
            _required(env, "AT_API_KEY"),
            _optional(env, "AT_SENDER_ID"),
            api_base_url=_optional(env, "AT_API_BASE_URL"),
            timeout=timeout,
        )
    if name == "vonage":
        # Imported here: the Vonage client reuses this module's pooled session helpers.
        from gateway.providers.vonage.sender import sender_from_env as vonage_sender

        return vonage_sender(env, timeout=timeout)
    if name == "outbox":
        return OutboxSender()
    raise ValueError(f"unknown SMS provider {name!r}; expected one of {', '.join(SENDER_NAMES)}")
