"""Vonage signed webhooks: `Authorization: Bearer <JWT>`, HS256 with the signature secret.

The SDK's `vonage_jwt.verify_signature` checks the token's signature (through PyJWT, which also
refuses an `exp` in the past and an `iat` in the future); it does not look at the body, so the
`payload_hash` claim (SHA-256 hex of the raw body) is checked here. Vonage's docs set no maximum
age for `iat`, and a replayed request is harmless (every inbound is idempotent on its
message_uuid / call uuid + step), so no age limit is imposed beyond PyJWT's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from vonage_jwt import VonageVerifyJwtError, verify_signature

from gateway.forms import BadRequest


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload_hash(body: bytes) -> str:
    """The `payload_hash` claim Vonage puts in a signed webhook's token."""
    return hashlib.sha256(body).hexdigest()


def _claims(token: str) -> dict[str, Any]:
    """The token's claims, read only after its signature was verified."""
    try:
        value = json.loads(_b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise BadRequest("invalid Vonage signature", 403) from exc
    if not isinstance(value, dict):
        raise BadRequest("invalid Vonage signature", 403)
    return value


def verify_webhook(secret: str | None, authorization: str | None, raw_body: bytes) -> None:
    """403 unless the bearer token is signed with `secret` and its payload_hash is this body's.

    A body-less request (the answer URL fetched with GET) may carry no payload_hash; any
    request with a body must.
    """
    if not secret:
        raise BadRequest("Vonage webhooks are disabled: VONAGE_SIGNATURE_SECRET is not set", 403)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest("missing Vonage signature", 403)
    token = token.strip()
    try:
        valid = verify_signature(token, secret)
    except VonageVerifyJwtError:  # malformed, expired, or issued in the future
        valid = False
    if not valid:
        raise BadRequest("invalid Vonage signature", 403)
    claimed = _claims(token).get("payload_hash")
    if claimed is None and not raw_body:
        return
    if not isinstance(claimed, str) or not hmac.compare_digest(
        claimed.lower().encode(), payload_hash(raw_body).encode()
    ):
        raise BadRequest("Vonage payload_hash does not match the body", 403)
