"""Twilio: signed webhooks in, TwiML out, the REST API through the official SDK."""

from gateway.providers.twilio.auth import compute_signature, verify_signature
from gateway.providers.twilio.sms import (
    EMPTY_RESPONSE,
    OPTED_OUT_CODES,
    PROVIDER,
    STATUS_MAP,
    WHATSAPP_PREFIX,
    parse_sms,
    parse_status,
    render_sms_reply,
)

__all__ = [
    "EMPTY_RESPONSE",
    "OPTED_OUT_CODES",
    "PROVIDER",
    "STATUS_MAP",
    "WHATSAPP_PREFIX",
    "compute_signature",
    "parse_sms",
    "parse_status",
    "render_sms_reply",
    "verify_signature",
]
