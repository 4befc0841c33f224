"""Live calls: the waiting-caller registry, the queue and its event stream, take call, the
operator's leg (Twilio TwiML, Africa's Talking Dequeue), a case opened during the call,
transfer, wrap-up and the simulator's two phones. Twilio requests are signed as Twilio signs
them; the Calls API goes to a fake provider on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config, load_config
from casestore.db import make_engine
from casestore.models import (
    AuditEvent,
    CallbackRequest,
    Case,
    CaseEvent,
    Interaction,
    Operator,
    OutboundCall,
)
from casestore.operators import create_operator, start_console_session
from gateway.app import create_app
from gateway.console.auth import COOKIE
from gateway.live import queue as livequeue
from gateway.live.queue import Waiting
from gateway.settings import load_settings
from tests.conftest import AT_KEY, TWILIO_SID, TWILIO_TOKEN, app_env
from tests.fakeprovider import FakeProvider, _json_reply, _Reply
from tests.helpers import AT_TOKEN, PUBLIC_URL, Db, post_twilio, sign, twilio_form
from tests.providers.harness import load_table

VOICE_TABLE = load_table(
    Path(__file__).parents[1] / "providers" / "twilio" / "testdata" / "voice.json"
)
CITIZEN = "+5491155550601"
OPERATOR_PHONE = "+5491155550699"
AT_NUMBER = "+5491155559999"
WAIT = "/webhooks/twilio/voice/wait"
DEPARTMENTS = tuple(load_config(env={}).departments)
_sids = itertools.count(1)


def call_sid() -> str:
    return f"CA{next(_sids):032x}"


# ---------------------------------------------------------------- the fake provider


_CALL_UPDATE = re.compile(r"^/2010-04-01/Accounts/[^/]+/Calls/(?P<sid>[A-Za-z0-9]+)\.json$")


class FakeWithCallUpdates(FakeProvider):
    """The shared fake, plus Twilio's call update (POST Calls/{Sid}.json): what a live call
    was told to do next."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.updates: list[tuple[str, dict[str, str]]] = []

    def _twilio(
        self, method: str, path: str, form: dict[str, str], query: dict[str, str]
    ) -> _Reply:
        match = _CALL_UPDATE.match(path)
        if match and method == "POST":
            self.updates.append((match["sid"], form))
            return _json_reply(200, {"sid": match["sid"], "status": "in-progress"})
        return super()._twilio(method, path, form, query)


@pytest.fixture
def fake() -> Iterator[FakeWithCallUpdates]:
    with FakeWithCallUpdates(
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        at_username="ventanilla-test",
        at_api_key=AT_KEY,
    ) as provider:
        yield provider


def _client(db_url: str, redis_url: str, config: Config, **env: str) -> Iterator[TestClient]:
    app = create_app(load_settings(app_env(db_url, redis_url, **env)), config)
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


@pytest.fixture
def twilio_client(
    db_url: str, redis_url: str, config: Config, fake: FakeWithCallUpdates
) -> Iterator[TestClient]:
    """The app with VENTANILLA_VOICE_PROVIDER=twilio, its REST calls going to the fake."""
    yield from _client(
        db_url, redis_url, config, VENTANILLA_VOICE_PROVIDER="twilio", TWILIO_API_BASE_URL=fake.url
    )


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# ---------------------------------------------------------------- builders


def sign_in(
    client: TestClient,
    db_url: str,
    name: str,
    departments: tuple[str, ...] = ("ALIM",),
    *,
    phone: str | None = OPERATOR_PHONE,
    availability: str = "available",
    role: str = "operator",
) -> str:
    """Sign `client` in as this operator (created if new, available, with a phone); returns the
    CSRF token. The log-in form itself is tested in test_auth: argon2 costs ~0.3 s a login."""
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        found = session.scalar(select(Operator).where(Operator.username == name))
        if found is None:
            found = create_operator(session, name, role, departments, DEPARTMENTS, phone=phone)
            found.availability = availability
            session.flush()
        token, row = start_console_session(session, found)
        csrf = row.csrf_token
    engine.dispose()
    client.cookies.set(COOKIE, token)
    return csrf


