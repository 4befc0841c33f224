"""Africa's Talking webhook authentication: a secret token every callback URL carries."""

from __future__ import annotations

import hmac

from gateway.forms import BadRequest


def verify_token(expected: str | None, given: str | None) -> None:
    """403 unless the callback URL carries the configured secret token."""
    if not expected:
        raise BadRequest("Africa's Talking webhooks are disabled: no webhook token set", 403)
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise BadRequest("invalid token", 403)
