"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, a fake provider server.

Every test that takes `db_url` runs twice, on SQLite and on PostgreSQL. No request may leave
the machine: a guard fails any connection to a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from casestore.config import Config, Limits, load_config
from casestore.db import make_engine
from casestore.migrations import upgrade
from casestore.models import Base
from gateway.app import create_app
from gateway.rediskeys import RedisKeys, delete_all
from gateway.settings import Settings, load_settings
from gateway.workers import jobs
from tests.fakeprovider import FakeProvider
from tests.helpers import admin_token
from tests.settings import POSTGRES_ADMIN_URL, REDIS_PREFIX, REDIS_URL

# Test clients stand in for a browser on the machine that runs `make run` (loopback peer).
LOCAL_CLIENT = ("127.0.0.1", 50000)
TWILIO_TOKEN = "test-twilio-auth-token"
TWILIO_SID = "AC" + "0" * 32
AT_TOKEN = "test-at-webhook-token"
AT_KEY = "test-at-api-key"
# Vonage signs its webhooks with this secret (tests/providers/signing.py signs with it too);
# at least 32 bytes, or PyJWT warns that an HS256 key is too short (an error under pytest).
VONAGE_SIGNATURE_SECRET = "test-vonage-signature-secret-0123456789"
VONAGE_NUMBER = "+5491155550900"
PUBLIC_URL = "https://ventanilla.example.test"

# ---------------------------------------------------------------- network guard
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: Any) -> bool:
    if isinstance(address, str | bytes):  # unix socket (embedded Redis, PostgreSQL socket)
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise AssertionError(f"test tried to reach {address!r}: only 127.0.0.1 is allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise AssertionError(f"test tried to reach {address!r}: only 127.0.0.1 is allowed")
    return _real_connect_ex(self, address)


_real_getaddrinfo = socket.getaddrinfo
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ventanilla.example.test", "testserver"})


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # Names are refused before any DNS query: api.twilio.com must never even be looked up.
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name not in LOCAL_NAMES:
        try:
            if not ipaddress.ip_address(name).is_loopback:
                raise AssertionError(f"test tried to reach {name!r}: only 127.0.0.1 is allowed")
        except ValueError:
            raise AssertionError(
                f"test tried to resolve {name!r}: only 127.0.0.1 is allowed"
            ) from None
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


# ---------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, migrated once, dropped at the end."""
    name = f"ventanilla_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(database=name, drivername="postgresql+psycopg")
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    yield rendered
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: SQLite file or the run's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        path = tmp_path / "ventanilla.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "ventanilla.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


# ---------------------------------------------------------------- redis, provider
@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis, with none of this run's keys in it (other runs' keys are left alone)."""
    client = redis.Redis.from_url(REDIS_URL)
    delete_all(client, RedisKeys(REDIS_PREFIX))
    yield REDIS_URL
    delete_all(client, RedisKeys(REDIS_PREFIX))
    client.close()


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider(
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        at_username="ventanilla-test",
        at_api_key=AT_KEY,
    ) as provider:
        yield provider


# ---------------------------------------------------------------- app
def app_env(db_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment a test gateway runs with (never the developer's own variables)."""
    env = {
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_REDIS_URL": redis_url,
        "VENTANILLA_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+5491155550000",
        "VENTANILLA_AT_WEBHOOK_TOKEN": AT_TOKEN,
        "AT_USERNAME": "ventanilla-test",
        "AT_API_KEY": AT_KEY,
        "AT_SENDER_ID": "DesSocial",
        "VONAGE_SIGNATURE_SECRET": VONAGE_SIGNATURE_SECRET,
        "VONAGE_FROM_NUMBER": VONAGE_NUMBER,
        "VENTANILLA__REDIS__PREFIX": REDIS_PREFIX,
    }
    env.update(extra)
    return env


def set_worker_env(
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    provider_url: str,
    *,
    at_number: str,
    twilio_number: str,
    **extra: str,
) -> None:
    """What a worker process reads from its environment, both providers pointed at the fake
    provider (`provider_url`); the jobs' cached engines are dropped so the next job reads it."""
    env = {
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_PUBLIC_URL": PUBLIC_URL,
        "AT_USERNAME": "ventanilla-test",
        "AT_API_KEY": AT_KEY,
        "AT_VOICE_NUMBER": at_number,
        "AT_VOICE_BASE_URL": provider_url,
        "AT_API_BASE_URL": provider_url,
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": twilio_number,
        "TWILIO_API_BASE_URL": provider_url,
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    jobs.dispose_engines()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # Each test its own local files (the outage spool, dead letters kept in a file): nothing
    # kept by one test leaks into another.
    return load_config(env={"VENTANILLA__STORAGE__VAR_DIR": str(tmp_path / "var")})


@pytest.fixture
def settings(db_url: str, redis_url: str) -> Settings:
    return load_settings(app_env(db_url, redis_url))


@pytest.fixture
def client(settings: Settings, config: Config) -> Iterator[TestClient]:
    """A TestClient on the real app (lifespan run), against `db_url` and the test Redis."""
    app = create_app(settings, config)
    with TestClient(app, base_url=PUBLIC_URL, client=LOCAL_CLIENT) as test_client:
        yield test_client


@pytest.fixture
def token(db_url: str, config: Config) -> str:
    """An API bearer token of an admin who sees every department."""
    return admin_token(db_url, config.departments)


Client = Callable[..., TestClient]


@pytest.fixture
def client_with(settings: Settings, config: Config) -> Iterator[Client]:
    """Make TestClients on the real app with the given [limits] and other Config fields."""
    clients: list[TestClient] = []

    def make(limits: Limits, **fields: object) -> TestClient:
        app = create_app(settings, replace(config, limits=limits, **fields))  # type: ignore[arg-type]
        test_client = TestClient(app, base_url=PUBLIC_URL, client=LOCAL_CLIENT)
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.__exit__(None, None, None)
