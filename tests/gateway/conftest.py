"""Gateway test fixtures: the simulator runs only with the outbox provider (the default)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.settings import Settings, load_settings
from tests.conftest import LOCAL_CLIENT, app_env


@pytest.fixture
def outbox_settings(db_url: str, redis_url: str) -> Settings:
    return load_settings(app_env(db_url, redis_url, VENTANILLA_SMS_PROVIDER="outbox"))


@pytest.fixture
def sim(outbox_settings: Settings, config: Config) -> Iterator[TestClient]:
    with TestClient(create_app(outbox_settings, config), client=LOCAL_CLIENT) as test_client:
        yield test_client
