"""The background worker: moves due outbox rows onto the rq queue in batches, sweeps, sends."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol, TypeVar

import redis
from rq import Queue, SimpleWorker
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from casestore import calls, outbox
from casestore.cases import escalate_overdue
from casestore.config import Config
from casestore.db import is_unreachable
from casestore.models import Survey, SurveyStatus
from feedback.surveys import send_due_surveys
from feedback.voice import follow_up as follow_up_voice_surveys
from gateway.providers import registry
from gateway.providers.base import CannotReconcile, SendError
from gateway.rediskeys import keys_of
from gateway.workers.jobs import (
    close_senders,
    configure_delivery,
    place_calls,
    send_messages,
    sender_for,
)
from gateway.workers.sendrate import delivery_settings

log = logging.getLogger(__name__)

# Ids per job: a job claims its batch in one statement, sends it concurrently and records it in
# one transaction, so bigger batches cost fewer round trips (one job per message tops out at a
# few hundred a second); 100 still spreads a burst over every worker process.
BATCH = 100
CALL_BATCH = 50


def make_queue(connection: redis.Redis) -> Queue:
    """This deployment's queue: named by the prefix bound to `connection` (gateway.rediskeys)."""
    return Queue(keys_of(connection).queue, connection=connection)


def dispatch(engine: Engine, queue: Queue, limit: int = 2000) -> int:
    """Enqueue due outbox rows and outbound calls, BATCH ids per job; returns how many.

    Jobs are enqueued before the rows are marked queued, inside the same transaction: if Redis
    fails nothing changes; if the commit fails the jobs still find the rows pending.
    """
    now = datetime.now(UTC)
    keys = keys_of(queue.connection)
    with engine.begin() as conn:
        ids = outbox.take_due(conn, now, limit)
        jobs = [
            Queue.prepare_data(
                send_messages, (ids[start : start + BATCH],), timeout=600, job_id=keys.job_id()
            )
            for start in range(0, len(ids), BATCH)
        ]
        call_ids = calls.take_due(conn, now, limit)
        jobs += [
            Queue.prepare_data(
                place_calls,
                (call_ids[start : start + CALL_BATCH],),
                timeout=600,
                job_id=keys.job_id(),
            )
            for start in range(0, len(call_ids), CALL_BATCH)
        ]
        if jobs:
            queue.enqueue_many(jobs)  # one Redis pipeline for the whole cycle
    return len(ids) + len(call_ids)


def sweep(engine: Engine) -> tuple[int, int]:
    """Rows lost from Redis go back to pending; messages whose sender died are reconciled
    with the provider before any resend. Returns (re-queued, settled after a dead sender)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        lost = outbox.sweep(conn, now)
        unsettled_calls = calls.take_expired_leases(conn, now)
        lost_calls = calls.sweep(conn, now)
        unsettled = outbox.take_expired_leases(conn, now)
    settled = reconcile(engine, unsettled) + reconcile_calls(engine, unsettled_calls)
    lost, expired = lost + lost_calls, settled
    if lost or expired:
        log.warning("sweeper: %d rows re-queued, %d interrupted sends settled", lost, expired)
    return lost, expired


class _Interrupted(Protocol):
    """A row whose worker died mid-send (outbox.Unsettled, calls.UnsettledCall)."""

    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Interrupted)


class _Settle(Protocol):
    def __call__(
        self,
        conn: Connection,
        row_id: int,
        now: datetime,
        /,
        *,
        found_ref: str | None,
        could_ask: bool,
    ) -> object: ...


def _settle_each(
    engine: Engine, rows: Sequence[R], ask: Callable[[R], str | None], settle: _Settle, what: str
) -> int:
    """Ask the provider about each interrupted row (`ask` gives the reference it found), then
    settle it: sent, or redone. A provider that cannot be asked (CannotReconcile) settles it as
    unknowable; one that fails now leaves the row for the next sweep."""
    settled = 0
    for row in rows:
        could_ask = True
        try:
            found = ask(row)
        except CannotReconcile:
            found, could_ask = None, False
        except (SendError, ValueError) as exc:  # provider unreachable: try again next sweep
            log.warning("reconcile %s%s: %s", what, row.id, exc)
            continue
        with engine.begin() as conn:
            settle(conn, row.id, datetime.now(UTC), found_ref=found, could_ask=could_ask)
        settled += 1
    return settled


def reconcile(engine: Engine, unsettled: list[outbox.Unsettled]) -> int:
    """Ask the provider whether each interrupted message went out; resend only if not."""
    return _settle_each(
        engine,
        unsettled,
        lambda r: sender_for(r.provider).find_sent(r.to_address, r.body, r.since),
        outbox.settle,
        "",
    )


def reconcile_calls(engine: Engine, unsettled: list[calls.UnsettledCall]) -> int:
    """Ask the provider whether each interrupted call was placed; dial again only if not."""
    return _settle_each(
        engine,
        unsettled,
        lambda r: registry.caller(r.provider).find_placed(r.to_address, r.since),
        calls.settle,
        "call ",
    )


def housekeeping(
    engine: Engine, config: Config, sms_provider: str, voice_provider: str | None = None
) -> None:
    """What is due by the clock: surveys to ask (by SMS or by a call) and to follow up after
    their calls, overdue cases to escalate. The voice provider defaults to
    VENTANILLA_VOICE_PROVIDER, as for the calls the jobs place."""
    now = datetime.now(UTC)
    voice = voice_provider or os.environ.get("VENTANILLA_VOICE_PROVIDER", "").strip().lower()
    voice = voice or "outbox"
    with Session(engine) as session, session.begin():
        asked = send_due_surveys(session, config, sms_provider, now, voice_provider=voice)
    with Session(engine) as session, session.begin():
        followed = follow_up_voice_surveys(session, config, sms_provider, voice, now)
    with Session(engine) as session, session.begin():
        escalated = escalate_overdue(session, now, sms_provider)
    if asked.asked or escalated:
        log.info("housekeeping: %d surveys asked, %d cases escalated", asked.asked, escalated)
    if followed.retried or followed.to_sms or followed.to_voice:
        log.info(
            "housekeeping: survey calls retried %d, fell back to SMS %d, to voice %d",
            followed.retried,
            followed.to_sms,
            followed.to_voice,
        )


def run_burst(
    engine: Engine,
    connection: redis.Redis,
    config: Config | None = None,
    sms_provider: str | None = None,
) -> int:
    """Do everything due now and return: sweep, surveys and escalations, dispatch, send.

    Messages a rate-limited sender cannot send within `jobs.MAX_WAIT` stay pending, due later.
    """
    configure_delivery(delivery_settings(config), connection)
    queue = make_queue(connection)
    sweep(engine)
    if config is not None and sms_provider is not None:
        # One housekeeping round asks a bounded number of surveys: repeat while any is due.
        for _ in range(50):
            housekeeping(engine, config, sms_provider)
            if not _surveys_due(engine):
                break
    total = 0
    try:
        for _ in range(100):
            moved = dispatch(engine, queue)
            SimpleWorker([queue], connection=connection).work(burst=True)
            total += moved
            if not moved:
                break
    finally:
        close_senders()
    return total


def _surveys_due(engine: Engine) -> bool:
    with engine.connect() as conn:
        due = conn.execute(
            select(Survey.id)
            .where(
                Survey.status == SurveyStatus.SCHEDULED.value,
                Survey.due_at <= datetime.now(UTC),
            )
            .limit(1)
        ).first()
    return due is not None


OUTAGE_BACKOFF_MAX = 30.0


def _unreachable(exc: BaseException) -> str | None:
    """Which service `exc` says could not be reached ("database", "Redis"), or None."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "Redis"
    return "database" if is_unreachable(exc) else None


