"""Group commit for the intake path: concurrent webhooks share one short transaction.

Requests hand their work to writer threads and await a future. A writer takes everything that is
waiting (up to `max_batch`), runs it in one transaction and commits once, so the commit cost is
shared. If one item fails, the batch is rolled back and each item retried alone so one bad
message cannot take others with it. Callers get the result only after the commit: an answer
sent to a provider always means the contact is stored.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from casestore.db import is_unreachable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class StoreUnavailable(Exception):
    """The database could not be reached: the contact was not kept."""


@dataclass
class _Item(Generic[T, R]):
    payload: T
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop


class GroupCommitWriter(Generic[T, R]):
    """Runs `work(conn, payload)` for queued payloads in shared transactions.

    With `threads=0` the batches run on the event loop itself, one per loop turn: for SQLite,
    whose statements take microseconds, that beats handing work to a thread that must win the
    GIL back after every statement. The loop then waits while another process holds SQLite's
    write lock, which our own processes keep for milliseconds.
    """

    def __init__(
        self,
        engine: Engine,
        work: Callable[[Connection, T], R],
        *,
        threads: int = 1,
        max_batch: int = 64,
    ) -> None:
        self._engine = engine
        self._work = work
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item[T, R] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"intake-writer-{i}", daemon=True)
            for i in range(threads)
        ]
        self._started = False
        self._pending: list[_Item[T, R]] = []
        self._flush_scheduled = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        if self._started:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout=10)
            self._started = False

    async def submit(self, payload: T) -> R:
        """Queue one payload and wait until its transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        item = _Item(payload, future, loop)
        if not self._threads:
            self._pending.append(item)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        else:
            self.start()
            self._queue.put(item)
        return await future

    def _flush(self) -> None:
        """On-loop mode: run what arrived during this loop turn as one transaction."""
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flush_scheduled = False
        self._process(batch)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # let the loop end after this batch
                    break
                batch.append(item)
            self._process(batch)

    def _process(self, batch: list[_Item[T, R]]) -> None:
        try:
            results = self._transaction([item.payload for item in batch])
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0], *self._describe())
                return
            # Find the item that broke the batch: run each alone.
            for item in batch:
                try:
                    (result,) = self._transaction([item.payload])
                except Exception:
                    self._fail(item, *self._describe())
                else:
                    _resolve(item, result)
            return
        for item, result in zip(batch, results, strict=True):
            _resolve(item, result)

    def _transaction(self, payloads: list[T]) -> list[R]:
        with self._engine.connect() as conn, conn.begin():
            return [self._work(conn, payload) for payload in payloads]

    @staticmethod
    def _describe() -> tuple[BaseException, bool]:
        import sys

        exc = sys.exc_info()[1]
        assert exc is not None
        unavailable = is_unreachable(exc)
        if unavailable:
            log.error("intake: database unavailable: %s", type(exc).__name__)
        else:
            log.exception("intake: could not store a contact")
        return exc, unavailable

    @staticmethod
    def _fail(item: _Item[T, R], exc: BaseException, unavailable: bool) -> None:
        error: BaseException = StoreUnavailable(str(exc)) if unavailable else exc
        item.loop.call_soon_threadsafe(_set_exception, item.future, error)


def _resolve(item: _Item[Any, Any], result: Any) -> None:
    item.loop.call_soon_threadsafe(_set_result, item.future, result)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