def voice_form(sid: str, caller: str = CITIZEN, **extra: str) -> dict[str, str]:
    form = VOICE_TABLE.case("mobile caller, Argentina").form()
    form.update(CallSid=sid, From=caller, Caller=caller, CallStatus="in-progress")
    form.update(extra)
    return form


def post_signed(client: TestClient, path: str, form: dict[str, str]) -> Any:
    return client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})


def twilio_waits(
    client: TestClient,
    sid: str,
    department: str = "ALIM",
    *,
    urgent: bool = False,
    caller: str = CITIZEN,
    queue_time: int = 30,
) -> Any:
    """Twilio asks the Enqueue waitUrl for a caller in `department`'s queue."""
    path = f"{WAIT}?q={department}&u={'1' if urgent else '0'}"
    extra = {
        "QueueSid": "QU8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
        "QueuePosition": "1",
        "QueueTime": str(queue_time),
        "AvgQueueTime": "60",
        "CurrentQueueSize": "1",
    }
    response = post_signed(client, path, voice_form(sid, caller, **extra))
    assert response.status_code == 200, response.text
    return response


def open_case_by_sms(client: TestClient, phone: str = CITIZEN) -> str:
    reply = post_twilio(client, twilio_form("No me llega la tarjeta alimentar", sender=phone)).text
    found = re.search(r"(\d{4} \d{4} \d{2})", reply)
    assert found, reply
    return found.group(1).replace(" ", "")


