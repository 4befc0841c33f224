"""rq jobs: importable functions that take outbox ids, never objects."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine

from casestore import calls, outbox
from casestore.db import database_url, make_engine
from gateway.calls import Caller, caller_from_env
from gateway.senders import SendError, SmsSender, sender_from_env

log = logging.getLogger(__name__)


_opened: list[Engine] = []


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    engine = make_engine(url)
    _opened.append(engine)
    return engine


def _engine() -> Engine:
    return _engine_for(database_url())


def dispose_engines() -> None:
    """Close the connections this process's jobs opened (tests, and before a fork)."""
    for engine in _opened:
        engine.dispose()
    _opened.clear()
    _engine_for.cache_clear()
    # Provider clients keep pooled keep-alive connections too (a stale one fails a send).
    _sender_for.cache_clear()
    _caller_for.cache_clear()


@lru_cache(maxsize=16)
def _sender_for(provider: str, env: tuple[tuple[str, str], ...]) -> SmsSender:
    return sender_from_env(provider, dict(env))


def sender_for(provider: str) -> SmsSender:
    """The provider's client, rebuilt when its environment changes (one per process)."""
    relevant = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith(("TWILIO_", "AT_")))
    )
    return _sender_for(provider, relevant)


def _status_callback(provider: str) -> str | None:
    base = os.environ.get("VENTANILLA_PUBLIC_URL", "").rstrip("/")
    if provider == "twilio" and base:
        return f"{base}/webhooks/twilio/status"
    return None


def now() -> datetime:
    return datetime.now(UTC)


def send_messages(message_ids: list[int]) -> dict[str, int]:
    """Send each outbox row once: claim with a lease, call the provider, record the result."""
    counts = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0, "cancelled": 0}
    engine = _engine()
    for message_id in message_ids:
        with engine.begin() as conn:
            claimed = outbox.claim(conn, message_id, now())
        if claimed is None:
            counts["skipped"] += 1
            continue
        if claimed.contact_opted_out and claimed.kind != "reply":
            with engine.begin() as conn:
                outbox.mark_cancelled(conn, claimed.id, "citizen opted out", now())
            counts["cancelled"] += 1
            continue
        try:
            sender = sender_for(claimed.provider)
            result = sender.send_sms(
                claimed.to_address, claimed.body, status_callback=_status_callback(claimed.provider)
            )
        except SendError as exc:
            with engine.begin() as conn:
                state = outbox.mark_failed(
                    conn,
                    claimed.id,
                    reason=exc.reason,
                    code=exc.code,
                    retryable=exc.retryable,
                    attempts=claimed.attempts,
                    now=now(),
                    opted_out=exc.opted_out,
                )
            counts["retry" if state == "pending" else "failed"] += 1
            log.warning("outbox %s: %s (%s)", claimed.id, exc.reason, state)
            continue
        except ValueError as exc:  # provider not configured: nothing can be sent
            with engine.begin() as conn:
                outbox.mark_failed(
                    conn,
                    claimed.id,
                    reason=str(exc),
                    code=None,
                    retryable=True,
                    attempts=claimed.attempts,
                    now=now(),
                )
            counts["retry"] += 1
            log.error("outbox %s: %s", claimed.id, exc)
            continue
        with engine.begin() as conn:
            outbox.mark_sent(conn, claimed.id, result.provider_ref, result.status, now())
        counts["sent"] += 1
    return counts


# ---------------------------------------------------------------- outbound calls


@lru_cache(maxsize=16)
def _caller_for(provider: str, env: tuple[tuple[str, str], ...]) -> Caller:
    return caller_from_env(provider, dict(env))


def _caller(provider: str) -> Caller:
    relevant = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith(("TWILIO_", "AT_")))
    )
    return _caller_for(provider, relevant)


def _call_urls(provider: str) -> tuple[str | None, str | None]:
    """(instructions URL, status callback) for a Twilio call; AT and the outbox take none."""
    if provider != "twilio":
        return None, None
    base = os.environ.get("VENTANILLA_PUBLIC_URL", "").rstrip("/")
    if not base:
        raise ValueError("VENTANILLA_PUBLIC_URL must be set for Twilio to fetch the call's menu")
    return f"{base}/webhooks/twilio/voice", f"{base}/webhooks/twilio/call-status"


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
        if claimed.contact_opted_out and claimed.kind != calls.MISSED_CALL:
            # A missed call is the citizen asking to be called: BAJA stops only what we start.
            with engine.begin() as conn:
                calls.mark_cancelled(conn, claimed.id, "citizen opted out", now())
            counts["cancelled"] += 1
            continue
        try:
            url, status_callback = _call_urls(claimed.provider)
            result = _caller(claimed.provider).place_call(
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
