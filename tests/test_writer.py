"""Group commit: many webhooks share a transaction; one failure never takes the others along."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from casestore.db import make_engine
from casestore.writer import GroupCommitWriter, StoreUnavailable


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (value INTEGER UNIQUE)"))
    yield engine
    engine.dispose()


def insert(conn: Connection, value: int) -> int:
    if value < 0:
        raise ValueError("negative")
    conn.execute(text("INSERT INTO items (value) VALUES (:v)"), {"v": value})
    return value * 10


def stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(text("SELECT value FROM items")))


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_batch_commits_everything_and_isolates_a_failure(engine: Engine, threads: int) -> None:
    writer: GroupCommitWriter[int, int] = GroupCommitWriter(
        engine, insert, threads=threads, max_batch=64
    )

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(
            *(writer.submit(v) for v in [1, 2, -3, 4, 5]), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
    assert results[:2] == [10, 20] and results[3:] == [40, 50]
    assert isinstance(results[2], ValueError)
    assert stored(engine) == [1, 2, 4, 5]


@pytest.mark.parametrize("threads", [0, 1])
def test_unreachable_database_reports_store_unavailable(threads: int) -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    writer: GroupCommitWriter[int, int] = GroupCommitWriter(engine, insert, threads=threads)
    try:
        with pytest.raises(StoreUnavailable):
            asyncio.run(writer.submit(1))
    finally:
        writer.stop()
        engine.dispose()
