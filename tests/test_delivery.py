"""Delivery through the outbox: batches, async sends, per-sender rates, and a worker killed
with SIGKILL mid-batch losing no survey and sending none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from sqlalchemy import Engine, event, insert, select, update
from sqlalchemy.orm import Session

from casestore import outbox
from casestore.config import Config, ConfigError, load_config
from casestore.db import make_engine
from casestore.models import Case, Contact, OutboundMessage, Survey
from feedback.surveys import send_due_surveys
from gateway.providers import http
from gateway.providers.base import SendError, SendResult, SmsSender
from gateway.rediskeys import keys_of
from gateway.workers import jobs
from gateway.workers.sendrate import DeliverySettings, SendRate, delivery_settings, send_interval
from gateway.workers.worker import run_burst
from tests.conftest import AT_KEY, TWILIO_SID, TWILIO_TOKEN
from tests.fakeprovider import FakeProvider
from tests.settings import REDIS_PREFIX
from tests.test_outbox_worker import add_message, worker_env  # noqa: F401  (fixture)
from tests.test_senders import FAILURES, FailureCase, closed_port_url

ROOT = Path(__file__).resolve().parent.parent
TWILIO_FROM = "+5491155550000"


# ---------------------------------------------------------------- builders


def survey_config() -> Config:
    """The shipped configuration without quiet hours (tests must not depend on the clock)."""
    return load_config(env={"VENTANILLA__SURVEY__QUIET_HOURS": '""'})


def ask_surveys(db_url: str, provider: str, count: int) -> list[str]:
    """`count` closed cases whose surveys are due, asked into the outbox; their phones."""
    config = survey_config()
    triage = config.categories[config.triage_category]
    now = datetime.now(UTC)
    phones = [f"+5491166{n:06d}" for n in range(count)]
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for n, phone in enumerate(phones):
            contact_id = conn.execute(
                insert(Contact)
                .values(
                    phone=phone,
                    language="es",
                    preferred_channel="sms",
                    created_at=now,
                    reply_count=0,
                    lookup_count=0,
                )
                .returning(Contact.id)
            ).scalar_one()
            case_id = conn.execute(
                insert(Case)
                .values(
                    tracking_number=f"{5100000000 + n}",
                    contact_id=contact_id,
                    channel="sms",
                    category=triage.code,
                    department=triage.department,
                    status="closed",
                    language="es",
                    created_at=now,
                    updated_at=now,
                    closed_at=now,
                )
                .returning(Case.id)
            ).scalar_one()
            conn.execute(
                insert(Survey).values(
                    case_id=case_id,
                    contact_id=contact_id,
                    channel="sms",
                    language="es",
                    status="scheduled",
                    due_at=now - timedelta(minutes=1),
                    expires_at=now + timedelta(hours=72),
                    created_at=now,
                    updated_at=now,
                )
            )
    with Session(engine) as session, session.begin():
        assert send_due_surveys(session, config, provider, now).asked == count
    engine.dispose()
    return phones


def outbox_rows(db_url: str) -> list[Any]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    engine.dispose()
    return list(rows)


# ---------------------------------------------------------------- async senders


def _send_async(sender: SmsSender, to: str, body: str, callback: str | None = None) -> Any:
    async def go() -> Any:
        try:
            return await sender.send_sms_async(to, body, status_callback=callback)
        finally:
            await sender.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("case", FAILURES, ids=[c.id for c in FAILURES])
def test_async_send_classifies_failures_like_the_sync_one(case: FailureCase) -> None:
    # The same table as tests/test_senders.py, on the path the worker's batches take.
    fake = FakeProvider().start()
    try:
        if case.script is not None:
            fake.fail_next(*case.script)
        base = fake.url if case.base == "fake" else closed_port_url()
        with pytest.raises(SendError) as caught:
            _send_async(case.sender(base), case.to, "Su trámite 4821 3307 52")
    finally:
        fake.stop()
    error = caught.value
    assert (error.retryable, error.code, error.opted_out) == (
        case.retryable,
        case.code,
        case.opted_out,
    )
    assert fake.messages == []
    for secret in ("twilio-secret-token-do-not-log-7f3a", "atsk_secret-api-key-do-not-log-91c2"):
        assert secret not in f"{error} {error!r}"


@pytest.mark.parametrize("fast", [False, True], ids=["threaded-fake", "fast-fake"])
@pytest.mark.parametrize("provider", ["twilio", "africastalking"])
def test_async_send_puts_the_same_request_on_the_wire(provider: str, fast: bool) -> None:
    from tests.test_senders import AT_CITIZEN, CITIZEN, africastalking, twilio

    with FakeProvider(fast=fast) as fake:
        make = twilio if provider == "twilio" else africastalking
        to = CITIZEN if provider == "twilio" else AT_CITIZEN
        callback = "https://ventanilla.example/webhooks/twilio/status"
        sync = make(fake.url).send_sms(to, "Su trámite 4821", status_callback=callback)
        async_ = _send_async(make(fake.url), to, "Su trámite 4821", callback)
        first, second = fake.requests
    assert sync.status == async_.status == ("queued" if provider == "twilio" else "Success")
    assert first.form == second.form and first.path == second.path
    for header in ("Authorization", "apiKey", "Accept", "Content-Type"):
        assert first.header(header) == second.header(header)


@pytest.mark.parametrize("provider", ["twilio", "africastalking"])
def test_async_timeout_is_retryable(provider: str) -> None:
    from gateway.providers.africastalking.sender import AfricasTalkingSender
    from gateway.providers.twilio.sender import TwilioSender
    from tests.fakeprovider import AT_API_KEY, AT_USERNAME, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

    with FakeProvider() as fake:
        fake.fail_next(provider, 201, {}, delay=1.0)
        sender: SmsSender
        if provider == "twilio":
            sender = TwilioSender(
                TWILIO_ACCOUNT_SID,
                TWILIO_AUTH_TOKEN,
                TWILIO_FROM,
                api_base_url=fake.url,
                timeout=0.2,
            )
        else:
            sender = AfricasTalkingSender(
                AT_USERNAME, AT_API_KEY, "VENTANILLA", api_base_url=fake.url, timeout=0.2
            )
        with pytest.raises(SendError) as caught:
            _send_async(sender, "+254711000001", "hola")
    assert caught.value.retryable


# ---------------------------------------------------------------- settings and the rate


def test_rate_for_a_sender_prefers_its_own_entry_then_its_provider() -> None:
    settings = delivery_settings(
        load_config(
            env={
                "VENTANILLA__DELIVERY__MAX_PER_SECOND": "5",
                "VENTANILLA__DELIVERY__PER_SENDER": '{twilio = 10, "twilio:+5491155550000" = 1}',
            }
        )
    )
    assert settings.rate_for("twilio:+5491155550000") == 1
    assert settings.rate_for("twilio:+5491155559999") == 10
    assert settings.rate_for("africastalking:DesSocial") == 5
    assert delivery_settings(load_config(env={})) == DeliverySettings()  # shipped: no limit
    assert send_interval(0) == 0 and send_interval(10) > 0.1  # paced a little under the limit


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_PER_SECOND", "-1"),
        ("MAX_PER_SECOND", '"fast"'),
        ("CONCURRENCY", "0"),
        ("PER_SENDER", "{twilio = -2}"),
    ],
)
def test_bad_delivery_settings_name_the_key(key: str, value: str) -> None:
    config = load_config(env={f"VENTANILLA__DELIVERY__{key}": value})
    with pytest.raises(ConfigError, match=f"delivery.{key.lower()}"):
        delivery_settings(config)


def test_processes_share_one_schedule_per_sender(redis_url: str) -> None:
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    a, b = SendRate(first), SendRate(second)  # two worker processes' views
    started = time.monotonic()
    reserved, wait = a.reserve("twilio:+1", 5, 0.1, 30)
    assert reserved and wait == pytest.approx(0.0, abs=0.05)
    reserved, wait = b.reserve("twilio:+1", 5, 0.1, 30)
    assert reserved and wait == pytest.approx(0.5 - (time.monotonic() - started), abs=0.05)
    assert b.reserve("africastalking:X", 5, 0.1, 30)[1] == pytest.approx(0.0, abs=0.05)
    refused, wait = a.reserve("twilio:+1", 5, 0.1, 0.2)  # next slot is 1 s away: too far
    assert not refused and wait > 0.8
    # Nothing was reserved by the refusal: the next caller still gets the slot 1 s away.
    assert a.reserve("twilio:+1", 1, 0.1, 30)[1] == pytest.approx(1.0, abs=0.1)
    first.close()
    second.close()


class LateFirstWrite:
    """A sender whose first request goes out 80 ms late (as after a new TLS connection)."""

    name = "fake"
    sender_key = "fake:+1"

    def __init__(self) -> None:
        self.writes: list[float] = []

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        if not self.writes:
            await asyncio.sleep(0.08)
        loop = asyncio.get_running_loop()
        self.writes.append(loop.time())
        await http.on_request_written(None, None, None)  # what aiohttp's trace reports
        return SendResult(f"ref-{len(self.writes)}", "queued")


def test_a_late_send_does_not_let_the_next_ones_bunch_up() -> None:
    sender = LateFirstWrite()
    rows = [
        outbox.Claimed(n, "fake", f"+5491155{n:06d}", "hola", "survey", 1, False) for n in range(12)
    ]
    jobs._written.clear()
    outcomes = asyncio.run(jobs._send_all(cast(SmsSender, sender), rows, 0.0, 10.0, 64))
    assert all(isinstance(o, outbox.Sent) for o in outcomes)
    writes = sender.writes
    # Slots are 1/9.5 s apart; the late first one still has the 11th wait a whole second.
    assert writes[10] - writes[0] >= 1.0
    assert all(b - a >= 1.0 for a, b in zip(writes, writes[10:], strict=False))


# ---------------------------------------------------------------- the worker, in process


@pytest.fixture
def count_commits() -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(Engine, "commit", on_commit)
    yield commits
    event.remove(Engine, "commit", on_commit)


def test_a_burst_of_messages_takes_a_few_transactions_not_three_per_message(
    db_url: str,
    worker_env: redis.Redis,  # noqa: F811
    fake_provider: FakeProvider,
    count_commits: list[int],
) -> None:
    phones = ask_surveys(db_url, "twilio", 150)
    count_commits.clear()
    engine = make_engine(db_url)
    assert run_burst(engine, worker_env) == 150
    engine.dispose()
    # sweep, 2 dispatches, and per job of 100: look-up, claim, record.
    assert len(count_commits) <= 12
    assert sorted(m.to for m in fake_provider.messages) == phones
    rows = outbox_rows(db_url)
    refs = {m.to: m.ref for m in fake_provider.messages}
    assert all(r.status == "sent" and r.provider_ref == refs[r.to_address] for r in rows)


def test_each_sender_is_held_to_its_rate_and_no_message_is_dropped(
    db_url: str,
    worker_env: redis.Redis,  # noqa: F811
    fake_provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asserted on the limiter's own schedule (slots booked in Redis, on Redis's clock), not on
    when the fake saw the requests: under load a late send can land next to an on-time one
    (once 23 in one second for a limit of 20 on PostgreSQL), while the schedule never allows
    it. How closely real sends follow the schedule is measured in bench/, not asserted here."""
    for n in range(30):
        add_message(db_url, provider="twilio", to=f"+54911555{n:05d}")
        add_message(db_url, provider="africastalking", to=f"+54911666{n:05d}")
    booked: list[tuple[str, int, float, float, float]] = []  # sender, slots, start, end, gap
    reserve = SendRate.reserve

    def recorded(
        self: SendRate, sender_key: str, count: int, interval: float, max_wait: float
    ) -> tuple[bool, float]:
        reserved, wait = reserve(self, sender_key, count, interval, max_wait)
        if reserved:  # the schedule now ends after these `count` slots
            end = float(worker_env.get(keys_of(worker_env).send_rate + sender_key) or 0)
            booked.append((sender_key, count, end - interval * count, end, interval))
        return reserved, wait

    monkeypatch.setattr(SendRate, "reserve", recorded)
    config = load_config(env={"VENTANILLA__DELIVERY__PER_SENDER": "{twilio = 20}"})
    engine = make_engine(db_url)
    run_burst(engine, worker_env, config)
    engine.dispose()
    sent = Counter(m.provider for m in fake_provider.messages)
    assert sent == {"twilio": 30, "africastalking": 30}
    assert {r.status for r in outbox_rows(db_url)} == {"sent"}
    # Every Twilio send had its own slot, 1/(20 × 0.95) s apart, and no two bookings overlap:
    # no second of the schedule holds more than 20.
    assert {b[0] for b in booked} == {f"twilio:{TWILIO_FROM}"}  # AT has no limit: not paced
    assert sum(b[1] for b in booked) == 30
    assert {b[4] for b in booked} == {send_interval(20)}
    spans = sorted((start, end) for _, _, start, end, _ in booked)
    assert all(later[0] >= earlier[1] - 1e-6 for earlier, later in pairwise(spans))
    assert int(1.0 / send_interval(20)) + 1 <= 20


