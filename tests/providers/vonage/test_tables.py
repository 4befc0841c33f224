"""Vonage's recorded payloads (testdata/*.json) through its adapters: what each parses to, or
the 4xx it gets. The table format is the shared harness's (`label, method, path, query?,
headers?, body, expect | error`); this small runner stands in until that harness lands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.forms import BadRequest
from gateway.providers.base import WebhookRequest
from gateway.providers.vonage.voice import VonageVoice
from gateway.providers.vonage.webhooks import VonageWebhooks
from tests.conftest import PUBLIC_URL
from tests.providers.vonage.support import TESTDATA, signed, vonage_env

RECEIVED = datetime(2026, 11, 22, 14, 3, 11, tzinfo=UTC)


def load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((TESTDATA / name).read_text())
    return cases


def request_of(case: dict[str, Any]) -> WebhookRequest:
    """The case as the route reads it, signed as Vonage signs it (unless it sets headers)."""
    raw = case["body"] if isinstance(case["body"], str) else json.dumps(case["body"])
    body = raw.encode()
    headers = {k.lower(): v for k, v in signed(body).items()}
    headers.update({k.lower(): v for k, v in case.get("headers", {}).items()})
    return WebhookRequest(
        url=PUBLIC_URL + case["path"],
        headers=headers,
        query=case.get("query", {}),
        body=body,
        raw_body=body,
    )


def parse(case: dict[str, Any]) -> Any:
    """What the adapter for the case's path makes of it."""
    request = request_of(case)
    env = vonage_env()
    if case["path"] in (VonageWebhooks.sms_path, VonageWebhooks.status_path):
        sms = VonageWebhooks(env)
        sms.verify(request)
        if case["path"] == VonageWebhooks.sms_path:
            return sms.parse_sms(request, RECEIVED, "AR")
        return sms.parse_status(request)
    voice = VonageVoice(env)
    voice.verify(request)
    if case["path"] == VonageVoice.event_path:
        return voice.parse_event(request)
    return voice.parse_step(request, "AR")


@pytest.mark.parametrize(
    "case", [*load("sms.json"), *load("voice.json")], ids=lambda case: case["label"]
)
def test_recorded_payload(case: dict[str, Any]) -> None:
    try:
        parsed = parse(case)
    except BadRequest as exc:
        assert "error" in case, f"refused with {exc.status} {exc.reason!r}"
        assert {"status": exc.status, "reason": exc.reason} == case["error"]
        return
    assert "expect" in case, f"accepted, but the table expects {case['error']}"
    assert {field: getattr(parsed, field) for field in case["expect"]} == case["expect"]
