"""Vonage voice: recorded Voice API webhooks (testdata/voice.json) parsed (pure), then posted
signed to the real app on SQLite and PostgreSQL; then end to end: the shared menu as NCCO,
DTMF steps, a recorded new request whose tracking number is pushed to the live call, and call
events on our outbound calls."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from casestore.config import load_config
from casestore.db import make_engine
from casestore.models import CallbackRequest, OutboundCall
from gateway.providers.base import WebhookRequest
from gateway.providers.vonage.voice import VonageVoice
from gateway.workers.worker import run_burst
from ivr.menu import load_menu
from tests.conftest import PUBLIC_URL
from tests.fakeprovider import FakeProvider
from tests.helpers import Db
from tests.providers.conftest import Post
from tests.providers.harness import Case, assert_refuses, load_testdata
from tests.providers.vonage.support import FROM_NUMBER, signed, vonage_env

VOICE = load_testdata(__file__, "voice")


# ---------------------------------------------------------------- recorded webhooks
def _parse(case: Case) -> object:
    """What the adapter makes of the case (a call step, or an event) once it is read."""
    request = WebhookRequest(
        url=PUBLIC_URL + case.path,
        headers={"content-type": case.content_type},
        query=dict(case.query),
        body=case.content,
        raw_body=case.content,
    )
    voice = VonageVoice(vonage_env())
    if case.path == VonageVoice.event_path:
        return voice.parse_event(request)
    return voice.parse_step(request, "AR")


@pytest.mark.parametrize("case", VOICE.params(having="parsed"))
def test_parse_voice(case: Case) -> None:
    assert case.expect is not None
    assert asdict(_parse(case)) == case.expect["parsed"]  # type: ignore[call-overload]


@pytest.mark.parametrize("case", VOICE.params(having="error"))
def test_parse_voice_refuses_malformed(case: Case) -> None:
    assert_refuses(case, lambda: _parse(case))


@pytest.mark.parametrize("case", VOICE.params())
def test_recorded_voice_webhooks_over_http(post_case: Post, case: Case) -> None:
    post_case(case)


# ---------------------------------------------------------------- end to end
MENU = load_menu(load_config(env={}))
ANSWER = "/webhooks/vonage/voice/answer"
EVENT = "/webhooks/vonage/voice/event"
RECORDING = "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-4ccc-8ddd-00000000{:04x}"


def category_key(code: str) -> str:
    index = [c.code for c in MENU.categories].index(code)
    assert index < 9, "the walk picks a category on the first spoken page"
    return str(index + 1)


class Ncco:
    """An NCCO answer, parsed."""

    def __init__(self, response: Any) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        self.actions: list[dict[str, Any]] = response.json()

    @property
    def kinds(self) -> list[str]:
        return [a["action"] for a in self.actions]

    @property
    def text(self) -> str:
        return " ".join(a["text"] for a in self.actions if a["action"] == "talk")

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = [a for a in self.actions if a["action"] == kind]
        return found


class Call:
    """A citizen calling our Vonage number, pressing keys where the NCCO asks."""

    def __init__(self, client: TestClient, phone: str = "+5491155550111") -> None:
        self.client = client
        self.phone = phone
        self.uuid = str(uuid.uuid4())
        self.last: Ncco | None = None

    def _fields(self) -> dict[str, str]:
        return {
            "from": self.phone.removeprefix("+"),
            "to": FROM_NUMBER.removeprefix("+"),
            "uuid": self.uuid,
            "conversation_uuid": "CON-" + self.uuid,
        }

    def dial(self) -> Ncco:
        """Vonage fetches the answer URL with GET (its default), signed, no body."""
        response = self.client.get(ANSWER, params=self._fields(), headers=signed(b""))
        self.last = Ncco(response)
        return self.last

    def _post(self, url: str, payload: dict[str, Any]) -> Any:
        assert url.startswith(PUBLIC_URL)
        body = json.dumps(payload).encode()
        return self.client.post(url.removeprefix(PUBLIC_URL), content=body, headers=signed(body))

    def press(self, digits: str) -> Ncco:
        """The input's eventUrl gets the keys (and answers with the next NCCO)."""
        assert self.last is not None
        url = self.last.one("input")["eventUrl"][0]
        payload = {
            **self._fields(),
            "dtmf": {"digits": digits, "timed_out": digits == ""},
            "speech": {"results": []},
            "timestamp": "2026-11-22T14:03:11.000Z",
        }
        self.last = Ncco(self._post(url, payload))
        return self.last

    def record(self, recording_url: str) -> Any:
        """The record's eventUrl gets the recording once it is ready (no call uuid in it)."""
        assert self.last is not None
        url = self.last.one("record")["eventUrl"][0]
        payload = {
            "start_time": "2026-11-22T14:03:20Z",
            "recording_url": recording_url,
            "size": 22000,
            "recording_uuid": str(uuid.uuid4()),
            "end_time": "2026-11-22T14:03:31Z",
            "conversation_uuid": "CON-" + self.uuid,
            "timestamp": "2026-11-22T14:03:31Z",
        }
        return self._post(url, payload)

    def event(self, status: str, **extra: str) -> Any:
        payload = {**self._fields(), "status": status, "direction": "inbound", **extra}
        body = json.dumps(payload).encode()
        return self.client.post(EVENT, content=body, headers=signed(body))


