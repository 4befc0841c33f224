"""The background worker: moves due outbox rows onto the rq queue in batches, sweeps, sends."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import redis
from rq import Queue, SimpleWorker
from sqlalchemy import Engine

from casestore import outbox
from gateway.jobs import send_messages

log = logging.getLogger(__name__)

QUEUE_NAME = "ventanilla"
BATCH = 50


def make_queue(connection: redis.Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def dispatch(engine: Engine, queue: Queue, limit: int = 2000) -> int:
    """Enqueue due outbox rows, BATCH ids per job. Returns how many rows were enqueued.

    Jobs are enqueued before the rows are marked queued, inside the same transaction: if Redis
    fails nothing changes; if the commit fails the jobs still find the rows pending.
    """
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = outbox.take_due(conn, now, limit)
        for start in range(0, len(ids), BATCH):
            queue.enqueue(send_messages, ids[start : start + BATCH], job_timeout=600)
    return len(ids)


def sweep(engine: Engine) -> tuple[int, int]:
    with engine.begin() as conn:
        lost, expired = outbox.sweep(conn, datetime.now(UTC))
    if lost or expired:
        log.warning("sweeper: %d rows re-queued, %d leases expired", lost, expired)
    return lost, expired


def run_burst(engine: Engine, connection: redis.Redis) -> int:
    """Do everything due now and return: sweep, dispatch, send, until nothing is due."""
    queue = make_queue(connection)
    sweep(engine)
    total = 0
    for _ in range(100):
        moved = dispatch(engine, queue)
        SimpleWorker([queue], connection=connection).work(burst=True)
        total += moved
        if not moved:
            break
    return total


def _dispatch_loop(engine: Engine, queue: Queue, stop: threading.Event, interval: float) -> None:
    last_sweep = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() - last_sweep > 30:
                sweep(engine)
                last_sweep = time.monotonic()
            moved = dispatch(engine, queue)
        except Exception:  # keep the loop alive: the database or Redis may come back
            log.exception("dispatcher: cycle failed")
            moved = 0
        if not moved:
            stop.wait(interval)


def run_forever(engine: Engine, connection: redis.Redis, interval: float = 0.5) -> None:
    """Dispatcher thread plus an rq SimpleWorker in the main thread (it owns the signals)."""
    queue = make_queue(connection)
    stop = threading.Event()
    thread = threading.Thread(
        target=_dispatch_loop, args=(engine, queue, stop, interval), daemon=True
    )
    thread.start()
    try:
        SimpleWorker([queue], connection=connection).work(with_scheduler=False)
    finally:
        stop.set()
        thread.join(timeout=5)
