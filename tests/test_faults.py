"""Faults (issue 8): the provider failing, a worker killed mid-batch, Redis losing its keys.

What the product promises: an outbox row is sent once and never lost; a provider that answers
5xx, 429 or not at all is retried with backoff and, after MAX_ATTEMPTS, the message shows as
failed on its case (API and console). Loopback only, bounded in time, both databases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import insert, select, update
from starlette.testclient import TestClient

from casestore import outbox
from casestore.config import Config, load_config
from casestore.db import make_engine
from casestore.models import Contact, OutboundCall, OutboundMessage
from gateway.app import create_app
from gateway.rediskeys import RedisKeys, delete_all
from gateway.settings import load_settings
from tests.conftest import PUBLIC_URL, app_env
from tests.fakeprovider import FakeProvider
from tests.faults import RedisServer
from tests.helpers import Db, at_form, post_at, post_twilio, twilio_form
from tests.settings import REDIS_PREFIX
from tests.test_delivery import ROOT, outbox_rows, process_env, wait_for
from tests.test_landlines import MOBILE, Stack, stack  # noqa: F401  (fixture)
from tests.test_outbox_worker import add_message
from tests.test_senders import twilio_error

# How each provider answers a fault: (HTTP status, body, seconds before answering).
FAULTS: dict[str, dict[str, tuple[int, Any, float]]] = {
    "500": {
        "twilio": (500, twilio_error(500, 20500, "Internal Server Error"), 0.0),
        "africastalking": (500, "Internal Server Error", 0.0),
    },
    "429": {
        "twilio": (429, twilio_error(429, 20429, "Too Many Requests"), 0.0),
        "africastalking": (429, "Too Many Requests", 0.0),
    },
    # The answer comes after the worker stopped waiting ([delivery] timeout_seconds).
    "timeout": {
        "twilio": (201, {}, 1.0),
        "africastalking": (201, {}, 1.0),
    },
}


def _notification(db_url: str) -> OutboundMessage:
    with Db(db_url) as db:
        (row,) = [m for m in db.outbox() if m.kind == "notification"]
        return row


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_provider_is_retried_with_backoff_then_the_message_shows_failed(
    fault: str,
    stack: Stack,  # noqa: F811
    fake_provider: FakeProvider,
) -> None:
    config = load_config(env={"VENTANILLA__DELIVERY__TIMEOUT_SECONDS": "0.2"})
    number = stack.text_in(MOBILE)
    stack.burst(config)  # the receipt (Africa's Talking sends it as a message of its own)
    stack.status(number, "in_progress")
    status, body, delay = FAULTS[fault][stack.provider]
    waits = []
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        fake_provider.fail_next(stack.provider, status, body, delay=delay)
        stack.burst(config)
        row = _notification(stack.db_url)
        assert row.attempts == attempt
        if attempt < outbox.MAX_ATTEMPTS:
            assert row.status == "pending", row.error  # retried, not given up
            waits.append(row.next_attempt_at - row.updated_at)
            stack.burst(config)  # not due yet: nothing is sent in between
            assert _notification(stack.db_url).attempts == attempt
            with Db(stack.db_url) as db, db.engine.begin() as conn:
                conn.execute(  # the backoff passes
                    update(OutboundMessage)
                    .where(OutboundMessage.id == row.id)
                    .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
                )
    assert row.status == "failed" and row.error
    # Backoff: each wait the schedule's, never shorter than the one before.
    expected = [outbox.BACKOFF[min(i, len(outbox.BACKOFF) - 1)] for i in range(len(waits))]
    assert waits == expected and waits == sorted(waits)
    assert not [m for m in fake_provider.messages if m.body == row.body]
    # Visible: the API's case and the console's case page say it was not sent.
    case = stack.client.get(f"/api/v1/cases/{number}", headers=stack.headers).json()
    (shown,) = [m for m in case["messages"] if m["kind"] == "notification"]
    assert (shown["status"], shown["attempts"]) == ("failed", outbox.MAX_ATTEMPTS)
    assert shown["error"]


# ---------------------------------------------------------------- worker killed, Redis lost


def _env(db_url: str, redis_url: str, fake: FakeProvider, provider: str) -> dict[str, str]:
    """A worker's environment (tests/test_delivery.py), able to place calls on both providers."""
    env = process_env(db_url, redis_url, fake, provider)
    env.update(AT_VOICE_NUMBER="+5491155559999", AT_VOICE_BASE_URL=fake.url)
    return env