def test_answer_speaks_the_main_menu_and_waits_for_a_key(vonage_client: TestClient) -> None:
    menu = Call(vonage_client).dial()
    assert menu.kinds == ["talk", "input"]
    talk = menu.one("talk")
    assert talk["bargeIn"] is True and talk["language"] == "es-MX"
    assert "Nuevo pedido: presione 1." in talk["text"]
    entry = menu.one("input")
    assert entry["type"] == ["dtmf"] and entry["dtmf"]["maxDigits"] == 1
    query = parse_qs(urlsplit(entry["eventUrl"][0]).query)
    assert query["step"] == ["1"] and query["p"] == ["+5491155550111"]


def test_new_request_by_keypad_and_recording(
    vonage_client: TestClient, db_url: str, fake_provider: FakeProvider
) -> None:
    call = Call(vonage_client)
    call.dial()
    categories = call.press("1")
    assert categories.one("input")["dtmf"]["maxDigits"] == 2  # "98" for more
    assert "Mas: presione 9 8." in categories.text
    describe = call.press(category_key("habitat"))
    assert describe.kinds == ["talk", "record", "wait"]
    assert "Su mensaje queda grabado" in describe.text
    record = describe.one("record")
    assert (record["endOnKey"], record["beepStart"]) == ("#", True)
    assert record["eventUrl"][0].endswith("&rec=1")

    answered = call.record(RECORDING.format(1))
    assert answered.status_code == 200
    with Db(db_url) as db:
        (case,) = db.cases()
        number = case.tracking_number
        assert (case.channel, case.category, case.department) == ("voice", "habitat", "HAB")
        (inbound, _sms_copy) = db.interactions()
        assert inbound.media_urls == [RECORDING.format(1)]
        assert inbound.provider == "vonage" and inbound.provider_ref == f"{call.uuid}:3"
        (receipt,) = db.outbox()
        assert receipt.provider == "vonage" and receipt.to_address == "+5491155550111"
    # Vonage does not read a record event's answer: the next NCCO went to the live call.
    ((to_call, ncco),) = fake_provider.transfers
    assert to_call == call.uuid
    spoken = " ".join(a.get("text", "") for a in ncco)
    assert " ".join(number) in spoken and number not in spoken  # read digit by digit
    assert ncco[-1]["action"] == "input"

    # A redelivered record event creates nothing and pushes nothing again.
    assert call.record(RECORDING.format(1)).status_code == 200
    with Db(db_url) as db:
        assert len(db.cases()) == 1
    assert len(fake_provider.transfers) == 1


def test_redelivered_step_gets_the_same_answer(vonage_client: TestClient, db_url: str) -> None:
    call = Call(vonage_client)
    menu = call.dial()
    first = call.press("1")
    call.last = menu  # Vonage posts the same input event again
    again = call.press("1")
    assert again.actions == first.actions
    with Db(db_url) as db:
        assert db.cases() == []


def test_talk_to_a_person_becomes_a_call_back_request(
    vonage_client: TestClient, db_url: str
) -> None:
    call = Call(vonage_client)
    call.dial()
    answer = call.press("3")
    assert answer.text
    engine = make_engine(db_url)
    with engine.connect() as conn:
        (request,) = conn.execute(select(CallbackRequest.phone, CallbackRequest.channel)).all()
    engine.dispose()
    assert tuple(request) == ("+5491155550111", "voice")


