"""Africa's Talking: token-protected callbacks in, AT XML and USSD text out, its REST API."""

from gateway.providers.africastalking.auth import verify_token
from gateway.providers.africastalking.sms import (
    OPTED_OUT_REASONS,
    PROVIDER,
    STATUS_MAP,
    parse_delivery,
    parse_sms,
)
from gateway.providers.africastalking.ussd import UssdRequest, parse_ussd, render_ussd
from gateway.providers.africastalking.voice import VoiceRequest, parse_voice

__all__ = [
    "OPTED_OUT_REASONS",
    "PROVIDER",
    "STATUS_MAP",
    "UssdRequest",
    "VoiceRequest",
    "parse_delivery",
    "parse_sms",
    "parse_ussd",
    "parse_voice",
    "render_ussd",
    "verify_token",
]