def _run_worker_until(
    db_url: str,
    redis_url: str,
    fake: FakeProvider,
    provider: str,
    tmp_path: Path,
    sent: int,
    then: Any = None,
    taken: Any = None,
) -> None:
    """Start `ventanilla worker`, let the provider take `sent` messages (or calls, with
    `taken` counting them), run `then`, SIGKILL the worker."""
    count = taken or (lambda: len(fake.messages))
    env = _env(db_url, redis_url, fake, provider)
    fake.answer_delay = 0.3  # a slow provider: the kill finds sends in flight
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: count() >= sent, 60, f"{sent} sent", log)
        if then is not None:
            then()
            wait_for(lambda: count() >= sent + 5, 60, "more sent", log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    fake.answer_delay = 0.0


def _restart_after_the_leases(db_url: str, redis_url: str, fake: FakeProvider, provider: str):  # type: ignore[no-untyped-def]
    """Time passes (leases and queued holds run out); the worker runs again until done."""
    engine = make_engine(db_url)
    past = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "sending")
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "queued")
            .values(updated_at=past)
        )
        conn.execute(
            update(OutboundCall)
            .where(OutboundCall.status == "calling")
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        conn.execute(
            update(OutboundCall).where(OutboundCall.status == "queued").values(updated_at=past)
        )
    engine.dispose()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "worker", "--burst"],
        cwd=ROOT,
        env=_env(db_url, redis_url, fake, provider),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _notifications(db_url: str, count: int) -> list[str]:
    phones = [f"+5491177{n:06d}" for n in range(count)]
    for phone in phones:
        add_message(db_url, provider="twilio", to=phone)
    return phones


def _each_once(db_url: str, fake: FakeProvider, phones: list[str]) -> None:
    rows = {r.to_address: r for r in outbox_rows(db_url)}
    got = Counter(m.to for m in fake.messages)
    assert {r.status for r in rows.values()} == {"sent"}  # none lost
    assert set(got) == set(phones) and set(got.values()) == {1}  # each exactly once