def events(client: TestClient, query: str = "") -> list[tuple[str, str]]:
    """(event, data) pairs of a short event stream."""
    response = client.get(f"/console/queue/events?seconds=0.3{query}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    found = []
    for block in response.text.split("\n\n"):
        lines = block.splitlines()
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        if name:
            found.append((name, "\n".join(line[6:] for line in lines if line.startswith("data: "))))
    return found


def take(client: TestClient, csrf: str) -> Any:
    return client.post("/console/queue/take", data={"csrf_token": csrf}, follow_redirects=False)


def availability(db_url: str, name: str) -> str:
    engine = make_engine(db_url)
    with Session(engine) as session:
        value = session.scalar(select(Operator.availability).where(Operator.username == name))
    engine.dispose()
    return str(value)


def rows(db_url: str, model: Any) -> list[Any]:
    engine = make_engine(db_url)
    with Session(engine) as session:
        found = list(session.scalars(select(model).order_by(model.id)))
    engine.dispose()
    return found


# ---------------------------------------------------------------- the registry


def _entry(
    sid: str,
    since: float,
    *,
    urgent: bool = False,
    provider: str = "twilio",
    department: str = "ALIM",
) -> Waiting:
    return Waiting(sid, department, provider, CITIZEN, urgent, "es", since, time.time())


def test_registry_orders_urgent_first_and_keeps_the_join_time(redis_client: redis.Redis) -> None:
    now = time.time()
    livequeue.register(redis_client, _entry("CAold", now - 300))
    livequeue.register(redis_client, _entry("CAurgent", now - 10, urgent=True))
    livequeue.register(redis_client, _entry("CAnew", now - 60))
    livequeue.register(redis_client, _entry("CAold", now - 5))  # a refresh keeps the first time
    found = livequeue.waiting(redis_client, ["ALIM"])
    assert [e.call_sid for e in found] == ["CAurgent", "CAold", "CAnew"]
    assert found[1].since == pytest.approx(now - 300)
    chosen = livequeue.next_caller(found)
    assert chosen is not None and chosen.call_sid == "CAurgent"
    assert livequeue.jumps_the_line(chosen, found)  # Twilio's own head is CAold
    assert not livequeue.jumps_the_line(found[1], found)


def test_registry_claim_is_exclusive_and_release_puts_back(redis_client: redis.Redis) -> None:
    entry = _entry("CAone", time.time() - 30)
    livequeue.register(redis_client, entry)
    assert livequeue.claim(redis_client, entry, 1)
    assert not livequeue.claim(redis_client, entry, 2)
    assert livequeue.waiting(redis_client, ["ALIM"]) == []
    assert not livequeue.register(redis_client, entry)  # the waitUrl does not undo a claim
    livequeue.release(redis_client, entry)
    assert [e.call_sid for e in livequeue.waiting(redis_client, ["ALIM"])] == ["CAone"]


def test_registry_removal_and_transfer_and_staleness(redis_client: redis.Redis) -> None:
    now = time.time()
    livequeue.register(redis_client, _entry("CAmoved", now - 30))
    livequeue.register(redis_client, _entry("CAmoved", now, department="ATC"))  # a transfer
    assert livequeue.waiting(redis_client, ["ALIM"]) == []
    assert not livequeue.remove(redis_client, "CAmoved", "ALIM")  # the old queue's report
    assert [e.department for e in livequeue.waiting(redis_client, ["ALIM", "ATC"])] == ["ATC"]
    assert livequeue.remove(redis_client, "CAmoved")
    stale = Waiting("CAgone", "ALIM", "twilio", None, False, "es", now - 900, now - 600)
    livequeue.register(redis_client, stale)
    assert livequeue.waiting(redis_client, ["ALIM"]) == []  # Twilio stopped asking: gone


def test_africastalking_bridges_its_longest_waiting_caller(redis_client: redis.Redis) -> None:
    now = time.time()
    livequeue.register(redis_client, _entry("ATold", now - 100, provider="africastalking"))
    livequeue.register(
        redis_client, _entry("ATurgent", now, urgent=True, provider="africastalking")
    )
    chosen = livequeue.next_caller(livequeue.waiting(redis_client, ["ALIM"]))
    assert chosen is not None and chosen.call_sid == "ATold"  # Dequeue is first in, first out


# ---------------------------------------------------------------- queue and event stream


def test_waiting_caller_shows_in_the_queue_with_their_open_case(
    twilio_client: TestClient, db_url: str
) -> None:
    number = open_case_by_sms(twilio_client)
    sid = call_sid()
    twilio_waits(twilio_client, sid, queue_time=95)
    sign_in(twilio_client, db_url, "ana")
    page = twilio_client.get("/console/queue")
    assert page.status_code == 200
    assert CITIZEN in page.text and number in page.text and "1:3" in page.text  # 95 s waited
    stream = events(twilio_client)
    assert stream and stream[0][0] == "queue"
    assert number in stream[0][1] and f'data-call="{sid}"' in stream[0][1]
    # An operator of another department sees neither the caller nor the case.
    sign_in(twilio_client, db_url, "beto", ("HAB",))
    other = twilio_client.get("/console/queue")
    assert CITIZEN not in other.text and number not in other.text
    assert all(CITIZEN not in data for _, data in events(twilio_client))
    actions = {a.action for a in rows(db_url, AuditEvent)}
    assert {"console.queue_view", "console.queue_stream"} <= actions


def test_queue_result_and_status_callback_remove_the_caller(
    twilio_client: TestClient, redis_client: redis.Redis
) -> None:
    left, hung_up = call_sid(), call_sid()
    twilio_waits(twilio_client, left)
    twilio_waits(twilio_client, hung_up)
    assert len(livequeue.waiting(redis_client, ["ALIM"])) == 2
    path = "/webhooks/twilio/voice/queue?step=3&q=ALIM&u=0"
    result = voice_form(left, QueueResult="hangup", QueueSid="QU1", QueueTime="20")
    assert post_signed(twilio_client, path, result).status_code == 200
    status = voice_form(hung_up, CallStatus="completed", CallDuration="40")
    assert post_signed(twilio_client, "/webhooks/twilio/voice/status", status).status_code == 200
    assert livequeue.waiting(redis_client, ["ALIM"]) == []


# ---------------------------------------------------------------- take call (Twilio)


def test_take_call_rings_the_operator_through_twilio(
    twilio_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
    redis_client: redis.Redis,
) -> None:
    open_case_by_sms(twilio_client)
    sid = call_sid()
    twilio_waits(twilio_client, sid)
    csrf = sign_in(twilio_client, db_url, "ana")
    assert twilio_client.post("/console/queue/take", data={}).status_code == 403  # no CSRF
    response = take(twilio_client, csrf)
    assert response.status_code == 303 and response.headers["location"] == f"/console/calls/{sid}"
    (placed,) = fake.calls
    assert placed.to == OPERATOR_PHONE and placed.from_ == "+5491155550000"
    assert placed.form["Url"] == f"{PUBLIC_URL}/webhooks/twilio/operator?q=ALIM"
    assert placed.form["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/operator/status"
    assert availability(db_url, "ana") == "busy"
    (row,) = rows(db_url, OutboundCall)
    assert (row.kind, row.status, row.provider_ref) == ("operator_bridge", "placed", placed.ref)
    assert livequeue.waiting(redis_client, ["ALIM"]) == []
    twilio_waits(twilio_client, sid)  # still in Twilio's queue until bridged: not back in ours
    assert livequeue.waiting(redis_client, ["ALIM"]) == []
    page = twilio_client.get(f"/console/calls/{sid}")
    assert page.status_code == 200
    assert "tarjeta alimentar" in page.text and "Sonando su teléfono" in page.text

    # The operator answers: their leg dials the department's queue and Twilio bridges.
    leg = voice_form(placed.ref, OPERATOR_PHONE, Direction="outbound-api", To=OPERATOR_PHONE)
    twiml = post_signed(twilio_client, "/webhooks/twilio/operator?q=ALIM", leg)
    assert twiml.status_code == 200 and twiml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(twiml.text)
    assert [child.tag for child in root] == ["Say", "Dial", "Say", "Hangup"]
    queue = root.find("Dial/Queue")
    assert queue is not None and queue.text == "ALIM"
    assert queue.get("url") == f"{PUBLIC_URL}/webhooks/twilio/operator/bridged?q=ALIM"
    assert fake.updates == []  # the caller at the head of the queue: nothing to move
    bridged = voice_form(sid, DequeingCallSid=placed.ref, QueueSid="QU1", QueueTime="50")
    said = post_signed(twilio_client, "/webhooks/twilio/operator/bridged?q=ALIM", bridged)
    assert ET.fromstring(said.text).find("Say") is not None
    call = livequeue.load_call(redis_client, sid)
    assert call is not None and call.state == "connected"
    stream = events(twilio_client, f"&call={sid}")
    assert [json.loads(data)["state"] for name, data in stream if name == "call"] == ["connected"]
    # Twilio's answered/completed reports reach the outbound row.
    answered = voice_form(placed.ref, OPERATOR_PHONE, CallStatus="in-progress")
    assert post_signed(twilio_client, "/webhooks/twilio/operator/status", answered).text == "ok"
    assert rows(db_url, OutboundCall)[0].status == "answered"


def test_operator_leg_refuses_a_bad_signature(twilio_client: TestClient) -> None:
    form = voice_form(call_sid())
    response = twilio_client.post(
        "/webhooks/twilio/operator?q=ALIM", data=form, headers={"X-Twilio-Signature": "bad"}
    )
    assert response.status_code == 403
    assert post_signed(twilio_client, "/webhooks/twilio/operator?q=NOPE", form).status_code == 400


def test_urgent_caller_goes_first_into_a_queue_of_their_own(
    twilio_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
) -> None:
    first, urgent = call_sid(), call_sid()
    twilio_waits(twilio_client, first, queue_time=200)
    twilio_waits(twilio_client, urgent, urgent=True, caller="+5491155550602", queue_time=5)
    csrf = sign_in(twilio_client, db_url, "ana")
    assert take(twilio_client, csrf).headers["location"] == f"/console/calls/{urgent}"
    (placed,) = fake.calls
    assert parse_qs(urlsplit(placed.form["Url"]).query) == {"q": ["ALIM"], "c": [urgent]}
    leg = voice_form(placed.ref, OPERATOR_PHONE, Direction="outbound-api", To=OPERATOR_PHONE)
    path = f"/webhooks/twilio/operator?q=ALIM&c={urgent}"
    twiml = post_signed(twilio_client, path, leg).text
    assert ET.fromstring(twiml).find("Dial/Queue").text == f"ALIM.{urgent}"  # type: ignore[union-attr]
    ((moved, form),) = fake.updates
    assert moved == urgent and f"<Enqueue>ALIM.{urgent}</Enqueue>" in form["Twiml"]
    assert post_signed(twilio_client, path, leg).text == twiml  # a redelivery moves nothing
    assert len(fake.updates) == 1


def test_bridge_follows_the_caller_twilio_actually_connected(
    twilio_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
    redis_client: redis.Redis,
) -> None:
    chosen, other = call_sid(), call_sid()
    twilio_waits(twilio_client, chosen, queue_time=90)
    twilio_waits(twilio_client, other, caller="+5491155550603", queue_time=10)
    csrf = sign_in(twilio_client, db_url, "ana")
    assert take(twilio_client, csrf).headers["location"] == f"/console/calls/{chosen}"
    (placed,) = fake.calls
    # The chosen caller's Queue turn went to someone else: Twilio bridges the next one.
    bridged = voice_form(other, "+5491155550603", DequeingCallSid=placed.ref, QueueTime="15")
    post_signed(twilio_client, "/webhooks/twilio/operator/bridged?q=ALIM", bridged)
    live = livequeue.load_call(redis_client, other)
    assert live is not None and (live.state, live.operator, live.phone) == (
        "connected",
        "ana",
        "+5491155550603",
    )
    first = livequeue.load_call(redis_client, chosen)
    assert first is not None and (first.state, first.replaced_by) == ("replaced", other)
    assert livequeue.current_call(redis_client, live.operator_id) == other
    twilio_waits(twilio_client, chosen)  # still waiting at Twilio: back in the list
    assert [e.call_sid for e in livequeue.waiting(redis_client, ["ALIM"])] == [chosen]
    stream = events(twilio_client, f"&call={chosen}")
    (state,) = [json.loads(data) for name, data in stream if name == "call"]
    assert state["url"] == f"/console/calls/{other}"


def test_unanswered_operator_phone_puts_the_caller_back(
    twilio_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
    redis_client: redis.Redis,
) -> None:
    sid = call_sid()
    twilio_waits(twilio_client, sid)
    take(twilio_client, sign_in(twilio_client, db_url, "ana"))
    (placed,) = fake.calls
    status = voice_form(placed.ref, OPERATOR_PHONE, CallStatus="no-answer")
    assert post_signed(twilio_client, "/webhooks/twilio/operator/status", status).text == "ok"
    assert [e.call_sid for e in livequeue.waiting(redis_client, ["ALIM"])] == [sid]
    assert availability(db_url, "ana") == "available"
    assert rows(db_url, OutboundCall)[0].status == "unanswered"
    call = livequeue.load_call(redis_client, sid)
    assert call is not None and call.state == "missed"


def test_take_call_needs_a_phone_availability_and_a_caller(
    twilio_client: TestClient, db_url: str
) -> None:
    csrf = sign_in(twilio_client, db_url, "ana", phone=None)
    assert take(twilio_client, csrf).headers["location"] == "/console/queue?error=no_phone"
    page = twilio_client.post(
        "/console/queue/phone", data={"csrf_token": csrf, "phone": "011 15 5555-0699"},
        follow_redirects=True,
    )  # fmt: skip
    assert OPERATOR_PHONE in page.text
    assert take(twilio_client, csrf).headers["location"] == "/console/queue?error=nobody"
    twilio_client.post("/console/availability", data={"csrf_token": csrf, "availability": "away"})
    twilio_waits(twilio_client, call_sid())
    assert take(twilio_client, csrf).headers["location"] == "/console/queue?error=not_available"


# ---------------------------------------------------------------- during the call


def test_case_opened_during_the_call_transfer_and_wrap_up(
    twilio_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
    redis_client: redis.Redis,
) -> None:
    sid = call_sid()
    twilio_waits(twilio_client, sid)
    csrf = sign_in(twilio_client, db_url, "ana")
    take(twilio_client, csrf)
    opened = twilio_client.post(
        f"/console/calls/{sid}",
        data={
            "csrf_token": csrf,
            "action": "case",
            "category": "tarjeta-alimentar",
            "description": "Dice que no le cargan la tarjeta desde octubre",
            "name": "Marta Gómez",
            "national_id": "28.123.456",
        },
        follow_redirects=True,
    )
    assert opened.status_code == 200 and "Pedido abierto" in opened.text
    with Db(db_url) as db:
        (case,) = db.cases()
        outbox = db.outbox()
    assert (case.channel, case.department, case.status) == ("voice", "ALIM", "assigned")
    assert (case.citizen_name, case.national_id) == ("Marta Gómez", "28123456")
    assert case.first_response_at is not None
    assert outbox[0].to_address == CITIZEN and case.tracking_number[:4] in outbox[0].body
    refused = twilio_client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "case", "category": "pensiones", "description": "x"},
    )
    assert refused.status_code == 400  # a category of a department ana does not work in

    moved = twilio_client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "transfer", "department": "ING"},
        follow_redirects=True,
    )
    assert moved.status_code == 200
    ((updated, form),) = fake.updates
    assert updated == sid
    enqueue = ET.fromstring(form["Twiml"]).find("Enqueue")
    assert enqueue is not None and enqueue.text == "ING"
    assert enqueue.get("waitUrl") == f"{PUBLIC_URL}/webhooks/twilio/voice/wait?q=ING&u=0"
    assert enqueue.get("action", "").startswith(f"{PUBLIC_URL}/webhooks/twilio/voice/queue?step=")
    assert [e.department for e in livequeue.waiting(redis_client, ["ALIM", "ING"])] == ["ING"]

    done = twilio_client.post(
        f"/console/calls/{sid}",
        data={
            "csrf_token": csrf,
            "action": "wrap_up",
            "disposition": "case_opened",
            "case": case.tracking_number,
            "note": "Pasa a Ingresos por la pension",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/queue"
    assert availability(db_url, "ana") == "available"
    events_ = [e for e in rows(db_url, CaseEvent) if e.kind == "call"]
    assert len(events_) == 1 and "se abrió un pedido" in events_[0].text
    (wrap,) = [i for i in rows(db_url, Interaction) if i.provider_ref == f"{sid}:wrap-up"]
    assert wrap.channel == "voice" and wrap.case_id == case.id
    again = twilio_client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "wrap_up", "disposition": "resolved_on_call"},
    )
    assert again.status_code == 400 and "already wrapped up" in again.text
    actions = {a.action for a in rows(db_url, AuditEvent)}
    assert {"call.take", "call.case_opened", "call.transfer", "call.wrap_up"} <= actions


