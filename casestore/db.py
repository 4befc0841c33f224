"""Database URLs and engines: SQLite (embedded default) or PostgreSQL through psycopg."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

DEFAULT_VAR_DIR = Path("var")


def database_url(env: Mapping[str, str] | None = None) -> str:
    """The configured database URL, normalised to the drivers the app uses (sync psycopg)."""
    env = os.environ if env is None else env
    raw = env.get("VENTANILLA_DATABASE_URL") or ""
    if not raw:
        DEFAULT_VAR_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{(DEFAULT_VAR_DIR / 'ventanilla.db').resolve()}"
    return normalise_url(raw)


def normalise_url(raw: str) -> str:
    """Accept `postgresql://`, `postgresql+psycopg://`, `postgresql+asyncpg://`, `sqlite:///`."""
    url = make_url(raw)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme: {url.drivername}")


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached (connection refused or lost, a
    file that cannot be opened), not that it refused the data (that is a DataError)."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the sqlite3 module so BEGIN IMMEDIATE and
            # SAVEPOINT work: two processes (gateway and worker) write to one file.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, connect_args={"connect_timeout": 5}, **kwargs)
