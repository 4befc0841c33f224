"""How each provider authenticates its webhooks, done the way the provider does it.

The harness signs every recorded request with the secret the test app is configured with, so
the real verification code runs on every case: nothing is bypassed. A case that wants a bad
signature gives its own header or token (explicit values are never overwritten), or says
`"sign": false` to arrive unsigned.

One function per provider, registered in SIGNERS under the name its tables carry in
`"provider"`. A new provider adds its function and one line there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from gateway.forms import parse_form
from gateway.providers.twilio import compute_signature
from tests.conftest import AT_KEY, AT_TOKEN, PUBLIC_URL, TWILIO_TOKEN, VONAGE_SIGNATURE_SECRET


@dataclass(frozen=True)
class OutgoingRequest:
    """A recorded case as it will be sent: the query keeps its order (Twilio signs the URL)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def target(self) -> str:
        """Path and query, as the test client requests it."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path

    @property
    def public_url(self) -> str:
        """The URL the provider called: the configured public base, not the test host."""
        return PUBLIC_URL + self.target

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def with_header(self, name: str, value: str) -> OutgoingRequest:
        if self.header(name) is not None:
            return self  # the case chose its own (a wrong signature, say)
        return replace(self, headers={**self.headers, name: value})


Signer = Callable[[OutgoingRequest], OutgoingRequest]


def sign_twilio(request: OutgoingRequest) -> OutgoingRequest:
    """X-Twilio-Signature: HMAC-SHA1 of the public URL plus every form field, sorted."""
    form = parse_form(request.body, request.header("content-type"))
    signature = compute_signature(TWILIO_TOKEN, request.public_url, form)
    return request.with_header("X-Twilio-Signature", signature)


def sign_africastalking(request: OutgoingRequest) -> OutgoingRequest:
    """Africa's Talking signs nothing: the callback URL carries our secret token."""
    if any(name == "token" for name, _ in request.query):
        return request
    return replace(request, query=(("token", AT_TOKEN), *request.query))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vonage_jwt(
    body: bytes, secret: str = VONAGE_SIGNATURE_SECRET, *, now: int | None = None, **extra: Any
) -> str:
    """A Vonage signed-webhook JWT: HS256 with the signature secret; `payload_hash` is the
    SHA-256 hex of the raw body (what the receiver must check besides the signature).
    `extra` claims are added or replace these (an `exp`, a wrong `payload_hash`), for the
    tests of what the app refuses."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iat": int(time.time()) if now is None else now,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        **extra,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(mac)}"


def sign_vonage(request: OutgoingRequest) -> OutgoingRequest:
    """Authorization: Bearer <JWT> over the body, as Vonage signs Messages/Voice webhooks."""
    return request.with_header("Authorization", f"Bearer {vonage_jwt(request.body)}")


SIGNERS: dict[str, Signer] = {
    "twilio": sign_twilio,
    "africastalking": sign_africastalking,
    "vonage": sign_vonage,
}

# Secrets the test app holds: none may ever reach a log line or a response.
SECRETS: dict[str, str] = {
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "VENTANILLA_AT_WEBHOOK_TOKEN": AT_TOKEN,
    "AT_API_KEY": AT_KEY,
    "VONAGE_SIGNATURE_SECRET": VONAGE_SIGNATURE_SECRET,
}


def sign(provider: str, request: OutgoingRequest) -> OutgoingRequest:
    """`request` authenticated as `provider` authenticates its webhooks."""
    return SIGNERS[provider](request)
