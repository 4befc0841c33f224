"""The app the recorded tables are posted to: one per test module and database (SQLite, then
PostgreSQL), built as tests/conftest.py builds it, so a table of many cases runs in seconds.

Cases do not need an empty database: each one's effects are found by its own references
(provider_ref, a contact of its own) and a refusal is checked against the row counts just
before it. Redis is emptied before every case: a call or USSD session never carries over.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from casestore.config import load_config
from gateway.app import create_app
from gateway.rediskeys import RedisKeys, delete_all
from gateway.settings import load_settings
from tests.conftest import LOCAL_CLIENT, PUBLIC_URL, _truncate_pg, app_env
from tests.providers.harness import Case, run_case
from tests.settings import REDIS_PREFIX, REDIS_URL


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tables_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for one module's tables: a SQLite copy, or the run's PostgreSQL
    database emptied."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("tables") / "ventanilla.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture(scope="module")
def tables_client(tables_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real app (lifespan run) on `tables_db` and the test Redis."""
    var = tmp_path_factory.mktemp("var")
    config = load_config(env={"VENTANILLA__STORAGE__VAR_DIR": str(Path(var))})
    app = create_app(load_settings(app_env(tables_db, REDIS_URL)), config)
    with TestClient(app, base_url=PUBLIC_URL, client=LOCAL_CLIENT) as client:
        yield client


Post = Callable[[Case], Any]


@pytest.fixture
def post_case(
    tables_client: TestClient, tables_db: str, caplog: pytest.LogCaptureFixture
) -> Iterator[Post]:
    """Post a recorded case to the app and check all it expects (tests.providers.harness)."""
    store = redis.Redis.from_url(REDIS_URL)
    delete_all(store, RedisKeys(REDIS_PREFIX))
    yield lambda case: run_case(tables_client, tables_db, case, caplog)
    delete_all(store, RedisKeys(REDIS_PREFIX))
    store.close()
