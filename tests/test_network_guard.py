"""The suite cannot reach a real provider: the guard fails the attempt before DNS or connect."""

from __future__ import annotations

import pytest

from gateway.providers.twilio.sender import TwilioSender


def test_real_twilio_host_is_refused() -> None:
    sender = TwilioSender("AC" + "0" * 32, "not-a-real-token", "+5491155550000")
    with pytest.raises(AssertionError, match="'api.twilio.com': only 127.0.0.1 is allowed"):
        sender.send_sms("+5491155550001", "hola")


def test_connect_to_public_address_is_refused() -> None:
    import socket

    with socket.socket() as sock, pytest.raises(AssertionError, match="only 127.0.0.1"):
        sock.connect(("203.0.113.7", 443))
