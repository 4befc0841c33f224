"""What the Vonage tests share: the test account, signed requests (signed as
tests/providers/signing.py signs every Vonage case), a gateway wired to Vonage."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.settings import load_settings
from gateway.workers import jobs
from tests.conftest import LOCAL_CLIENT, PUBLIC_URL, VONAGE_NUMBER, VONAGE_SIGNATURE_SECRET, app_env
from tests.fakeprovider import (
    VONAGE_API_KEY,
    VONAGE_API_SECRET,
    VONAGE_APPLICATION_ID,
    FakeProvider,
)
from tests.providers.signing import vonage_jwt

TESTDATA = Path(__file__).parent / "testdata"
PRIVATE_KEY = str(TESTDATA / "application-test-only.key")  # a throwaway key made for tests
SIGNATURE_SECRET = VONAGE_SIGNATURE_SECRET
FROM_NUMBER = VONAGE_NUMBER
_uuids = itertools.count(1)


def vonage_env(provider_url: str | None = None) -> dict[str, str]:
    """The VONAGE_* variables of a deployment on the test account."""
    env = {
        "VONAGE_API_KEY": VONAGE_API_KEY,
        "VONAGE_API_SECRET": VONAGE_API_SECRET,
        "VONAGE_APPLICATION_ID": VONAGE_APPLICATION_ID,
        "VONAGE_PRIVATE_KEY": PRIVATE_KEY,
        "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
        "VONAGE_FROM_NUMBER": FROM_NUMBER,
    }
    if provider_url is not None:
        env["VONAGE_API_BASE_URL"] = provider_url
    return env


def message_uuid() -> str:
    return str(uuid.UUID(int=next(_uuids) + 0xAAAA0000000000000000))


def inbound_sms(text: str, sender: str = "5491155550001", ref: str | None = None) -> dict[str, Any]:
    """A Messages API inbound SMS as Vonage posts it (numbers without "+")."""
    return {
        "channel": "sms",
        "message_uuid": ref or message_uuid(),
        "to": FROM_NUMBER.removeprefix("+"),
        "from": sender,
        "timestamp": "2026-11-22T14:03:11Z",
        "text": text,
        "sms": {"num_messages": "1", "keyword": text.split(" ")[0].upper() if text else ""},
        "message_type": "text",
    }


def signed(body: bytes, secret: str = SIGNATURE_SECRET, **claims: Any) -> dict[str, str]:
    """The headers Vonage sends with `body`; `claims` add or replace claims of its token."""
    return {
        "Authorization": "Bearer " + vonage_jwt(body, secret, **claims),
        "Content-Type": "application/json",
    }


def post_vonage(client: TestClient, path: str, payload: Any) -> Any:
    body = json.dumps(payload).encode()
    return client.post(path, content=body, headers=signed(body))


@pytest.fixture
def vonage_client(
    db_url: str, redis_url: str, config: Config, fake_provider: FakeProvider
) -> Iterator[TestClient]:
    """The real app with a Vonage account configured (SMS and voice through Vonage), its API
    calls (a transfer of a live call) going to the fake provider."""
    env = app_env(
        db_url,
        redis_url,
        VENTANILLA_SMS_PROVIDER="vonage",
        VENTANILLA_VOICE_PROVIDER="vonage",
        **vonage_env(fake_provider.url),
    )
    app = create_app(load_settings(env), config)
    with TestClient(app, base_url=PUBLIC_URL, client=LOCAL_CLIENT) as test_client:
        yield test_client


@pytest.fixture
def vonage_worker(
    monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str, fake_provider: FakeProvider
) -> Iterator[redis.Redis]:
    """A worker's environment with Vonage pointed at the fake provider."""
    for key, value in {
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_PUBLIC_URL": PUBLIC_URL,
        **vonage_env(fake_provider.url),
    }.items():
        monkeypatch.setenv(key, value)
    jobs.dispose_engines()
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
    jobs.dispose_engines()