def test_call_page_is_denied_to_another_department(twilio_client: TestClient, db_url: str) -> None:
    sid = call_sid()
    twilio_waits(twilio_client, sid)
    take(twilio_client, sign_in(twilio_client, db_url, "ana"))
    csrf = sign_in(twilio_client, db_url, "beto", ("HAB",))
    assert twilio_client.get(f"/console/calls/{sid}").status_code == 404
    refused = twilio_client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "transfer", "department": "HAB"},
    )
    assert refused.status_code == 404
    sign_in(twilio_client, db_url, "root", (), role="admin", phone=None)
    twilio_client.cookies.set("ventanilla_lang", "en")
    page = twilio_client.get(f"/console/calls/{sid}")  # an admin sees every department
    assert page.status_code == 200 and "Ringing your phone" in page.text
    assert "Your phone for taking calls" in twilio_client.get("/console/queue").text


def test_callback_needed_wrap_up_queues_a_call_back(twilio_client: TestClient, db_url: str) -> None:
    sid = call_sid()
    twilio_waits(twilio_client, sid)
    csrf = sign_in(twilio_client, db_url, "ana")
    take(twilio_client, csrf)
    twilio_client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "wrap_up", "disposition": "callback_needed"},
    )
    (callback,) = rows(db_url, CallbackRequest)
    assert (callback.phone, callback.department, callback.reason) == (CITIZEN, "ALIM", "operator")
    (wrap,) = rows(db_url, Interaction)
    assert wrap.case_id is None and "volver a llamar" in wrap.text


