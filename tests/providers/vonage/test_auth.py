"""Vonage signed webhooks: only a JWT signed with our secret over this very body gets in."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import LOCAL_CLIENT, PUBLIC_URL, app_env
from tests.helpers import counts
from tests.providers.vonage.support import inbound_sms, signed, vonage_env

PATH = "/webhooks/vonage/sms"
NOTHING = {"cases": 0, "interactions": 0, "outbound_messages": 0}


def stored(db_url: str) -> dict[str, int]:
    found = counts(db_url)
    return {key: found[key] for key in NOTHING}


def body() -> bytes:
    return json.dumps(inbound_sms("Necesito un turno para el DNI")).encode()


def test_valid_signature_is_accepted(vonage_client: TestClient, db_url: str) -> None:
    payload = body()
    response = vonage_client.post(PATH, content=payload, headers=signed(payload))
    assert response.status_code == 200
    assert stored(db_url)["cases"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda b: signed(b, secret="another-secret"), id="wrong secret"),
        pytest.param(lambda b: signed(b"{}"), id="hash of another body"),
        pytest.param(lambda b: signed(b, payload_hash="0" * 64), id="wrong payload_hash"),
        pytest.param(lambda b: signed(b, iat=int(time.time()) + 3600), id="issued in the future"),
        pytest.param(lambda b: signed(b, exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda b: {"Content-Type": "application/json"}, id="no Authorization"),
        pytest.param(lambda b: {"Authorization": "Bearer not.a.jwt"}, id="garbage token"),
        pytest.param(
            lambda b: {"Authorization": signed(b)["Authorization"].replace("Bearer", "Basic")},
            id="not a bearer token",
        ),
    ],
)
def test_bad_signature_refused_and_nothing_stored(
    vonage_client: TestClient, db_url: str, headers: object
) -> None:
    payload = body()
    response = vonage_client.post(PATH, content=payload, headers=headers(payload))  # type: ignore[operator]
    assert response.status_code == 403
    assert stored(db_url) == NOTHING


def test_body_changed_after_signing_is_refused(vonage_client: TestClient, db_url: str) -> None:
    headers = signed(body())
    tampered = json.dumps(inbound_sms("Otra cosa")).encode()
    assert vonage_client.post(PATH, content=tampered, headers=headers).status_code == 403
    assert stored(db_url) == NOTHING


@pytest.mark.parametrize(
    "path", ["/webhooks/vonage/sms", "/webhooks/vonage/status", "/webhooks/vonage/voice/event"]
)
def test_without_a_signature_secret_every_webhook_is_refused(
    db_url: str, redis_url: str, config: Config, path: str
) -> None:
    env = app_env(db_url, redis_url, **vonage_env())
    del env["VONAGE_SIGNATURE_SECRET"]
    app = create_app(load_settings(env), config)
    with TestClient(app, base_url=PUBLIC_URL, client=LOCAL_CLIENT) as client:
        payload = body()
        response = client.post(path, content=payload, headers=signed(payload))
        assert response.status_code == 403
        assert "VONAGE_SIGNATURE_SECRET" in response.text
    assert stored(db_url) == NOTHING
