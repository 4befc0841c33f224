"""One lifecycle for rows a worker takes with a lease: the outbox's messages and calls.

A row moves pending -> queued (the dispatcher hands its id to Redis) -> working (claimed with a
lease by exactly one worker: `sending` for a message, `calling` for a call) -> a result. A failed
attempt goes back to pending after a backoff, or to failed for good; a row lost from Redis
(queued too long) goes back to pending; a row whose worker died keeps `working` with an expired
lease until the sweeper takes it (a fresh lease) and settles it with the provider.

`Leased` holds the statements; each table names its statuses, attempts cap and backoff. What
differs per table (columns returned, opt-out checks, error codes) stays with the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, Update, select, update

LEASE = timedelta(seconds=120)
QUEUED_TIMEOUT = timedelta(seconds=120)


@dataclass(frozen=True)
class Leased:
    """A table of leased work: its statuses, attempts cap and backoff schedule."""

    table: Table
    pending: str
    queued: str
    working: str  # claimed by one worker, under a lease
    failed: str
    cancelled: str
    max_attempts: int
    # Delays before retry 1, 2, 3…; the last repeats.
    backoff: tuple[timedelta, ...]
    lease: timedelta = LEASE
    queued_timeout: timedelta = QUEUED_TIMEOUT

    def take_due(self, conn: Connection, now: datetime, limit: int) -> list[int]:
        """Mark up to `limit` due pending rows as queued and return their ids (the dispatcher).

        On PostgreSQL the rows are locked and others' locked rows skipped, so two dispatchers
        never queue one row twice."""
        c = self.table.c
        query = (
            select(c.id)
            .where(c.status == self.pending, c.next_attempt_at <= now)
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = [int(r[0]) for r in conn.execute(query)]
        if ids:
            conn.execute(
                update(self.table)
                .where(c.id.in_(ids), c.status == self.pending)
                .values(status=self.queued, updated_at=now)
            )
        return ids

    def claim(self, which: ColumnElement[bool], now: datetime) -> Update:
        """The statement taking the pending or queued rows `which` selects, with a lease, and
        counting the attempt; one worker wins each row (add `.returning(...)` to read them)."""
        c = self.table.c
        return (
            update(self.table)
            .where(which, c.status.in_([self.pending, self.queued]))
            .values(
                status=self.working,
                lease_until=now + self.lease,
                attempts=c.attempts + 1,
                updated_at=now,
            )
        )

    def fail(
        self,
        conn: Connection,
        row_id: int,
        *,
        reason: str,
        retryable: bool,
        attempts: int,
        now: datetime,
        **extra: Any,
    ) -> str:
        """Record a failed attempt: back to pending after the backoff, or failed for good.
        Returns the new status; `extra` are more columns to write."""
        values: dict[str, Any]
        if retryable and attempts < self.max_attempts:
            delay = self.backoff[min(attempts - 1, len(self.backoff) - 1)]
            values = {"status": self.pending, "next_attempt_at": now + delay}
        else:
            values = {"status": self.failed}
        conn.execute(
            update(self.table)
            .where(self.table.c.id == row_id)
            .values(error=reason[:500], lease_until=None, updated_at=now, **extra, **values)
        )
        return str(values["status"])

    def cancel(self, conn: Connection, row_id: int, reason: str, now: datetime) -> None:
        conn.execute(
            update(self.table)
            .where(self.table.c.id == row_id)
            .values(status=self.cancelled, error=reason, lease_until=None, updated_at=now)
        )

    def requeue_lost(self, conn: Connection, now: datetime) -> int:
        """Put back rows lost from Redis (queued for too long); returns how many."""
        c = self.table.c
        lost = conn.execute(
            update(self.table)
            .where(c.status == self.queued, c.updated_at < now - self.queued_timeout)
            .values(status=self.pending, updated_at=now)
        ).rowcount
        return int(lost or 0)

    def take_expired(
        self, conn: Connection, now: datetime, limit: int, columns: Sequence[str]
    ) -> Sequence[Row[Any]]:
        """Rows stuck in `working` past their lease, claimed with a fresh lease so one sweeper
        settles each; returns their `columns`."""
        c = self.table.c
        expired = (c.status == self.working, c.lease_until < now)
        ids = [int(r[0]) for r in conn.execute(select(c.id).where(*expired).limit(limit))]
        if not ids:
            return []
        return conn.execute(
            update(self.table)
            .where(c.id.in_(ids), *expired)
            .values(lease_until=now + self.lease, updated_at=now)
            .returning(*(c[name] for name in columns))
        ).all()

    def since(self, now: datetime) -> datetime:
        """Where to look for a sweeper's row at the provider: the work began at most one lease
        before the expiry we saw, so look from well before it."""
        return now - 2 * self.lease

    def redo(self, conn: Connection, row_id: int, now: datetime, **values: Any) -> None:
        """Put a row whose worker died back to pending, due now, if it is still `working`;
        `values` say why (error, error code)."""
        c = self.table.c
        conn.execute(
            update(self.table)
            .where(c.id == row_id, c.status == self.working)
            .values(
                status=self.pending, lease_until=None, next_attempt_at=now, updated_at=now, **values
            )
        )
