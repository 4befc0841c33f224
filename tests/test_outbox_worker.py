"""The outbox through rq on the real Redis to the fake provider: sent once, retried, never lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import SimpleWorker
from sqlalchemy import insert, select, update
from starlette.testclient import TestClient

from casestore import outbox
from casestore.db import make_engine
from casestore.models import Contact, MessageStatus, OutboundMessage
from gateway.rediskeys import RedisKeys, delete_all
from gateway.workers import jobs
from gateway.workers.jobs import configure_delivery
from gateway.workers.sendrate import delivery_settings
from gateway.workers.worker import dispatch, make_queue, run_burst, sweep
from tests.conftest import AT_KEY, TWILIO_SID, TWILIO_TOKEN
from tests.fakeprovider import FakeProvider
from tests.helpers import Db, at_form, post_at
from tests.settings import REDIS_PREFIX


@pytest.fixture
def worker_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str, fake_provider: FakeProvider
) -> Iterator[redis.Redis]:
    """The environment a worker process would have, pointed at the fake provider."""
    for key, value in {
        "VENTANILLA_DATABASE_URL": db_url,
        "AT_USERNAME": "ventanilla-test",
        "AT_API_KEY": AT_KEY,
        "AT_SENDER_ID": "DesSocial",
        "AT_API_BASE_URL": fake_provider.url,
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+5491155550000",
        "TWILIO_API_BASE_URL": fake_provider.url,
        "VENTANILLA_PUBLIC_URL": "https://ventanilla.example.test",
    }.items():
        monkeypatch.setenv(key, value)
    jobs.dispose_engines()
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
    jobs.dispose_engines()


def burst(db_url: str, connection: redis.Redis) -> int:
    engine = make_engine(db_url)
    try:
        return run_burst(engine, connection)
    finally:
        engine.dispose()


def add_message(
    db_url: str, *, provider: str, kind: str = "notification", to: str = "+5491155550001"
) -> int:
    """An outbox row as a notification would write it, for a contact of that phone."""
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        contact_id = conn.execute(select(Contact.id).where(Contact.phone == to)).scalar()
        if contact_id is None:
            contact_id = conn.execute(
                insert(Contact)
                .values(
                    phone=to, preferred_channel="sms", created_at=now, reply_count=0, lookup_count=0
                )
                .returning(Contact.id)
            ).scalar_one()
        message_id = conn.execute(
            insert(OutboundMessage)
            .values(
                contact_id=contact_id,
                kind=kind,
                channel="sms",
                provider=provider,
                to_address=to,
                body="Su pedido cambio de estado.",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(OutboundMessage.id)
        ).scalar_one()
    engine.dispose()
    return int(message_id)


def make_due(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()


def test_at_reply_is_sent_once_by_the_worker(
    client: TestClient, db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    post_at(client, at_form("Necesito turno para el DNI"))
    assert burst(db_url, worker_env) == 1
    (sent,) = fake_provider.messages
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert (message.status, message.provider_ref) == ("sent", sent.ref)
        assert sent.to == "+5491155550001" and sent.body == message.body
        (_, reply) = db.interactions()
        assert reply.provider_ref == sent.ref
    assert burst(db_url, worker_env) == 0
    assert len(fake_provider.messages) == 1


def test_server_error_is_retried_with_backoff(
    client: TestClient, db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    post_at(client, at_form("Consulta por pension"))
    fake_provider.fail_next("africastalking", 500, "Internal Server Error")
    burst(db_url, worker_env)
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert message.status == "pending" and message.attempts == 1
        assert message.next_attempt_at > datetime.now(UTC)
    burst(db_url, worker_env)  # not due yet: nothing happens
    assert fake_provider.messages == []
    make_due(db_url)
    burst(db_url, worker_env)
    assert len(fake_provider.messages) == 1
    with Db(db_url) as db:
        assert db.outbox()[0].status == "sent"


def test_invalid_number_fails_with_providers_reason(
    client: TestClient, db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    post_at(client, at_form("Consulta"))
    fake_provider.fail_next(
        "africastalking",
        201,
        {
            "SMSMessageData": {
                "Message": "Sent to 0/1 Total Cost: 0",
                "Recipients": [
                    {
                        "statusCode": 403,
                        "number": "+5491155550001",
                        "status": "InvalidPhoneNumber",
                        "cost": "0",
                        "messageId": "None",
                    }
                ],
            }
        },
    )
    burst(db_url, worker_env)
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert message.status == "failed"
        assert "InvalidPhoneNumber" in (message.error or "")


def test_twilio_21610_records_opt_out_and_never_retries(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_message(db_url, provider="twilio")
    fake_provider.fail_next(
        "twilio",
        400,
        {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400},
    )
    burst(db_url, worker_env)
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert (message.status, message.error_code) == ("failed", "21610")
        assert db.contacts()[0].provider_opted_out_at is not None
    make_due(db_url)
    burst(db_url, worker_env)
    assert fake_provider.messages == []


def test_twilio_send_passes_status_callback(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_message(db_url, provider="twilio")
    burst(db_url, worker_env)
    (sent,) = fake_provider.messages
    assert sent.status_callback == "https://ventanilla.example.test/webhooks/twilio/status"


def test_opted_out_citizen_gets_replies_but_no_notifications(
    client: TestClient, db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    post_at(client, at_form("BAJA"))
    add_message(db_url, provider="africastalking", kind="notification")
    burst(db_url, worker_env)
    with Db(db_url) as db:
        statuses = {m.kind: m.status for m in db.outbox()}
    assert statuses == {"reply": "sent", "notification": "cancelled"}
    assert [m.body for m in fake_provider.messages][0].startswith("DesarrolloSocial: listo")


def test_outbox_provider_records_without_sending(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_message(db_url, provider="outbox")
    burst(db_url, worker_env)
    with Db(db_url) as db:
        assert db.outbox()[0].status == "recorded"
    assert fake_provider.requests == []


def test_losing_redis_loses_nothing_and_sends_nothing_twice(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    ids = [
        add_message(db_url, provider="africastalking", to=f"+54911555500{i:02d}") for i in range(5)
    ]
    engine = make_engine(db_url)
    queue = make_queue(worker_env)
    assert dispatch(engine, queue) == 5
    delete_all(worker_env, RedisKeys(REDIS_PREFIX))  # Redis lost with the jobs in it
    assert dispatch(engine, queue) == 0  # rows are queued, not pending: not picked twice
    with engine.begin() as conn:  # later, the sweeper finds them queued for too long
        lost = outbox.sweep(conn, datetime.now(UTC) + timedelta(minutes=5))
    assert lost == 5
    assert dispatch(engine, queue) == 5
    dispatch_again = [queue.enqueue(jobs.send_messages, ids)]  # a duplicate job for every row
    assert dispatch_again
    run_burst(engine, worker_env)
    engine.dispose()
    assert sorted(m.to for m in fake_provider.messages) == [
        f"+54911555500{i:02d}" for i in range(5)
    ]
    with Db(db_url) as db:
        assert {m.status for m in db.outbox()} == {"sent"}


def _expire_leases(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "sending")
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()


def test_dead_worker_lease_expires_and_row_is_resent(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    message_id = add_message(db_url, provider="africastalking")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        assert outbox.claim(conn, message_id, datetime.now(UTC)) is not None  # then it "dies"
    assert sweep(engine) == (0, 0)  # lease still running: left alone
    _expire_leases(db_url)
    assert sweep(engine) == (0, 1)  # AT cannot be asked: back to pending, noted
    run_burst(engine, worker_env)
    engine.dispose()
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert message.status == MessageStatus.SENT.value
        assert message.attempts == 2
    assert len(fake_provider.messages) == 1


def test_interrupted_twilio_send_is_reconciled_not_resent(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    """The worker died after Twilio accepted the message and before our commit."""
    message_id = add_message(db_url, provider="twilio")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        claimed = outbox.claim(conn, message_id, datetime.now(UTC))
    assert claimed is not None
    accepted = jobs.sender_for("twilio").send_sms(claimed.to_address, claimed.body)
    _expire_leases(db_url)  # ... and the worker never recorded it
    assert sweep(engine) == (0, 1)
    run_burst(engine, worker_env)
    engine.dispose()
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert (message.status, message.provider_ref) == ("sent", accepted.provider_ref)
    assert len(fake_provider.messages) == 1  # never sent twice


def test_interrupted_twilio_send_not_found_is_resent_once(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    message_id = add_message(db_url, provider="twilio")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        assert outbox.claim(conn, message_id, datetime.now(UTC)) is not None
    _expire_leases(db_url)  # died before Twilio got it
    sweep(engine)
    run_burst(engine, worker_env)
    engine.dispose()
    assert len(fake_provider.messages) == 1
    with Db(db_url) as db:
        assert db.outbox()[0].status == "sent"


# rq stores a job's function by dotted name: jobs queued before the gateway moved into
# subpackages name `gateway.jobs.*`, and an upgraded worker must still run them.
def test_a_job_queued_under_the_old_name_still_sends(
    client: TestClient,
    db_url: str,
    worker_env: redis.Redis,
    fake_provider: FakeProvider,
) -> None:
    post_at(client, at_form("Necesito turno para el DNI"))
    engine = make_engine(db_url)
    try:
        configure_delivery(delivery_settings(None), worker_env)
        queue = make_queue(worker_env)
        assert dispatch(engine, queue) == 1
        (job,) = queue.get_jobs()
        assert job.func_name == "gateway.workers.jobs.send_messages"  # what new jobs name
        ids = job.args[0]
        job.delete()
        # What a worker from before the move left in Redis.
        queue.enqueue("gateway.jobs.send_messages", ids)
        SimpleWorker([queue], connection=worker_env).work(burst=True)
    finally:
        engine.dispose()
    (sent,) = fake_provider.messages
    with Db(db_url) as db:
        (message,) = db.outbox()
        assert (message.status, message.provider_ref) == ("sent", sent.ref)
