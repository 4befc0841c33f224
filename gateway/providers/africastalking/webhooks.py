"""Africa's Talking SMS and delivery-report webhooks behind the shared `SmsWebhooks` interface."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from casestore.inbound import Inbound, StatusUpdate
from gateway.providers.africastalking.auth import verify_token
from gateway.providers.africastalking.sms import PROVIDER, parse_delivery, parse_sms
from gateway.providers.base import Answer, WebhookRequest


class AfricasTalkingWebhooks:
    """Every callback URL carries the secret `?token=`; replies go out through the SMS API."""

    sms_path: ClassVar[str] = "/webhooks/africastalking/sms"
    status_path: ClassVar[str] = "/webhooks/africastalking/delivery"
    name = PROVIDER
    replies_inline = False

    def __init__(self, env: Mapping[str, str]) -> None:
        self._token = env.get("VENTANILLA_AT_WEBHOOK_TOKEN") or None

    def verify(self, request: WebhookRequest) -> None:
        verify_token(self._token, request.query.get("token"))

    def parse_sms(self, request: WebhookRequest, received_at: datetime, country: str) -> Inbound:
        return parse_sms(request.form(), received_at, country)

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        return parse_delivery(request.form())

    def answer_sms(self, reply: str | None) -> Answer:
        return Answer("ok")

    def answer_status(self) -> Answer:
        return Answer("ok")
