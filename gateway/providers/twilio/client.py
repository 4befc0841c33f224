"""Twilio's REST client, set up once: the official SDK on our timeout and base URL, on a
blocking `requests` transport or on the pooled aiohttp session, and its errors classified."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from gateway.providers.base import SendError
from gateway.providers.env import optional_env, required_env
from gateway.providers.errors import TRANSPORT_ERRORS, network_error, retryable_status, scrub
from gateway.providers.http import FORM, LoopSession
from gateway.providers.twilio.sms import OPTED_OUT_CODES, PROVIDER

logger = logging.getLogger(__name__)

# Twilio error codes that a later attempt can get past although the HTTP status is a 4xx.
RETRYABLE_CODES = frozenset(
    {
        20429,  # too many concurrent requests (arrives as HTTP 429 too)
        21611,  # the sender's outgoing queue is full (~10 hours of traffic): it drains
    }
)
# Twilio's clock and ours may differ this much when a look-up compares creation times.
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class Account:
    """The Twilio account of the contract's variables, and the number we send and call from."""

    sid: str
    token: str
    from_number: str
    api_base_url: str | None  # TWILIO_API_BASE_URL: a test server instead of api.twilio.com


def account_from_env(env: Mapping[str, str], purpose: str) -> Account:
    """TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN / TWILIO_FROM_NUMBER (and TWILIO_API_BASE_URL);
    ValueError names a missing variable and the `purpose` it is needed for."""
    return Account(
        required_env(env, "TWILIO_ACCOUNT_SID", purpose),
        required_env(env, "TWILIO_AUTH_TOKEN", purpose),
        required_env(env, "TWILIO_FROM_NUMBER", purpose),
        optional_env(env, "TWILIO_API_BASE_URL"),
    )


def rest_client(
    account_sid: str,
    auth_token: str,
    *,
    api_base_url: str | None,
    timeout: float = 10.0,
    pool: LoopSession | None = None,
) -> Any:
    """The official SDK's client for api.twilio.com, or for TWILIO_API_BASE_URL when set;
    on `requests`, or on the pooled aiohttp session `pool` for the SDK's `*_async` methods."""
    http_client = TwilioHttpClient(timeout=timeout) if pool is None else _AiohttpClient(pool)
    client: Any = TwilioClient(account_sid, auth_token, http_client=http_client)
    # Only the variables in our contract configure the client: TWILIO_EDGE / TWILIO_REGION
    # read from os.environ would rewrite the host, even the one of TWILIO_API_BASE_URL.
    client.edge = None
    client.region = None
    if api_base_url:
        # twilio 9.13: every api.twilio.com resource builds its URL from the Api domain's
        # `base_url` (twilio/base/domain.py, Domain.absolute_url), and `client.api` is cached.
        client.api.base_url = api_base_url.rstrip("/")
    return client


def classify(exc: TwilioException, secrets: tuple[str, ...]) -> SendError:
    """What Twilio's refusal means: retryable or not, an opt-out, with Twilio's error code."""
    # TwilioRestException (classic JSON errors) and TwilioServiceException (RFC 9457 errors)
    # both carry `status` and `code`; anything else is a local SDK failure.
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if isinstance(exc, TwilioRestException):
        text = str(exc.msg)
    else:
        text = str(getattr(exc, "detail", None) or getattr(exc, "title", None) or type(exc))
    reason = scrub(f"{PROVIDER} HTTP {status} error {code}: {text}", secrets)
    code_str = None if code is None else str(code)
    if code_str in OPTED_OUT_CODES:  # the citizen sent STOP
        return SendError(reason, retryable=False, code=code_str, opted_out=True)
    if not isinstance(status, int):
        return SendError(reason, retryable=False, code=code_str)
    # Other 4xx: a bad or unreachable number (21211, 21217), no permission for that country
    # (21215, 21216), missing parameters: another attempt fails the same way.
    retryable = retryable_status(status) or code in RETRYABLE_CODES
    return SendError(reason, retryable=retryable, code=code_str)


@contextmanager
def refusals(secrets: tuple[str, ...]) -> Iterator[None]:
    """Turn what the SDK raises inside the block (Twilio's refusals, transport failures) into
    a classified `SendError` without the secrets."""
    try:
        yield
    except TwilioException as exc:
        raise classify(exc, secrets) from None
    except TRANSPORT_ERRORS as exc:
        raise network_error(PROVIDER, exc, secrets) from None


class AccountClient:
    """The SDK's client of one account, sending or calling from our number."""

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
        self._account = (account_sid, auth_token, api_base_url)
        self._timeout = timeout
        self._client: Any = rest_client(
            account_sid, auth_token, api_base_url=api_base_url, timeout=timeout
        )


def created_since(resource: Any, since: datetime) -> bool:
    """Whether Twilio created this message or call at `since` or later (or did not say when)."""
    created = getattr(resource, "date_created", None)
    return created is None or bool(created >= since - CLOCK_SKEW)


class _AiohttpClient(AsyncHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's async transport on our pooled session.

    The SDK's own AsyncTwilioHttpClient (twilio 9.13) builds its session in `__init__`, which
    needs a running loop, never applies its own `timeout`, and passes aiohttp's deprecated
    `auth=`; this one takes the session of the running loop, applies the timeout, sends Basic
    auth as a header, and does not log every request at INFO as the SDK's clients do.
    """

    def __init__(self, session: LoopSession) -> None:
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
            sent_headers["Content-Type"] = FORM
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
