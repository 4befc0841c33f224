"""Database URLs and engines: SQLite (embedded default) or PostgreSQL through psycopg."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

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


# SQLSTATE classes and codes that mean the server cannot be reached or will not serve now:
# connection exceptions, insufficient resources (too many connections), shutting down.
_UNREACHABLE_CLASSES = ("08", "53")
_UNREACHABLE_CODES = frozenset({"57P01", "57P02", "57P03"})
_SQLITE_UNREACHABLE = (
    "unable to open database file",
    "disk i/o error",
    "database is locked",
    "database or disk is full",
)


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the database could not be reached (a retry later may work), as
    opposed to the database refusing what it was given (bad input or a bug)."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout):
        return True
    orig: BaseException = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig if isinstance(exc.orig, BaseException) else exc
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        code = getattr(orig, "sqlstate", None)
        # No SQLSTATE: the client library failed to connect or lost the connection.
        return code is None or code[:2] in _UNREACHABLE_CLASSES or code in _UNREACHABLE_CODES
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig).lower().startswith(_SQLITE_UNREACHABLE)
    return isinstance(orig, ConnectionError | TimeoutError)


def is_refused_input(exc: BaseException) -> bool:
    """True when the database refused a value it was given (bad text, a value out of range):
    the client's input, answered with a 400, never with "unavailable"."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import DataError

    if isinstance(exc, DataError):
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(orig, psycopg.DataError | sqlite3.DataError)


def is_database_error(exc: BaseException) -> bool:
    """An error from the database, wrapped by SQLAlchemy or raw from the driver (the intake
    path runs prepared statements on the driver's cursor)."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(exc, DBAPIError | PoolTimeout | sqlite3.Error | psycopg.Error)
