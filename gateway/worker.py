"""The background worker: moves due outbox rows onto the rq queue in batches, sweeps, sends."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import redis
from rq import Queue, SimpleWorker
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from casestore import calls, outbox
from casestore.cases import escalate_overdue
from casestore.config import Config
from feedback.surveys import send_due_surveys
from gateway.jobs import place_calls, send_messages, sender_for
from gateway.senders import CannotReconcile, SendError

log = logging.getLogger(__name__)

QUEUE_NAME = "ventanilla"
BATCH = 50


def make_queue(connection: redis.Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def dispatch(engine: Engine, queue: Queue, limit: int = 2000) -> int:
    """Enqueue due outbox rows and outbound calls, BATCH ids per job; returns how many.

    Jobs are enqueued before the rows are marked queued, inside the same transaction: if Redis
    fails nothing changes; if the commit fails the jobs still find the rows pending.
    """
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = outbox.take_due(conn, now, limit)
        for start in range(0, len(ids), BATCH):
            queue.enqueue(send_messages, ids[start : start + BATCH], job_timeout=600)
        call_ids = calls.take_due(conn, now, limit)
        for start in range(0, len(call_ids), BATCH):
            queue.enqueue(place_calls, call_ids[start : start + BATCH], job_timeout=600)
    return len(ids) + len(call_ids)


def sweep(engine: Engine) -> tuple[int, int]:
    """Rows lost from Redis go back to pending; messages whose sender died are reconciled
    with the provider before any resend. Returns (re-queued, settled after a dead sender)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        lost = outbox.sweep(conn, now)
        lost_calls, expired_calls = calls.sweep(conn, now)
        unsettled = outbox.take_expired_leases(conn, now)
    settled = reconcile(engine, unsettled)
    lost, expired = lost + lost_calls, settled + expired_calls
    if lost or expired:
        log.warning("sweeper: %d rows re-queued, %d interrupted sends settled", lost, expired)
    return lost, expired


def reconcile(engine: Engine, unsettled: list[outbox.Unsettled]) -> int:
    """Ask the provider whether each interrupted message went out; resend only if not."""
    settled = 0
    for row in unsettled:
        could_ask = True
        try:
            found = sender_for(row.provider).find_sent(row.to_address, row.body, row.since)
        except CannotReconcile:
            found, could_ask = None, False
        except (SendError, ValueError) as exc:  # provider unreachable: try again next sweep
            log.warning("reconcile %s: %s", row.id, exc)
            continue
        with engine.begin() as conn:
            outbox.settle(conn, row.id, datetime.now(UTC), found_ref=found, could_ask=could_ask)
        settled += 1
    return settled


def housekeeping(engine: Engine, config: Config, sms_provider: str) -> None:
    """What is due by the clock: surveys to ask, overdue cases to escalate."""
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        asked = send_due_surveys(session, config, sms_provider, now)
    with Session(engine) as session, session.begin():
        escalated = escalate_overdue(session, now, sms_provider)
    if asked.asked or escalated:
        log.info("housekeeping: %d surveys asked, %d cases escalated", asked.asked, escalated)


def run_burst(
    engine: Engine,
    connection: redis.Redis,
    config: Config | None = None,
    sms_provider: str | None = None,
) -> int:
    """Do everything due now and return: sweep, surveys and escalations, dispatch, send."""
    queue = make_queue(connection)
    sweep(engine)
    if config is not None and sms_provider is not None:
        housekeeping(engine, config, sms_provider)
    total = 0
    for _ in range(100):
        moved = dispatch(engine, queue)
        SimpleWorker([queue], connection=connection).work(burst=True)
        total += moved
        if not moved:
            break
    return total


def _dispatch_loop(
    engine: Engine,
    queue: Queue,
    stop: threading.Event,
    interval: float,
    config: Config | None,
    sms_provider: str | None,
) -> None:
    last_sweep = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() - last_sweep > 30:
                sweep(engine)
                if config is not None and sms_provider is not None:
                    housekeeping(engine, config, sms_provider)
                last_sweep = time.monotonic()
            moved = dispatch(engine, queue)
        except Exception:  # keep the loop alive: the database or Redis may come back
            log.exception("dispatcher: cycle failed")
            moved = 0
        if not moved:
            stop.wait(interval)


def run_forever(
    engine: Engine,
    connection: redis.Redis,
    interval: float = 0.5,
    config: Config | None = None,
    sms_provider: str | None = None,
) -> None:
    """Dispatcher thread plus an rq SimpleWorker in the main thread (it owns the signals)."""
    queue = make_queue(connection)
    stop = threading.Event()
    thread = threading.Thread(
        target=_dispatch_loop,
        args=(engine, queue, stop, interval, config, sms_provider),
        daemon=True,
    )
    thread.start()
    try:
        SimpleWorker([queue], connection=connection).work(with_scheduler=False)
    finally:
        stop.set()
        thread.join(timeout=5)