# ---------------------------------------------------------------- Africa's Talking


@pytest.fixture
def at_client(
    db_url: str, redis_url: str, config: Config, fake: FakeWithCallUpdates
) -> Iterator[TestClient]:
    yield from _client(
        db_url,
        redis_url,
        config,
        VENTANILLA_VOICE_PROVIDER="africastalking",
        AT_VOICE_BASE_URL=fake.url,
        AT_VOICE_NUMBER=AT_NUMBER,
    )


def at_post(client: TestClient, session_id: str, query: str = "", **fields: str) -> Any:
    form = {
        "isActive": "1",
        "sessionId": session_id,
        "direction": "Inbound",
        "callerNumber": CITIZEN,
        "destinationNumber": AT_NUMBER,
        **fields,
    }
    return client.post(f"/webhooks/africastalking/voice?token={AT_TOKEN}{query}", data=form)


def test_africastalking_caller_is_dequeued_by_the_operators_leg(
    at_client: TestClient,
    db_url: str,
    fake: FakeWithCallUpdates,
    redis_client: redis.Redis,
) -> None:
    caller = "ATVId_live0001"
    assert at_post(at_client, caller).status_code == 200  # main menu
    queued = at_post(at_client, caller, "&step=1&in=d", dtmfDigits="3")
    assert "<Enqueue" in queued.text
    (entry,) = livequeue.waiting(redis_client, ["ATC", "ALIM", "GEN"])
    assert (entry.call_sid, entry.provider, entry.phone) == (caller, "africastalking", CITIZEN)
    csrf = sign_in(at_client, db_url, "ana", ("ATC",))
    take(at_client, csrf)
    (placed,) = fake.calls
    assert (placed.provider, placed.to) == ("africastalking", OPERATOR_PHONE)
    answered = at_post(
        at_client, placed.ref, direction="Outbound", callerNumber=AT_NUMBER,
        destinationNumber=OPERATOR_PHONE,
    )  # fmt: skip
    dequeue = ET.fromstring(answered.text).find("Dequeue")
    assert dequeue is not None
    assert dequeue.attrib == {"phoneNumber": AT_NUMBER, "name": "ATC"}
    call = livequeue.load_call(redis_client, caller)
    assert call is not None and call.state == "connected"
    assert rows(db_url, OutboundCall)[0].status == "answered"
    refused = at_client.post(
        f"/console/calls/{caller}",
        data={"csrf_token": csrf, "action": "transfer", "department": "ALIM"},
    )
    assert refused.status_code == 400 and "Africa" in refused.text
    at_post(at_client, caller, isActive="0", durationInSeconds="60")  # the caller hangs up
    call = livequeue.load_call(redis_client, caller)
    assert call is not None and call.state == "ended"


