"""Concurrent requests share one Redis round trip per event-loop turn, against the real Redis;
one request's failure stays its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from gateway.redis_batch import batch_for


class CountingRedis(redis.Redis):
    """A client that counts the pipelines it sends."""

    executed = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(raise_on_error: bool = True) -> list[Any]:
            CountingRedis.executed += 1
            return execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


@pytest.fixture
def client(redis_url: str) -> Iterator[CountingRedis]:
    CountingRedis.executed = 0
    made = CountingRedis(connection_pool=redis.ConnectionPool.from_url(redis_url))
    yield made
    made.close()


def test_requests_of_one_turn_share_one_round_trip(client: CountingRedis) -> None:
    async def one(n: int) -> list[Any]:
        def fill(pipe: Pipeline) -> None:
            pipe.set(f"batch:{n}", str(n))
            pipe.get(f"batch:{n}")

        return await batch_for(client).run(fill)

    async def main() -> list[list[Any]]:
        return await asyncio.gather(*(one(n) for n in range(20)))

    replies = asyncio.run(main())
    assert replies == [[True, str(n).encode()] for n in range(20)]
    assert CountingRedis.executed == 1


def test_one_failing_request_does_not_fail_the_others(client: CountingRedis) -> None:
    client.set("batch:text", "x")

    def broken(pipe: Pipeline) -> None:
        pipe.get("batch:ok")
        raise ValueError("cannot encode")

    async def main() -> list[Any]:
        batch = batch_for(client)
        return await asyncio.gather(  # type: ignore[no-any-return]
            batch.run(lambda pipe: pipe.incr("batch:text")),  # WRONGTYPE-like reply error
            batch.run(broken),
            batch.run(lambda pipe: pipe.set("batch:fine", "1")),
            return_exceptions=True,
        )

    wrong, raised, fine = asyncio.run(main())
    assert isinstance(wrong, redis.ResponseError)
    assert isinstance(raised, ValueError)
    assert fine == [True]  # not the GET the broken request had queued: that one was taken back
    assert CountingRedis.executed == 1


def test_connection_failure_fails_every_request_of_the_batch() -> None:
    down = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))

    async def main() -> list[Any]:
        batch = batch_for(down)
        results: list[Any] = await asyncio.gather(
            batch.run(lambda pipe: pipe.get("a")),
            batch.run(lambda pipe: pipe.get("b")),
            return_exceptions=True,
        )
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, redis.ConnectionError) for r in results)
    down.close()
