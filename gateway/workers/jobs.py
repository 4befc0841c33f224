"""rq jobs: importable functions that take outbox ids, never objects."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import redis
from sqlalchemy import Connection, Engine, select

from casestore import calls, outbox
from casestore.db import database_url, make_engine
from casestore.reach import NOTICE
from gateway.providers import registry
from gateway.providers.base import SendError, SmsSender
from gateway.providers.http import watch_write
from gateway.workers.sendrate import DeliverySettings, SendRate, send_interval

log = logging.getLogger(__name__)

T = TypeVar("T")

# A batch waits at most this long for a rate-limited sender's next slot; rows further out go
# back to pending, due when their turn comes, so a job never sleeps towards its lease's end.
MAX_WAIT = 30.0
# A job spends at most about this long pacing one limited sender; the rest of its batch goes
# back to pending, due now, so replies and other senders' jobs get their turn in between.
JOB_BUDGET = 10.0

_opened: list[Engine] = []
_loop: asyncio.AbstractEventLoop | None = None
_delivery = DeliverySettings()
_rate: SendRate | None = None
# When this process last wrote requests for each rate-limited sender (loop clock).
_written: dict[str, deque[float]] = {}


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    engine = make_engine(url)
    _opened.append(engine)
    return engine


def _engine() -> Engine:
    return _engine_for(database_url())


def configure_delivery(settings: DeliverySettings, connection: redis.Redis) -> None:
    """This process's send rates and concurrency; the rates' schedule lives in `connection`."""
    global _delivery, _rate
    _delivery = settings
    _rate = SendRate(connection)


def dispose_engines() -> None:
    """Close the connections this process's jobs opened (tests, and before a fork)."""
    for engine in _opened:
        engine.dispose()
    _opened.clear()
    _engine_for.cache_clear()
    # Provider clients keep pooled keep-alive connections too (a stale one fails a send).
    close_senders()


def close_senders() -> None:
    """Close the provider clients: async pools on the loop that opened them, then the loop."""
    global _loop
    if _loop is not None and not _loop.is_closed():
        _loop.run_until_complete(registry.aclose_senders())
        _loop.run_until_complete(_loop.shutdown_asyncgens())
        _loop.close()
    _loop = None
    registry.forget_clients()
    _written.clear()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on this process's one event loop, kept between jobs so connection pools stay warm."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def sender_for(provider: str) -> SmsSender:
    """The provider's client with this process's [delivery] timeout (the registry caches it)."""
    return registry.sender(provider, timeout=_delivery.timeout_seconds)


def _status_callback(provider: str) -> str | None:
    base = os.environ.get("VENTANILLA_PUBLIC_URL", "").rstrip("/")
    if provider == "twilio" and base:
        return f"{base}/webhooks/twilio/status"
    return None


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Failed:
    row: outbox.Claimed
    error: SendError


def send_messages(message_ids: list[int]) -> dict[str, int]:
    """Send a batch of outbox rows, each once: claimed together with a lease, sent concurrently
    (paced to each sender's rate), every result recorded in one transaction per chunk."""
    counts = dict.fromkeys(("sent", "failed", "retry", "skipped", "cancelled", "deferred"), 0)
    engine = _engine()
    with engine.begin() as conn:
        rows = conn.execute(
            select(outbox.outbox.c.id, outbox.outbox.c.provider).where(
                outbox.outbox.c.id.in_(message_ids),
                outbox.outbox.c.status.in_(outbox.CLAIMABLE),
            )
        ).all()
    by_provider: dict[str, list[int]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.id):
        by_provider[row.provider].append(row.id)
    counts["skipped"] = len(message_ids) - len(rows)
    for provider, ids in by_provider.items():
        _send_provider(engine, provider, ids, counts)
    return counts


