"""Core statements compiled once and run on the DBAPI cursor: the intake hot path's executor.

SQLAlchemy's per-execute bookkeeping costs more than SQLite's own work for these small
statements. A `Prepared` keeps SQLAlchemy's SQL text and type processing (UTC datetimes, JSON,
booleans) but skips the execution context, so the two backends still store identical values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any] | None


class Row(dict[str, Any]):
    """A result row readable as `row.name`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class Prepared:
    """One statement for one dialect, with the parameter names it takes."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys)))
        self.sql = compiled.string
        processors = cast(Mapping[str, Processor], compiled._bind_processors)
        binds = compiled.positiontup if dialect.positional else list(compiled.binds)
        assert binds is not None
        self._binds = [(name, processors.get(name)) for name in binds]
        self._positional = bool(dialect.positional)
        self._result: list[tuple[str, Processor]] = [
            (column[0], column[3]._cached_result_processor(dialect, None))
            for column in compiled._result_columns or []
        ]

    def _args(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = [
            (name, params[name] if proc is None else proc(params[name]))
            for name, proc in self._binds
        ]
        return [v for _, v in values] if self._positional else dict(values)

    def _row(self, raw: Sequence[Any]) -> Row:
        return Row(
            (name, value if proc is None else proc(value))
            for (name, proc), value in zip(self._result, raw, strict=True)
        )

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Row | None:
        """Run inside the connection's transaction; the first row it returns, if any."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, self._args(params))
            if not self._result:
                return None
            raw = cursor.fetchone()
            return None if raw is None else self._row(raw)
        finally:
            cursor.close()
