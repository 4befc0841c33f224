"""Vonage's inbound SMS and message-status webhooks behind the shared `SmsWebhooks` interface."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from casestore.inbound import Inbound, StatusUpdate
from gateway.providers.base import Answer, WebhookRequest
from gateway.providers.vonage.auth import verify_webhook
from gateway.providers.vonage.sms import PROVIDER, json_body, parse_sms, parse_status


class VonageWebhooks:
    """Every request carries a signed JWT; replies go out through the Messages API (outbox)."""

    sms_path: ClassVar[str] = "/webhooks/vonage/sms"
    status_path: ClassVar[str] = "/webhooks/vonage/status"
    name = PROVIDER
    replies_inline = False

    def __init__(self, env: Mapping[str, str]) -> None:
        self._secret = env.get("VONAGE_SIGNATURE_SECRET") or None

    def verify(self, request: WebhookRequest) -> None:
        verify_webhook(self._secret, request.headers.get("authorization"), request.raw_body)

    def parse_sms(self, request: WebhookRequest, received_at: datetime, country: str) -> Inbound:
        return parse_sms(json_body(request.body), received_at, country)

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        return parse_status(json_body(request.body))

    def answer_sms(self, reply: str | None) -> Answer:
        return Answer("ok")

    def answer_status(self) -> Answer:
        return Answer("ok")
