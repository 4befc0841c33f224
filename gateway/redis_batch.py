"""Redis round trips shared by concurrent requests: what auto-pipelining clients do.

The commands that requests queue in the same turn of the event loop go to Redis as one
pipeline when the turn ends: one round trip for all of them instead of one each. Measured on
the USSD route (bench/ussd.py), that nearly doubles its throughput: a round trip costs the
process far more than the commands in it. The flush uses the ordinary (blocking) client, so it
holds the loop for that one round trip.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

Fill = Callable[[Pipeline], object]


class Batch:
    """Collects commands from the requests of one event-loop turn and sends them together."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.jobs: list[tuple[Fill, asyncio.Future[list[Any]]]] = []

    async def run(self, fill: Fill) -> list[Any]:
        """Queue the commands `fill` adds to the pipeline; return their replies, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not self.jobs:
            loop.call_soon(self._flush)
        self.jobs.append((fill, future))
        return await future

    def _flush(self) -> None:
        jobs, self.jobs = self.jobs, []
        pipe = self.client.pipeline(transaction=False)
        spans: list[tuple[int, int] | None] = []
        for fill, future in jobs:
            start = len(pipe.command_stack)
            try:
                fill(pipe)
            except Exception as exc:  # this request's own error; the others go on
                del pipe.command_stack[start:]
                _fail(future, exc)
                spans.append(None)
                continue
            spans.append((start, len(pipe.command_stack)))
        try:
            replies = pipe.execute(raise_on_error=False) if pipe.command_stack else []
        except Exception as exc:  # the connection failed: every request in the batch fails
            for _, future in jobs:
                _fail(future, exc)
            return
        for (_, future), span in zip(jobs, spans, strict=True):
            if span is None or future.done():  # failed above, or the request went away
                continue
            part = replies[span[0] : span[1]]
            error = next((r for r in part if isinstance(r, Exception)), None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(part)


def _fail(future: asyncio.Future[list[Any]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# One Batch per client and event loop: tests run several apps, each on a loop of its own.
_batches: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[redis.Redis, Batch]
] = weakref.WeakKeyDictionary()


def batch_for(client: redis.Redis) -> Batch:
    """The Batch of this client on the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _batches.get(loop)
    if per_loop is None:
        per_loop = _batches[loop] = weakref.WeakKeyDictionary()
    batch = per_loop.get(client)
    if batch is None:
        batch = per_loop[client] = Batch(client)
    return batch
