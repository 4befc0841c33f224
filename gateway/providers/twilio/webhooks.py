"""Twilio's SMS/WhatsApp and status webhooks behind the shared `SmsWebhooks` interface."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from casestore.inbound import Inbound, StatusUpdate
from gateway.providers.base import Answer, WebhookRequest
from gateway.providers.twilio.auth import verify_signature
from gateway.providers.twilio.sms import PROVIDER, parse_sms, parse_status, render_sms_reply


class TwilioWebhooks:
    """Every request is signed (X-Twilio-Signature); the reply travels in the TwiML answer."""

    sms_path: ClassVar[str] = "/webhooks/twilio/sms"
    status_path: ClassVar[str] = "/webhooks/twilio/status"
    name = PROVIDER
    replies_inline = True

    def __init__(self, env: Mapping[str, str]) -> None:
        self._auth_token = env.get("TWILIO_AUTH_TOKEN") or None

    def verify(self, request: WebhookRequest) -> None:
        request.form()  # 400 for anything but a form, before the signature is looked at
        verify_signature(
            self._auth_token,
            request.url,
            request.signed_form(),
            request.headers.get("x-twilio-signature"),
        )

    def parse_sms(self, request: WebhookRequest, received_at: datetime, country: str) -> Inbound:
        return parse_sms(request.form(), received_at, country)

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        return parse_status(request.form())

    def answer_sms(self, reply: str | None) -> Answer:
        return Answer(render_sms_reply(reply), "application/xml")

    def answer_status(self) -> Answer:
        return Answer("ok")
