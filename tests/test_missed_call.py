"""Missed-call call-back and the calls the app places: the trigger number rejects the call,
the worker calls the citizen back through rq on the real Redis against the fake provider, and
the answered call runs the same menu. Both databases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore import calls
from casestore.calls import CallStatus
from casestore.config import Config
from casestore.db import make_engine
from casestore.models import Contact, OutboundCall
from gateway.app import create_app
from gateway.providers.africastalking.voice import REJECT as AT_REJECT
from gateway.providers.twilio.voice import REJECT as TWILIO_REJECT
from gateway.routes.voice_africastalking import PATH
from gateway.settings import load_settings
from gateway.workers import jobs, worker
from gateway.workers.worker import run_burst
from tests.conftest import AT_KEY, TWILIO_SID, TWILIO_TOKEN, app_env, set_worker_env
from tests.fakeprovider import FakeProvider
from tests.helpers import AT_TOKEN, PUBLIC_URL, Db, counts, sign

CITIZEN = "+5491155550051"
MISSED_NUMBER = "+5491155559998"  # the shipped config's missed-call number
AT_NUMBER = "+5491155559999"
TWILIO_NUMBER = "+5491155550000"
_ids = iter(range(1, 1_000_000))


# ---------------------------------------------------------------- fixtures and builders
@pytest.fixture
def worker_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str, fake_provider: FakeProvider
) -> Iterator[redis.Redis]:
    """What a worker process would have, pointed at the fake provider."""
    set_worker_env(
        monkeypatch, db_url, fake_provider.url, at_number=AT_NUMBER, twilio_number=TWILIO_NUMBER
    )
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
    jobs.dispose_engines()


def app_with(db_url: str, redis_url: str, config: Config, voice_provider: str) -> TestClient:
    env = app_env(
        db_url, redis_url, VENTANILLA_VOICE_PROVIDER=voice_provider, AT_VOICE_NUMBER=AT_NUMBER
    )
    return TestClient(create_app(load_settings(env), config), base_url=PUBLIC_URL)


def burst(db_url: str, connection: redis.Redis) -> int:
    engine = make_engine(db_url)
    try:
        return run_burst(engine, connection)
    finally:
        engine.dispose()


def outbound_calls(db_url: str) -> list[OutboundCall]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = list(session.scalars(select(OutboundCall).order_by(OutboundCall.id)))
    engine.dispose()
    return rows


def add_call(
    db_url: str,
    provider: str,
    *,
    to: str = CITIZEN,
    kind: str = "missed_call",
    opted_out: bool = False,
) -> int:
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        contact_id = conn.execute(
            insert(Contact)
            .values(
                phone=to,
                preferred_channel="voice",
                created_at=now,
                reply_count=0,
                lookup_count=0,
                opted_out_at=now if opted_out else None,
            )
            .returning(Contact.id)
        ).scalar_one()
        call_id = conn.execute(
            insert(OutboundCall)
            .values(
                contact_id=contact_id,
                kind=kind,
                provider=provider,
                to_address=to,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(OutboundCall.id)
        ).scalar_one()
    engine.dispose()
    return int(call_id)


def make_due(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            update(OutboundCall)
            .where(OutboundCall.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()


def at_call(
    client: TestClient,
    *,
    session_id: str | None = None,
    caller: str = CITIZEN,
    destination: str = MISSED_NUMBER,
    direction: str = "Inbound",
    active: str = "1",
    url: str | None = None,
    **extra: str,
) -> str:
    form = {
        "isActive": active,
        "sessionId": session_id or f"ATVId_missed{next(_ids):06d}",
        "direction": direction,
        "callerNumber": caller,
        "destinationNumber": destination,
        **extra,
    }
    response = client.post(url or f"{PATH}?token={AT_TOKEN}", data=form)
    assert response.status_code == 200, response.text
    return response.text


def twilio_missed(client: TestClient, sender: str = CITIZEN, sid: str | None = None) -> str:
    path = "/webhooks/twilio/missed-call"
    form = {
        "AccountSid": TWILIO_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid or f"CA{next(_ids):032x}",
        "CallStatus": "ringing",
        "Called": MISSED_NUMBER,
        "Caller": sender,
        "Direction": "inbound",
        "From": sender,
        "FromCity": "",
        "FromCountry": "AR",
        "To": MISSED_NUMBER,
        "ToCity": "",
        "ToCountry": "AR",
    }
    response = client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})
    assert response.status_code == 200, response.text
    return response.text


# ---------------------------------------------------------------- Africa's Talking trigger
def test_at_missed_call_is_rejected_and_called_back_once(
    client: TestClient, db_url: str, worker_env: redis.Redis
) -> None:
    assert at_call(client, session_id="ATVId_missed_a") == AT_REJECT
    assert at_call(client, session_id="ATVId_missed_a") == AT_REJECT  # redelivered
    # The rejected call's own last request changes nothing.
    assert at_call(client, session_id="ATVId_missed_a", active="0").endswith("<Response/>")
    (row,) = outbound_calls(db_url)
    assert (row.kind, row.provider, row.to_address, row.status) == (
        "missed_call",
        "outbox",
        CITIZEN,
        "pending",
    )
    burst(db_url, worker_env)
    (row,) = outbound_calls(db_url)
    assert row.status == "recorded" and (row.provider_ref or "").startswith("outbox-")

    # The simulator's way in: list what is waiting for this phone, then pick it up.
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        (waiting,) = calls.recorded_calls(session, CITIZEN)
        answered = calls.answer_recorded_call(session, waiting.id, datetime.now(UTC))
        assert answered is not None and answered.to_address == CITIZEN
        assert calls.recorded_calls(session, CITIZEN) == []
    engine.dispose()


def test_ringing_again_before_the_call_back_adds_nothing(client: TestClient, db_url: str) -> None:
    for _ in range(3):
        assert at_call(client) == AT_REJECT
    assert len(outbound_calls(db_url)) == 1


def test_call_backs_are_capped_per_number_per_day(
    client: TestClient, db_url: str, worker_env: redis.Redis, config: Config
) -> None:
    cap = config.raw["ivr"]["missed_call_callbacks_per_day"]
    assert cap == 3
    for _ in range(cap + 2):
        assert at_call(client) == AT_REJECT  # still rejected: the caller pays nothing
        burst(db_url, worker_env)
    rows = outbound_calls(db_url)
    assert len(rows) == cap
    assert {r.status for r in rows} == {"recorded"}
    assert at_call(client, caller="+5491155550052") == AT_REJECT  # another number is not capped
    assert len(outbound_calls(db_url)) == cap + 1


@pytest.mark.parametrize("caller", ["", "anonymous"])
def test_withheld_caller_is_rejected_without_a_call_back(
    client: TestClient, db_url: str, caller: str
) -> None:
    before = counts(db_url)
    assert at_call(client, caller=caller) == AT_REJECT
    assert counts(db_url) == before


def test_calls_to_other_numbers_are_not_missed_calls(client: TestClient, db_url: str) -> None:
    answer = at_call(client, destination=AT_NUMBER)
    assert ET.fromstring(answer).find("GetDigits") is not None
    assert outbound_calls(db_url) == []


# ---------------------------------------------------------------- Twilio trigger
def test_twilio_missed_call_rejects_busy_and_queues_one_call_back(
    client: TestClient, db_url: str, worker_env: redis.Redis
) -> None:
    assert twilio_missed(client, sid="CA" + "7" * 32) == TWILIO_REJECT
    burst(db_url, worker_env)  # the call-back leaves the open states
    assert twilio_missed(client, sid="CA" + "7" * 32) == TWILIO_REJECT  # Twilio retried
    (row,) = outbound_calls(db_url)
    assert (row.kind, row.to_address, row.status) == ("missed_call", CITIZEN, "recorded")


def test_twilio_missed_call_needs_a_valid_signature(client: TestClient, db_url: str) -> None:
    form = {"CallSid": "CA" + "1" * 32, "From": CITIZEN, "To": MISSED_NUMBER}
    response = client.post(
        "/webhooks/twilio/missed-call", data=form, headers={"X-Twilio-Signature": "bad"}
    )
    assert response.status_code == 403
    assert outbound_calls(db_url) == []


@pytest.mark.parametrize("sender", ["+266696687", "anonymous"])
def test_twilio_withheld_caller_is_rejected_without_a_call_back(
    client: TestClient, db_url: str, sender: str
) -> None:
    assert twilio_missed(client, sender=sender) == TWILIO_REJECT
    assert outbound_calls(db_url) == []


def test_twilio_missed_call_without_callsid_is_400(client: TestClient) -> None:
    path = "/webhooks/twilio/missed-call"
    form = {"From": CITIZEN, "To": MISSED_NUMBER}
    response = client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})
    assert (response.status_code, response.text) == (400, "missing field: CallSid")


# ---------------------------------------------------------------- the worker places calls
def test_worker_places_a_twilio_call_that_fetches_the_voice_menu(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_call(db_url, "twilio")
    assert burst(db_url, worker_env) == 1
    (placed,) = fake_provider.calls
    assert (placed.provider, placed.to, placed.from_) == ("twilio", CITIZEN, TWILIO_NUMBER)
    assert placed.form["Url"] == f"{PUBLIC_URL}/webhooks/twilio/voice"
    assert placed.form["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/call-status"
    (row,) = outbound_calls(db_url)
    assert (row.status, row.provider_ref, row.attempts) == ("placed", placed.ref, 1)
    assert burst(db_url, worker_env) == 0
    assert len(fake_provider.calls) == 1  # sent once


def test_worker_places_an_at_call_and_keeps_its_session_id(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_call(db_url, "africastalking")
    burst(db_url, worker_env)
    (placed,) = fake_provider.calls
    assert (placed.provider, placed.to, placed.from_) == ("africastalking", CITIZEN, AT_NUMBER)
    request = next(r for r in fake_provider.requests if r.path == "/call")
    assert request.header("apiKey") == AT_KEY and request.form["username"] == "ventanilla-test"
    (row,) = outbound_calls(db_url)
    assert (row.status, row.provider_ref) == ("placed", placed.ref)


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("twilio", {"code": 20500, "message": "Internal Server Error", "status": 500}),
        ("africastalking", "Service Unavailable"),
    ],
)
def test_server_errors_are_retried_with_backoff(
    db_url: str,
    worker_env: redis.Redis,
    fake_provider: FakeProvider,
    provider: str,
    body: dict[str, object] | str,
) -> None:
    add_call(db_url, provider)
    fake_provider.fail_next(provider, 503 if isinstance(body, str) else 500, body)
    burst(db_url, worker_env)
    (row,) = outbound_calls(db_url)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > datetime.now(UTC)
    burst(db_url, worker_env)  # not due yet
    assert fake_provider.calls == []
    make_due(db_url)
    burst(db_url, worker_env)
    assert len(fake_provider.calls) == 1
    assert outbound_calls(db_url)[0].status == "placed"


@pytest.mark.parametrize(
    ("provider", "status", "body", "reason"),
    [
        (
            "twilio",
            400,
            {"code": 21217, "message": "Phone number does not appear to be valid", "status": 400},
            "21217",
        ),
        ("africastalking", 401, "The supplied authentication is invalid", "HTTP 401"),
        (
            "africastalking",
            200,
            {"entries": [{"phoneNumber": CITIZEN, "status": "InvalidPhoneNumber"}]},
            "InvalidPhoneNumber",
        ),
    ],
)
def test_client_errors_fail_without_retry(
    db_url: str,
    worker_env: redis.Redis,
    fake_provider: FakeProvider,
    provider: str,
    status: int,
    body: dict[str, object] | str,
    reason: str,
) -> None:
    add_call(db_url, provider)
    fake_provider.fail_next(provider, status, body)
    burst(db_url, worker_env)
    (row,) = outbound_calls(db_url)
    assert row.status == "failed" and reason in (row.error or "")
    assert AT_KEY not in (row.error or "") and TWILIO_TOKEN not in (row.error or "")
    make_due(db_url)
    burst(db_url, worker_env)
    assert fake_provider.calls == []


def test_opt_out_cancels_calls_we_start_but_not_a_requested_call_back(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_call(db_url, "twilio", kind="survey", opted_out=True)
    add_call(db_url, "twilio", to="+5491155550053", kind="missed_call", opted_out=True)
    burst(db_url, worker_env)
    assert {r.kind: r.status for r in outbound_calls(db_url)} == {
        "survey": "cancelled",
        "missed_call": "placed",
    }
    assert [c.to for c in fake_provider.calls] == ["+5491155550053"]


def test_a_worker_that_dies_mid_call_is_swept_and_the_call_placed_again(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    call_id = add_call(db_url, "africastalking")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        assert calls.claim(conn, call_id, datetime.now(UTC)) is not None  # then it "dies"
        # Its lease ran out (the sweeper runs later); Africa's Talking has no call list to ask.
        conn.execute(
            update(OutboundCall)
            .where(OutboundCall.id == call_id)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert worker.sweep(engine) == (0, 1)
    run_burst(engine, worker_env)
    engine.dispose()
    (row,) = outbound_calls(db_url)
    assert (row.status, row.attempts) == ("placed", 2)
    assert "may ring twice" not in (row.error or "")  # cleared once placed
    assert len(fake_provider.calls) == 1


# ---------------------------------------------------------------- the call comes back
def test_answered_at_call_back_runs_the_menu_for_the_citizen(
    db_url: str,
    redis_url: str,
    config: Config,
    worker_env: redis.Redis,
    fake_provider: FakeProvider,
) -> None:
    with app_with(db_url, redis_url, config, "africastalking") as client:
        assert at_call(client) == AT_REJECT
        burst(db_url, worker_env)
        (placed,) = fake_provider.calls
        assert placed.to == CITIZEN
        # AT brings the answered call to the number's voice callback; on some routes the
        # caller field is our own number, so the citizen comes from the call we placed.
        menu = ET.fromstring(
            at_call(
                client,
                session_id=placed.ref,
                direction="Outbound",
                caller=AT_NUMBER,
                destination=CITIZEN,
            )
        )
        assert "Elija una opcion." in " ".join(s.text or "" for s in menu.iter("Say"))
        assert outbound_calls(db_url)[0].status == "answered"
        step = menu.find("GetDigits").attrib["callbackUrl"]  # type: ignore[union-attr]
        categories = ET.fromstring(
            at_call(
                client,
                session_id=placed.ref,
                direction="Outbound",
                caller=AT_NUMBER,
                destination=CITIZEN,
                url=step,
                dtmfDigits="1",
            )
        )
        step = categories.find("GetDigits").attrib["callbackUrl"]  # type: ignore[union-attr]
        describe = ET.fromstring(
            at_call(
                client,
                session_id=placed.ref,
                direction="Outbound",
                caller=AT_NUMBER,
                destination=CITIZEN,
                url=step,
                dtmfDigits="4",
            )
        )
        step = describe.find("Record").attrib["callbackUrl"]  # type: ignore[union-attr]
        at_call(
            client,
            session_id=placed.ref,
            direction="Outbound",
            caller=AT_NUMBER,
            destination=CITIZEN,
            url=step,
            recordingUrl="https://voice-recordings.example.test/callback.mp3",
        )
        at_call(client, session_id=placed.ref, direction="Outbound", active="0")
    with Db(db_url) as db:
        (case,) = db.cases()
        (contact,) = db.contacts()
        assert case.contact_id == contact.id and contact.phone == CITIZEN
        assert [m.to_address for m in db.outbox()] == [CITIZEN]
    assert outbound_calls(db_url)[0].status == "completed"


def test_at_call_back_never_answered_is_marked_unanswered(
    db_url: str,
    redis_url: str,
    config: Config,
    worker_env: redis.Redis,
    fake_provider: FakeProvider,
) -> None:
    with app_with(db_url, redis_url, config, "africastalking") as client:
        at_call(client)
        burst(db_url, worker_env)
        (placed,) = fake_provider.calls
        final = at_call(
            client,
            session_id=placed.ref,
            direction="Outbound",
            active="0",
            callSessionState="NotAnswered",
            hangupCause="NO_ANSWER",
        )
        assert final.endswith("<Response/>")
    (row,) = outbound_calls(db_url)
    assert (row.status, row.error) == ("unanswered", "NO_ANSWER")


def twilio_status(client: TestClient, sid: str, status: str) -> int:
    path = "/webhooks/twilio/call-status"
    form = {"AccountSid": TWILIO_SID, "CallSid": sid, "CallStatus": status, "Direction": ""}
    response = client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})
    return response.status_code


def test_twilio_call_status_reports_move_the_call_forward_only(
    client: TestClient, db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    add_call(db_url, "twilio")
    burst(db_url, worker_env)
    (placed,) = fake_provider.calls
    assert twilio_status(client, placed.ref, "in-progress") == 200
    assert outbound_calls(db_url)[0].status == CallStatus.ANSWERED.value
    assert twilio_status(client, placed.ref, "completed") == 200
    assert twilio_status(client, placed.ref, "ringing") == 200  # late: ignored
    assert outbound_calls(db_url)[0].status == CallStatus.COMPLETED.value
    assert twilio_status(client, "CA" + "0" * 32, "completed") == 404
    assert twilio_status(client, placed.ref, "exploded") == 400


def test_the_lost_job_sweep_never_redials_a_call_without_asking_the_provider(
    db_url: str, worker_env: redis.Redis, fake_provider: FakeProvider
) -> None:
    """A call whose worker died mid-dial is left to the sweeper's reconcile step (which asks
    Twilio first); the lost-job sweep used to put any such call beyond its batch of 200 back to
    pending, to be dialled again unasked."""
    call_id = add_call(db_url, "twilio")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        assert calls.claim(conn, call_id, datetime.now(UTC)) is not None  # then it "dies"
    with engine.begin() as conn:
        assert calls.sweep(conn, datetime.now(UTC) + calls.LEASE + timedelta(seconds=1)) == 0
    engine.dispose()
    (row,) = outbound_calls(db_url)
    assert row.status == CallStatus.CALLING.value  # still the reconcile step's to settle
    assert fake_provider.calls == []