def _placed_call(db_url: str, ref: str) -> int:
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        call_id = conn.execute(
            insert(OutboundCall)
            .values(
                kind="callback", provider="vonage", to_address="+5491155550111",
                status="placed", provider_ref=ref, attempts=1, next_attempt_at=now,
                created_at=now, updated_at=now,
            )
            .returning(OutboundCall.id)
        ).scalar_one()  # fmt: skip
    engine.dispose()
    return int(call_id)


def _status(db_url: str, call_id: int) -> tuple[str, str | None]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(
            select(OutboundCall.status, OutboundCall.error).where(OutboundCall.id == call_id)
        ).one()
    engine.dispose()
    return row[0], row[1]


def test_events_record_our_outbound_call(vonage_client: TestClient, db_url: str) -> None:
    call = Call(vonage_client)
    placed = _placed_call(db_url, call.uuid)
    assert call.event("ringing").status_code == 204
    assert _status(db_url, placed)[0] == "placed"
    assert call.event("answered").status_code == 204
    assert _status(db_url, placed)[0] == "answered"
    assert call.event("completed", duration="42").status_code == 204
    assert _status(db_url, placed)[0] == "completed"


@pytest.mark.parametrize(("status", "expected"), [("busy", "unanswered"), ("failed", "failed")])
def test_unanswered_and_failed_calls(
    vonage_client: TestClient, db_url: str, status: str, expected: str
) -> None:
    call = Call(vonage_client)
    placed = _placed_call(db_url, call.uuid)
    assert call.event(status).status_code == 204
    assert _status(db_url, placed) == (expected, status)


def test_event_of_a_call_not_ours_and_bad_events(vonage_client: TestClient) -> None:
    call = Call(vonage_client)
    assert call.event("completed").status_code == 204  # an inbound call: nothing to record
    refused = call.event("exploded")
    assert refused.status_code == 400 and "completed" in refused.text
    body = b'{"status": "answered"}'
    missing = vonage_client.post(EVENT, content=body, headers=signed(body))
    assert missing.status_code == 400 and "uuid" in missing.text


def test_unsigned_steps_are_refused(vonage_client: TestClient, db_url: str) -> None:
    call = Call(vonage_client)
    response = vonage_client.get(ANSWER, params=call._fields())
    assert response.status_code == 403
    response = vonage_client.get(
        ANSWER, params=call._fields(), headers=signed(b"", secret="another")
    )
    assert response.status_code == 403


def _pending_call(db_url: str, kind: str, survey_id: int | None = None) -> int:
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        call_id = conn.execute(
            insert(OutboundCall)
            .values(
                kind=kind, provider="vonage", to_address="+5491155550112", status="pending",
                attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
                survey_id=survey_id,
            )
            .returning(OutboundCall.id)
        ).scalar_one()  # fmt: skip
    engine.dispose()
    return int(call_id)


def _burst(db_url: str, connection: redis.Redis) -> None:
    engine = make_engine(db_url)
    try:
        run_burst(engine, connection)
    finally:
        engine.dispose()


def test_the_worker_calls_back_through_vonage_into_our_menu(
    vonage_worker: redis.Redis, db_url: str, fake_provider: FakeProvider
) -> None:
    call_id = _pending_call(db_url, "callback")
    _burst(db_url, vonage_worker)
    (placed,) = fake_provider.calls
    assert placed.to == "5491155550112"
    # Vonage fetches our NCCO menu and reports the call's progress to our event webhook.
    assert json.loads(placed.form["answer_url"]) == [PUBLIC_URL + ANSWER]
    assert json.loads(placed.form["event_url"]) == [PUBLIC_URL + EVENT]
    status, _ = _status(db_url, call_id)
    assert status == "placed"


def test_a_notice_call_vonage_cannot_read_fails_saying_why(
    vonage_worker: redis.Redis, db_url: str, fake_provider: FakeProvider
) -> None:
    call_id = _pending_call(db_url, "notice")
    _burst(db_url, vonage_worker)
    assert fake_provider.calls == []
    status, error = _status(db_url, call_id)
    assert status == "failed"
    assert error is not None and "vonage cannot read notices" in error