def test_worker_killed_mid_batch_sends_each_notification_once(
    db_url: str, redis_url: str, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """Mirrors the survey test in tests/test_delivery.py for ordinary outbox rows: Twilio is
    asked about interrupted sends before any resend, so each arrives exactly once."""
    phones = _notifications(db_url, 50)
    _run_worker_until(db_url, redis_url, fake_provider, "twilio", tmp_path, sent=20)
    assert len({m.to for m in fake_provider.messages}) < len(phones)  # killed mid-batch
    _restart_after_the_leases(db_url, redis_url, fake_provider, "twilio")
    _each_once(db_url, fake_provider, phones)


def test_redis_losing_every_key_mid_run_loses_no_message(
    db_url: str, redis_url: str, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """Redis emptied under a running worker (its queue, jobs and rate schedule gone): the
    database still has every row, and the sweeper puts the lost ones back, each sent once."""
    phones = _notifications(db_url, 50)

    def lose_redis() -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            assert delete_all(client, RedisKeys(REDIS_PREFIX)) > 0
        finally:
            client.close()

    _run_worker_until(db_url, redis_url, fake_provider, "twilio", tmp_path, 10, lose_redis)
    _restart_after_the_leases(db_url, redis_url, fake_provider, "twilio")
    _each_once(db_url, fake_provider, phones)


def test_redis_killed_and_restarted_empty_mid_run_loses_no_message(
    db_url: str, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """A private Redis SIGKILLed under a running worker and started again, empty, on the same
    port: the worker rides it out (no restart) and sends what is queued after; the rows whose
    jobs died with Redis are put back by the sweeper; each message is sent, and each call-back
    rings, exactly once."""
    with RedisServer(tmp_path / "redis") as server:
        phones = _notifications(db_url, 50)
        dialled = _call_backs(db_url, "twilio", 10)
        env = _env(db_url, server.url, fake_provider, "twilio")
        fake_provider.answer_delay = 0.3  # a slow provider: the kill finds sends in flight
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: len(fake_provider.messages) >= 10, 30, "10 sent", log)
            server.kill()  # every job, the queue and the rate schedule gone with it
            at_kill = {r.to_address: r.status for r in outbox_rows(db_url)}
            assert {"queued", "sending"} & set(at_kill.values()), "kill before the batch is done"
            time.sleep(1.0)  # Redis stays down a while: the worker meets refused connections
            assert worker.poll() is None, log.read_text()[-3000:]
            server.start()  # same port, no keys
            # The same process (no supervisor restarted it) takes new work from the new Redis.
            later = [f"+5491166{n:06d}" for n in range(5)]
            for phone in later:
                add_message(db_url, provider="twilio", to=phone)
            sent_to = lambda: {m.to for m in fake_provider.messages}  # noqa: E731
            wait_for(lambda: set(later) <= sent_to(), 30, "sent after the restart", log)
            assert worker.poll() is None, log.read_text()[-3000:]
            worker.send_signal(signal.SIGTERM)  # a clean stop, as a supervisor stops it
            assert worker.wait(timeout=20) == 0, log.read_text()[-3000:]
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        fake_provider.answer_delay = 0.0
        # The jobs lost with Redis: their rows wait as queued (or sending, mid-send) until the
        # sweeper's hold and leases run out, then go back (reconciled with Twilio first).
        _restart_after_the_leases(db_url, server.url, fake_provider, "twilio")
        _each_once(db_url, fake_provider, phones + later)
        assert not [r for r in outbox_rows(db_url) if r.status != "sent"]  # nothing pending
        rang = Counter(c.to for c in fake_provider.calls)
        assert set(rang) == set(dialled) and set(rang.values()) == {1}
        assert {r.status for r in _call_rows(db_url).values()} == {"placed"}


def test_an_sms_arriving_while_redis_is_down_is_acknowledged_and_stored(
    db_url: str, config: Config, tmp_path: Path
) -> None:
    """Redis down, the database up: both providers' SMS webhooks answer 200 with the receipt
    and the contact is in the database (not spooled, not a dead letter)."""
    with RedisServer(tmp_path / "redis") as server:
        settings = load_settings(app_env(db_url, server.url))
        with TestClient(create_app(settings, config), base_url=PUBLIC_URL) as client:
            client.app.state.runtime.redis.ping()  # type: ignore[attr-defined]  # connected once
            server.kill()
            twilio = post_twilio(client, twilio_form("Hay un bache en mi calle", "+5491155550101"))
            at = post_at(client, at_form("Se corto la luz en el barrio", "+5491155550102"))
            assert client.get("/healthz").json()["redis"] != "ok"
            spooled = client.app.state.runtime.spool.pending()  # type: ignore[attr-defined]
    assert twilio.status_code == 200 and "<Message>" in twilio.text
    assert at.status_code == 200
    assert spooled == 0
    with Db(db_url) as db:
        phones = {c.phone for c in db.contacts()}
        texts = {i.text for i in db.interactions()}
        assert {"+5491155550101", "+5491155550102"} <= phones
        assert {"Hay un bache en mi calle", "Se corto la luz en el barrio"} <= texts
        assert len(db.cases()) == 2


def _call_backs(db_url: str, provider: str, count: int) -> list[str]:
    """`count` call-backs due now, each to its own citizen."""
    now = datetime.now(UTC)
    phones = [f"+5491188{n:06d}" for n in range(count)]
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for phone in phones:
            contact_id = conn.execute(
                insert(Contact)
                .values(phone=phone, preferred_channel="voice", created_at=now)
                .returning(Contact.id)
            ).scalar_one()
            conn.execute(
                insert(OutboundCall).values(
                    contact_id=contact_id,
                    kind="missed_call",
                    provider=provider,
                    to_address=phone,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
    engine.dispose()
    return phones


def _call_rows(db_url: str) -> dict[str, Any]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(OutboundCall)).all()
    engine.dispose()
    return {r.to_address: r for r in rows}


@pytest.mark.parametrize("provider", ["twilio", "africastalking"])
def test_worker_killed_mid_batch_of_calls_rings_each_citizen_once(
    provider: str, db_url: str, redis_url: str, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """Twilio is asked for the calls it has before any redial: each citizen's phone rings
    once. Africa's Talking cannot be asked: the interrupted call is dialled again (its row
    said "may ring twice" until then)."""
    phones = _call_backs(db_url, provider, 20)
    _run_worker_until(
        db_url,
        redis_url,
        fake_provider,
        provider,
        tmp_path,
        sent=6,
        taken=lambda: len(fake_provider.calls),
    )
    at_kill = _call_rows(db_url)
    dialled = {c.to for c in fake_provider.calls}
    interrupted = {p for p in dialled if at_kill[p].status == "calling"}
    assert interrupted, "the kill must land while a dialled call is unrecorded"
    assert len(dialled) < len(phones), "the kill must land before the batch is done"
    _restart_after_the_leases(db_url, redis_url, fake_provider, provider)
    rows = _call_rows(db_url)
    rang = Counter(c.to for c in fake_provider.calls)
    assert set(rang) == set(phones)  # none lost
    assert {r.status for r in rows.values()} == {"placed"}
    if provider == "twilio":
        assert set(rang.values()) == {1}  # none twice
        refs = {c.to: c.ref for c in fake_provider.calls}
        assert all(rows[p].provider_ref == refs[p] for p in phones)
    else:
        twice = {p for p, n in rang.items() if n == 2}
        assert twice == interrupted
        assert all(rows[p].attempts == 2 for p in twice)  # dialled again after the kill