def _dispatch_loop(
    engine: Engine,
    queue: Queue,
    stop: threading.Event,
    interval: float,
    config: Config | None,
    sms_provider: str | None,
) -> None:
    last_sweep = 0.0
    failures = 0
    while not stop.is_set():
        try:
            if time.monotonic() - last_sweep > 30:
                sweep(engine)
                if config is not None and sms_provider is not None:
                    housekeeping(engine, config, sms_provider)
                last_sweep = time.monotonic()
            moved = dispatch(engine, queue)
        except Exception as exc:  # keep the loop alive: the database or Redis may come back
            lost = _unreachable(exc)
            if lost is None:
                log.exception("dispatcher: cycle failed")
            elif not failures:  # once per outage, not a traceback every half second
                log.error("dispatcher: %s unavailable (%s); retrying", lost, type(exc).__name__)
            failures += 1
            # Back off while it lasts (up to OUTAGE_BACKOFF_MAX) instead of hammering it.
            stop.wait(min(interval * 2**failures, OUTAGE_BACKOFF_MAX))
            continue
        if failures:
            log.info("dispatcher: database and Redis reachable again")
            failures = 0
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
    configure_delivery(delivery_settings(config), connection)
    queue = make_queue(connection)
    stop = threading.Event()
    thread = threading.Thread(
        target=_dispatch_loop,
        args=(engine, queue, stop, interval, config, sms_provider),
        daemon=True,
    )
    thread.start()
    try:
        _work_until_stopped(queue, connection, interval)
    finally:
        stop.set()
        thread.join(timeout=5)
        close_senders()


class _Worker(SimpleWorker):
    """rq's SimpleWorker, remembering whether SIGTERM/SIGINT asked it to stop: otherwise a
    return from `work()` means it gave up (rq quits on any error it does not handle)."""

    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def _work_until_stopped(queue: Queue, connection: redis.Redis, interval: float) -> None:
    """Run rq's worker until a signal asks it to stop. rq quits when Redis goes away under a
    job (refused, killed, restarted empty): then wait until Redis answers and start a fresh
    worker, as a supervisor would. Jobs lost with Redis are the sweeper's (their rows stay in
    the database: queued ones go back to pending, interrupted sends are reconciled)."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    while True:
        worker = _Worker([queue], connection=connection)
        try:
            worker.work(with_scheduler=False)
        except redis.RedisError as exc:  # rq's own teardown could not reach Redis either
            log.error("worker: Redis unavailable (%s)", type(exc).__name__)
        if worker.stop_requested or stopping.is_set():
            return
        # Between workers, a signal stops the wait (rq's handlers belong to the old worker).
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        log.warning("worker: rq worker quit without a stop request; restarting it")
        failures = 0
        while not stopping.wait(min(interval * 2**failures, OUTAGE_BACKOFF_MAX)):
            try:
                connection.ping()
            except redis.RedisError:
                failures += 1
                continue
            log.info("worker: Redis reachable; starting a fresh rq worker")
            break
        if stopping.is_set():
            return