def _send_provider(engine: Engine, provider: str, ids: list[int], counts: dict[str, int]) -> None:
    try:
        sender = sender_for(provider)
    except (
        ValueError
    ) as exc:  # provider not configured: nothing can be sent; an operator can fix it
        with engine.begin() as conn:
            claimed = outbox.claim_batch(conn, ids, now())
            failures = [_Failed(c, SendError(str(exc), retryable=True)) for c in claimed]
            _record(conn, [], failures, counts)
        counts["skipped"] += len(ids) - len(claimed)
        log.error("outbox: %d messages for %s not sent: %s", len(claimed), provider, exc)
        return
    rate = _delivery.rate_for(sender.sender_key)
    # What one claim takes: about a second of slots for a limited sender, and never more than
    # four rounds of `concurrency` requests, so even if every request runs to its timeout the
    # claim's lease (outbox.LEASE) outlasts the wait for the slots and the sends.
    size = min(len(ids) if rate <= 0 else math.ceil(rate), 4 * _delivery.concurrency)
    deadline = time.monotonic() + JOB_BUDGET
    for start in range(0, len(ids), size):
        if start and time.monotonic() > deadline:
            with engine.begin() as conn:
                counts["deferred"] += outbox.defer(conn, ids[start:], now(), now())
            return
        wait = _send_chunk(engine, sender, rate, ids[start : start + size], counts)
        if wait is not None:
            with engine.begin() as conn:
                until = now() + timedelta(seconds=wait)
                counts["deferred"] += outbox.defer(conn, ids[start + size :], until, now())
            return


def _send_chunk(
    engine: Engine, sender: SmsSender, rate: float, ids: list[int], counts: dict[str, int]
) -> float | None:
    """Claim, wait for the sender's slots, send, record. If the slots are too far off, the
    chunk is handed back and the wait returned: the rest of the batch waits as long."""
    with engine.begin() as conn:
        claimed = outbox.claim_batch(conn, ids, now())
        counts["skipped"] += len(ids) - len(claimed)
        to_send: list[outbox.Claimed] = []
        for row in claimed:
            if row.contact_opted_out and row.kind != "reply":
                outbox.mark_cancelled(conn, row.id, "citizen opted out", now())
                counts["cancelled"] += 1
            else:
                to_send.append(row)
    if not to_send:
        return None
    wait, interval = 0.0, send_interval(rate)
    if rate > 0:
        if _rate is None:
            raise RuntimeError("a send rate is configured but no Redis: call configure_delivery")
        reserved, wait = _rate.reserve(sender.sender_key, len(to_send), interval, MAX_WAIT)
        if not reserved:
            with engine.begin() as conn:
                until = now() + timedelta(seconds=wait)
                counts["deferred"] += outbox.release(conn, [r.id for r in to_send], until, now())
            return wait
    outcomes = _run(_send_all(sender, to_send, wait, rate, _delivery.concurrency))
    sent = [o for o in outcomes if isinstance(o, outbox.Sent)]
    failures = [o for o in outcomes if isinstance(o, _Failed)]
    with engine.begin() as conn:
        _record(conn, sent, failures, counts)
    return None


async def _send_all(
    sender: SmsSender,
    rows: list[outbox.Claimed],
    wait: float,
    rate: float,
    concurrency: int,
) -> list[outbox.Sent | _Failed | None]:
    """Send every row, the i-th no earlier than its reserved slot, `wait + i * interval`
    seconds from now; with a rate, one request at a time onto the wire (the next waits until the
    previous one is written) and never more than the rate within a second of this process's own
    writes. A late send does not push its successors' slots back: no drift builds up.

    None for a row whose outcome is unknown (an unexpected error): it stays `sending`, so the
    sweeper asks the provider about it before any resend.
    """
    loop = asyncio.get_running_loop()
    first = loop.time() + wait
    interval = send_interval(rate)
    gate = asyncio.Semaphore(concurrency)
    callback = _status_callback(sender.name)

    async def one(row: outbox.Claimed) -> outbox.Sent | _Failed | None:
        async with gate:
            try:
                result = await sender.send_sms_async(
                    row.to_address, row.body, status_callback=callback
                )
            except SendError as exc:
                return _Failed(row, exc)
            except Exception:
                log.exception("outbox %s: unexpected error while sending", row.id)
                return None
        return outbox.Sent(row.id, row.interaction_id, result.provider_ref, result.status)

    if interval <= 0:
        return await asyncio.gather(*(one(row) for row in rows))
    # A send that went out late (a new connection, a busy machine) must not let the ones after
    # it catch up into a burst: any n + 1 consecutive writes of this process span n / rate.
    n = max(1, math.ceil(rate))
    recent = _written.setdefault(sender.sender_key, deque(maxlen=n))
    tasks = []
    for index, row in enumerate(rows):
        at = first + index * interval
        if len(recent) == n:
            at = max(at, recent[0] + n / rate)
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        written = watch_write()
        task = asyncio.ensure_future(one(row))
        tasks.append(task)
        either: list[asyncio.Future[Any]] = [written, task]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        recent.append(written.result() if written.done() else loop.time())
        written.cancel()
    return await asyncio.gather(*tasks)


