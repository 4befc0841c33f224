"""The one Vonage REST client the sender and the caller share: base URL, auth, errors.

The SDK (vonage 4.x) builds every URL as `https://{api_host}{path}` and mounts its retrying
adapter on https only, so it cannot reach VENTANILLA's plain-HTTP fake, nor an HTTP proxy in
front of the API; and it has no async client. So the SDK does what it is good at — request
models (`vonage_messages.Sms`, `vonage_voice.CreateCallRequest`), application JWTs
(`vonage.Auth`) — and the request goes out here, to `VONAGE_API_BASE_URL` (default
https://api.nexmo.com), on one pooled `requests` session; the async path runs it in a thread.

Secrets are scrubbed and transport failures classified by gateway.providers.errors, as for
every provider.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from vonage import Auth

from gateway.providers.base import SendError
from gateway.providers.errors import network_error, retryable_status, scrub

DEFAULT_BASE = "https://api.nexmo.com"
_JSON = "application/json"
# Application JWTs are valid 15 minutes (the SDK's default): one is reused for 10.
_JWT_REUSE_SECONDS = 600
# Insufficient funds clears up once the account is topped up, like a 429 or a 5xx.
_PAYMENT_REQUIRED = 402
_Model = TypeVar("_Model")


def sdk_model(model: Callable[..., _Model], **fields: Any) -> _Model:
    """One of the SDK's request models; a number it refuses is a final SendError."""
    try:
        return model(**fields)
    except ValueError:  # pydantic's ValidationError: the SDK checks numbers (7-15 digits)
        raise SendError(
            "vonage needs an international number like +5491155550001",
            retryable=False,
            code="invalid_number",
        ) from None


class VonageApi:
    """POSTs JSON to the Vonage API with application JWT auth (or Basic for Messages)."""

    def __init__(
        self,
        *,
        api_key: str | None,
        api_secret: str | None,
        application_id: str | None,
        private_key: str | None,
        base_url: str | None,
        timeout: float,
    ) -> None:
        self.base_url = (base_url or DEFAULT_BASE).rstrip("/")
        self.timeout = timeout
        self._app = (
            Auth(application_id=application_id, private_key=private_key)
            if application_id and private_key
            else None
        )
        self._basic = (
            Auth(api_key=api_key, api_secret=api_secret).create_basic_auth_string()
            if api_key and api_secret
            else None
        )
        self._secrets = tuple(s for s in (api_secret, self._basic) if s)
        self._jwt: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers.update({"Accept": _JSON, "Content-Type": _JSON})

    @property
    def has_application(self) -> bool:
        return self._app is not None

    @property
    def has_basic(self) -> bool:
        return self._basic is not None

    def authorization(self, *, jwt_only: bool = False) -> str:
        """The Authorization header: the application's JWT, else Basic (Messages only)."""
        if self._app is None:
            if jwt_only or self._basic is None:
                raise SendError(
                    "vonage needs VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY"
                    + ("" if jwt_only else " (or VONAGE_API_KEY and VONAGE_API_SECRET)"),
                    retryable=False,
                )
            return str(self._basic)
        with self._lock:
            now = time.monotonic()
            if self._jwt is None or now - self._jwt[1] > _JWT_REUSE_SECONDS:
                token = self._app.generate_application_jwt().decode("ascii")
                self._jwt = (token, now)
            return "Bearer " + self._jwt[0]

    def post(self, path: str, payload: Mapping[str, Any], *, jwt_only: bool = False) -> Any:
        """POST `payload` as JSON; the answer's JSON, or SendError saying if a retry helps."""
        return self._send("POST", path, payload, jwt_only=jwt_only, answered=True)

    def put(self, path: str, payload: Mapping[str, Any], *, jwt_only: bool = False) -> None:
        """PUT `payload` as JSON (Vonage answers 204); SendError as for `post`."""
        self._send("PUT", path, payload, jwt_only=jwt_only, answered=False)

    def _send(
        self, method: str, path: str, payload: Mapping[str, Any], *, jwt_only: bool, answered: bool
    ) -> Any:
        headers = {"Authorization": self.authorization(jwt_only=jwt_only)}
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                json=dict(payload),
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise network_error("vonage", exc, self._secrets) from None
        if not answered and 200 <= response.status_code < 300:
            return None
        return self._result(response.status_code, response.text)

    async def post_async(
        self, path: str, payload: Mapping[str, Any], *, jwt_only: bool = False
    ) -> Any:
        """`post` in a worker thread (the session's pool is thread-safe for this use)."""
        return await asyncio.to_thread(self.post, path, payload, jwt_only=jwt_only)

    async def aclose(self) -> None:
        return None  # the session's pool lives as long as the client

    def _result(self, status: int, text: str) -> Any:
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if 200 <= status < 300:
            if not isinstance(data, dict):
                # Accepted but unreadable: it may be out, so retrying could duplicate it.
                raise SendError(
                    scrub(f"vonage HTTP {status}, unexpected body: {text}", self._secrets),
                    retryable=False,
                )
            return data
        raise self.error(status, data if isinstance(data, dict) else None, text)

    def error(self, status: int, problem: dict[str, Any] | None, text: str) -> SendError:
        """A refusal (RFC 7807 problem: type, title, detail) as a SendError."""
        title = detail = ""
        if problem is not None:
            title = str(problem.get("title") or "")
            detail = str(problem.get("detail") or "")
        summary = ": ".join(part for part in (title, detail) if part) or text or "(empty)"
        reason = scrub(f"vonage HTTP {status}: {summary}", self._secrets)
        retryable = status == _PAYMENT_REQUIRED or retryable_status(status)
        return SendError(reason, retryable=retryable, code=str(status))


def api_from_env(env: Mapping[str, str], timeout: float, purpose: str) -> VonageApi:
    """The client from VONAGE_* (an application, or for SMS an API key and secret)."""
    api = VonageApi(
        api_key=env.get("VONAGE_API_KEY", "").strip() or None,
        api_secret=env.get("VONAGE_API_SECRET", "").strip() or None,
        application_id=env.get("VONAGE_APPLICATION_ID", "").strip() or None,
        private_key=env.get("VONAGE_PRIVATE_KEY", "").strip() or None,
        base_url=env.get("VONAGE_API_BASE_URL", "").strip() or None,
        timeout=timeout,
    )
    if not (api.has_application or api.has_basic):
        raise ValueError(
            f"VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY must be set to {purpose} through Vonage"
        )
    return api
