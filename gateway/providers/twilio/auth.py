"""Twilio webhook authentication: X-Twilio-Signature over the public URL and every field."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from gateway.forms import BadRequest


def compute_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's scheme: HMAC-SHA1 over the URL plus every field name and value, sorted."""
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(
    auth_token: str | None, url: str, form: Mapping[str, str], signature: str | None
) -> None:
    """403 unless X-Twilio-Signature matches the public URL and every received field."""
    if not auth_token:
        raise BadRequest("Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is not set", 403)
    if not signature:
        raise BadRequest("invalid X-Twilio-Signature", 403)
    # The direct HMAC is ~10x cheaper than the SDK's validator on the hot path; the SDK then
    # settles the remaining cases (URL with and without the default port).
    expected = compute_signature(auth_token, url, form)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return
    if not RequestValidator(auth_token).validate(url, dict(form), signature):
        raise BadRequest("invalid X-Twilio-Signature", 403)