def _record(
    conn: Connection, sent: list[outbox.Sent], failures: list[_Failed], counts: dict[str, int]
) -> None:
    at = now()
    outbox.record_sent(conn, sent, at)
    counts["sent"] += len(sent)
    for failure in failures:
        exc = failure.error
        state = outbox.mark_failed(
            conn,
            failure.row.id,
            reason=exc.reason,
            code=exc.code,
            retryable=exc.retryable,
            attempts=failure.row.attempts,
            now=at,
            opted_out=exc.opted_out,
        )
        counts["retry" if state == "pending" else "failed"] += 1
        log.warning("outbox %s: %s (%s)", failure.row.id, exc.reason, state)


# ---------------------------------------------------------------- outbound calls


def _call_urls(call: calls.ClaimedCall) -> tuple[str | None, str | None]:
    """(instructions URL, status callback) for a provider that fetches a placed call's
    instructions (the registry's call paths); (None, None) for one that takes none."""
    paths = registry.info(call.provider).call_paths
    if paths is None:
        return None, None
    base = os.environ.get("VENTANILLA_PUBLIC_URL", "").rstrip("/")
    if not base:
        raise ValueError(
            f"VENTANILLA_PUBLIC_URL must be set for {call.provider} to fetch the call's menu"
        )
    status = base + paths.status
    if call.kind == calls.SURVEY:  # the survey's own question, not the menu
        if call.survey_id is None:
            raise SendError("a survey call without its survey", retryable=False)
        if paths.survey is None:
            raise SendError(f"{call.provider} cannot place voice surveys", retryable=False)
        return base + paths.survey.format(survey=call.survey_id), status
    if call.kind == NOTICE:  # says the notice's message, not the menu
        if paths.notice is None:
            raise SendError(f"{call.provider} cannot read notices to landlines", retryable=False)
        return base + paths.notice.format(call=call.id), status
    return base + paths.menu, status


def place_calls(call_ids: list[int]) -> dict[str, int]:
    """Dial each outbound_calls row once: claim with a lease, call the provider, record it."""
    counts = {"placed": 0, "failed": 0, "retry": 0, "skipped": 0, "cancelled": 0}
    engine = _engine()
    for call_id in call_ids:
        with engine.begin() as conn:
            claimed = calls.claim(conn, call_id, now())
        if claimed is None:
            counts["skipped"] += 1
            continue
        if claimed.kind == calls.OPERATOR_BRIDGE:  # only worth placing at once, by the console
            with engine.begin() as conn:
                calls.mark_cancelled(conn, claimed.id, "operator bridges are not retried", now())
            counts["cancelled"] += 1
            continue
        if claimed.contact_opted_out and claimed.kind != calls.MISSED_CALL:
            # A missed call is the citizen asking to be called: BAJA stops only what we start.
            with engine.begin() as conn:
                calls.mark_cancelled(conn, claimed.id, "citizen opted out", now())
            counts["cancelled"] += 1
            continue
        try:
            url, status_callback = _call_urls(claimed)
            result = registry.caller(claimed.provider).place_call(
                claimed.to_address, url=url, status_callback=status_callback
            )
        except (SendError, ValueError) as exc:
            # ValueError: the provider is not configured; retried, as an operator can fix it.
            reason, retryable = (
                (exc.reason, exc.retryable) if isinstance(exc, SendError) else (str(exc), True)
            )
            with engine.begin() as conn:
                state = calls.mark_failed(
                    conn,
                    claimed.id,
                    reason=reason,
                    retryable=retryable,
                    attempts=claimed.attempts,
                    now=now(),
                )
            counts["retry" if state == "pending" else "failed"] += 1
            log.warning("outbound call %s: %s (%s)", claimed.id, reason, state)
            continue
        with engine.begin() as conn:
            calls.mark_placed(conn, claimed.id, result.provider_ref, result.status, now())
        counts["placed"] += 1
    return counts
