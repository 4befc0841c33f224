"""Outbound calls through Vonage's Voice API (POST /v1/calls): the call fetches its NCCO."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vonage_voice.models import CreateCallRequest, Phone, ToPhone

from gateway.providers.base import CallResult, CannotReconcile, SendError
from gateway.providers.env import required_env
from gateway.providers.vonage.client import VonageApi, api_from_env, sdk_model
from gateway.providers.vonage.sender import bare

CALLS_PATH = "/v1/calls"


class VonageCaller:
    """Places calls whose flow is the NCCO at `url` (the app's answer URL)."""

    name: str = "vonage"

    def __init__(self, api: VonageApi, from_number: str) -> None:
        self.api = api
        self.from_number = from_number

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Dial `to`; Vonage fetches `url` when answered and posts events to `status_callback`."""
        if not url:
            raise SendError("vonage needs an answer URL for the call's NCCO", retryable=False)
        request = sdk_model(
            CreateCallRequest,
            to=[sdk_model(ToPhone, number=bare(to))],
            from_=Phone(number=bare(self.from_number)),
            answer_url=[url],
            answer_method="POST",
            event_url=[status_callback] if status_callback else None,
            event_method="POST" if status_callback else None,
        )
        payload: dict[str, Any] = request.model_dump(by_alias=True, exclude_none=True)
        data = self.api.post(CALLS_PATH, payload, jwt_only=True)  # Voice takes JWT only
        uuid = data.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise SendError("vonage accepted the call without a uuid", retryable=False)
        return CallResult(provider_ref=uuid, status=str(data.get("status") or "started"))

    def find_placed(self, to: str, since: datetime) -> str | None:
        # GET /v1/calls can list calls, but is not wired yet: a redial cannot be ruled out.
        raise CannotReconcile("vonage calls are not reconciled yet")


def caller_from_env(env: Mapping[str, str], *, timeout: float = 10.0) -> VonageCaller:
    """The caller of VENTANILLA_VOICE_PROVIDER=vonage, from the VONAGE_* variables."""
    return VonageCaller(
        api_from_env(env, timeout, "place calls"),
        required_env(env, "VONAGE_FROM_NUMBER", "place calls"),
    )