# ---------------------------------------------------------------- the simulator's two phones


def test_simulator_plays_both_phones(
    client: TestClient, db_url: str, redis_client: redis.Redis
) -> None:
    open_case_by_sms(client)
    citizen = client.post(
        "/simulator/call",
        data={"phone": CITIZEN, "action": "call", "department": "ALIM"},
        follow_redirects=True,
    )
    assert 'data-state="waiting"' in citizen.text
    csrf = sign_in(client, db_url, "ana")
    sid = take(client, csrf).headers["location"].rsplit("/", 1)[1]
    assert sid.startswith("SIM")
    (row,) = rows(db_url, OutboundCall)
    assert (row.provider, row.status, row.kind) == ("outbox", "recorded", "operator_bridge")
    phone = client.get(f"/simulator/call?phone={OPERATOR_PHONE}")
    assert f'data-ringing="{row.id}"' in phone.text
    answered = client.post(
        "/simulator/call",
        data={"phone": OPERATOR_PHONE, "action": "answer", "call_id": str(row.id)},
        follow_redirects=True,
    )
    assert f'data-talking="{row.id}"' in answered.text
    assert 'data-state="connected"' in client.get(f"/simulator/call?phone={CITIZEN}").text
    # With the outbox provider a transfer just moves the caller in the registry.
    client.post(
        f"/console/calls/{sid}",
        data={"csrf_token": csrf, "action": "transfer", "department": "ATC"},
    )
    assert [e.department for e in livequeue.waiting(redis_client, ["ALIM", "ATC"])] == ["ATC"]
    client.post("/simulator/call", data={"phone": CITIZEN, "action": "hangup"})
    assert livequeue.waiting(redis_client, ["ATC"]) == []


def test_declined_simulated_call_returns_the_caller_to_the_queue(
    client: TestClient, db_url: str, redis_client: redis.Redis
) -> None:
    client.post("/simulator/call", data={"phone": CITIZEN, "action": "call", "department": "ALIM"})
    take(client, sign_in(client, db_url, "ana"))
    (row,) = rows(db_url, OutboundCall)
    client.post(
        "/simulator/call",
        data={"phone": OPERATOR_PHONE, "action": "decline", "call_id": str(row.id)},
    )
    assert len(livequeue.waiting(redis_client, ["ALIM"])) == 1
    assert availability(db_url, "ana") == "available"
    assert rows(db_url, Case) == []