def test_a_sender_booked_far_ahead_leaves_messages_pending_for_later(
    db_url: str,
    worker_env: redis.Redis,  # noqa: F811
    fake_provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(3):
        add_message(db_url, provider="twilio", to=f"+54911555{n:05d}")
    config = load_config(env={"VENTANILLA__DELIVERY__MAX_PER_SECOND": "10"})
    # Other workers have booked the next 20 s of this number's slots.
    SendRate(worker_env).reserve(f"twilio:{TWILIO_FROM}", 200, send_interval(10), 60)
    monkeypatch.setattr(jobs, "MAX_WAIT", 2.0)
    engine = make_engine(db_url)
    run_burst(engine, worker_env, config)
    engine.dispose()
    assert fake_provider.messages == []
    rows = outbox_rows(db_url)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 0)}
    later = datetime.now(UTC) + timedelta(seconds=15)
    assert all(r.next_attempt_at.replace(tzinfo=UTC) > later for r in rows)


# ---------------------------------------------------------------- SIGKILL mid-batch


def process_env(db_url: str, redis_url: str, fake: FakeProvider, provider: str) -> dict[str, str]:
    """A worker process's whole environment: nothing inherited but the basics."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    env.update(
        PYTHONUNBUFFERED="1",
        VENTANILLA_DATABASE_URL=db_url,
        VENTANILLA_REDIS_URL=redis_url,
        VENTANILLA__REDIS__PREFIX=REDIS_PREFIX,
        VENTANILLA_SMS_PROVIDER=provider,
        VENTANILLA_PUBLIC_URL="https://ventanilla.example.test",
        VENTANILLA__SURVEY__QUIET_HOURS='""',
        # Paced, so the kill finds a chunk recorded, one in flight and one not yet claimed.
        VENTANILLA__DELIVERY__MAX_PER_SECOND="20",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_FROM_NUMBER=TWILIO_FROM,
        TWILIO_API_BASE_URL=fake.url,
        AT_USERNAME="ventanilla-test",
        AT_API_KEY=AT_KEY,
        AT_SENDER_ID="DesSocial",
        AT_API_BASE_URL=fake.url,
    )
    return env


def wait_for(condition: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


@pytest.mark.parametrize("provider", ["twilio", "africastalking"])
def test_worker_killed_mid_batch_loses_no_survey_and_sends_none_twice(
    provider: str,
    db_url: str,
    redis_url: str,
    fake_provider: FakeProvider,
    tmp_path: Path,
) -> None:
    """Twilio is asked before any resend: every survey arrives exactly once. Africa's Talking
    cannot be asked: the unknown ones are resent and marked as possible duplicates."""
    phones = ask_surveys(db_url, provider, 60)
    env = process_env(db_url, redis_url, fake_provider, provider)
    fake_provider.answer_delay = 0.5  # a slow provider: the worker dies waiting for answers
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
        wait_for(lambda: len(fake_provider.messages) >= 25, 60, "25 messages sent", log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    fake_provider.answer_delay = 0.0

    # What the kill left: recorded sends, sends the provider accepted that were never
    # recorded, and messages not sent at all.
    at_kill = {r.to_address: r for r in outbox_rows(db_url)}
    received = {m.to for m in fake_provider.messages}
    unrecorded = {p for p in received if at_kill[p].status == "sending"}
    assert {r.status for r in at_kill.values() if r.to_address not in received} <= {
        "sending",
        "queued",
    }
    assert unrecorded, "the kill must land while accepted messages are unrecorded"
    assert len(received) < len(phones), "the kill must land before the batch is done"

    # Time passes: the dead worker's lease and its job's hold on the queued rows run out.
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
    engine.dispose()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    rows = {r.to_address: r for r in outbox_rows(db_url)}
    got = Counter(m.to for m in fake_provider.messages)
    assert set(rows) == set(phones) and {r.kind for r in rows.values()} == {"survey"}
    assert {r.status for r in rows.values()} == {"sent"}  # none lost
    assert set(got) == set(phones)  # every citizen got the question
    if provider == "twilio":
        assert set(got.values()) == {1}  # none twice
        refs = {m.to: m.ref for m in fake_provider.messages}
        assert all(rows[p].provider_ref == refs[p] for p in phones)
        reconciled = {p for p, r in rows.items() if r.provider_status == "reconciled"}
        assert reconciled == unrecorded  # found at Twilio, not resent
    else:
        twice = {p for p, n in got.items() if n == 2}
        assert twice == unrecorded and max(got.values()) == 2  # resent: AT cannot be asked
        flagged = {p for p, r in rows.items() if r.error_code == "possible_duplicate"}
        assert twice <= flagged
        assert flagged == {p for p, r in at_kill.items() if r.status == "sending"}
        assert all("may duplicate" in (rows[p].error or "") for p in flagged)
