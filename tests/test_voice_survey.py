"""Voice surveys over the real stack, on SQLite and PostgreSQL: a closed case of a voice citizen
-> a call placed by the worker through the fake provider -> the provider's requests (Twilio
signed, Africa's Talking with its token and sessionId) -> the rating on the case. Then what
follows calls that get no rating: one retry, the fallbacks both ways, opt-outs, quiet hours."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config, load_config
from casestore.db import make_engine
from casestore.models import Case, CaseEvent, Contact, OutboundCall, OutboundMessage, Survey
from feedback.rules import AfterCall, KeypadMove, after_unrated_call, read_keypad
from feedback.surveys import send_due_surveys
from feedback.voice import follow_up
from gateway.app import create_app
from gateway.settings import load_settings
from gateway.workers import jobs
from gateway.workers.worker import run_burst
from tests.conftest import TWILIO_SID, app_env, set_worker_env
from tests.fakeprovider import FakeProvider
from tests.helpers import AT_TOKEN, PUBLIC_URL, Db, admin_token, post_twilio, sign, twilio_form

CITIZEN = "+5491155550061"
TWILIO_NUMBER = "+5491155550000"
AT_NUMBER = "+5491155559999"
AT_VOICE = "/webhooks/africastalking/voice"
PROVIDERS = ("twilio", "africastalking")
_ids = itertools.count(1)


# ---------------------------------------------------------------- the pure rules
@pytest.mark.parametrize(
    ("keys", "attempt", "keyed_before", "move", "rating"),
    [
        ("4", 1, False, KeypadMove.RATE, 4),
        ("1#", 2, True, KeypadMove.RATE, 1),
        ("5", 2, False, KeypadMove.RATE, 5),
        ("9", 1, False, KeypadMove.REPEAT, None),
        ("0", 1, False, KeypadMove.REPEAT, None),
        ("*", 1, False, KeypadMove.REPEAT, None),
        ("", 1, False, KeypadMove.REPEAT, None),
        (None, 1, False, KeypadMove.REPEAT, None),
        ("45", 1, False, KeypadMove.REPEAT, None),
        ("7", 2, False, KeypadMove.UNCLEAR, None),
        ("", 2, True, KeypadMove.UNCLEAR, None),
        ("", 2, False, KeypadMove.SILENT, None),
        (None, 2, False, KeypadMove.SILENT, None),
    ],
)
def test_read_keypad(
    keys: str | None, attempt: int, keyed_before: bool, move: KeypadMove, rating: int | None
) -> None:
    answer = read_keypad(keys, attempt, keyed_before)
    assert (answer.move, answer.rating) == (move, rating)


@pytest.mark.parametrize(
    ("picked_up", "refused", "made", "fallback_from", "sms_fallback", "expected"),
    [
        (False, False, 1, None, True, AfterCall.RETRY),  # rang out: once more
        (False, False, 1, "sms", True, AfterCall.RETRY),
        (False, False, 2, None, True, AfterCall.SMS),  # the retry rang out too
        (False, False, 2, None, False, AfterCall.GIVE_UP),
        (True, False, 1, None, True, AfterCall.SMS),  # picked up, no key: not called again
        (True, False, 1, None, False, AfterCall.GIVE_UP),
        (False, True, 1, None, True, AfterCall.SMS),  # refused by the provider for good
        (False, False, 2, "sms", True, AfterCall.SMS_OPEN),  # asked by SMS first: never back
        (False, False, 2, "voice", True, AfterCall.GIVE_UP),
    ],
)
def test_after_unrated_call(
    picked_up: bool,
    refused: bool,
    made: int,
    fallback_from: str | None,
    sms_fallback: bool,
    expected: AfterCall,
) -> None:
    decision = after_unrated_call(
        picked_up=picked_up,
        refused=refused,
        calls_made=made,
        calls_allowed=2,
        fallback_from=fallback_from,
        sms_fallback=sms_fallback,
    )
    assert decision is expected


# ---------------------------------------------------------------- recorded-shape requests
def twilio_call_fields(sid: str, status: str = "in-progress") -> dict[str, str]:
    """A Twilio request for a call the app placed (outbound-api: the citizen is `To`)."""
    return {
        "AccountSid": TWILIO_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "Called": CITIZEN,
        "CalledCity": "",
        "CalledCountry": "AR",
        "CalledState": "",
        "CalledZip": "",
        "Caller": TWILIO_NUMBER,
        "CallerCity": "",
        "CallerCountry": "AR",
        "CallerState": "",
        "CallerZip": "",
        "Direction": "outbound-api",
        "From": TWILIO_NUMBER,
        "FromCity": "",
        "FromCountry": "AR",
        "FromState": "",
        "FromZip": "",
        "To": CITIZEN,
        "ToCity": "",
        "ToCountry": "AR",
        "ToState": "",
        "ToZip": "",
    }


def _path(url: str) -> str:
    assert url.startswith(PUBLIC_URL), url
    return url[len(PUBLIC_URL) :]


def _xml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def said(root: ET.Element) -> str:
    return " ".join(say.text or "" for say in root.iter("Say"))


class TwilioSurveyCall:
    """One survey call as Twilio drives it: the call's URL, then each Gather action, signed."""

    def __init__(self, client: TestClient, url: str, sid: str) -> None:
        self.client, self.url, self.sid = client, url, sid
        self.bodies: list[str] = []

    def post(self, url: str, **extra: str) -> ET.Element:
        path = _path(url)
        form = {**twilio_call_fields(self.sid), **extra}
        response = self.client.post(
            path, data=form, headers={"X-Twilio-Signature": sign(path, form)}
        )
        self.bodies.append(response.text)
        return _xml(response)

    def answer(self) -> ET.Element:
        self.last = self.post(self.url)
        return self.last

    def press(self, keys: str) -> ET.Element:
        gather = self.last.find("Gather")
        assert gather is not None, said(self.last)
        self.last = self.post(
            gather.attrib["action"], msg="Gather End", FinishedOnKey="", Digits=keys
        )
        return self.last


def twilio_status(client: TestClient, sid: str, status: str) -> None:
    path = "/webhooks/twilio/call-status"
    form = {
        **twilio_call_fields(sid, status),
        "CallDuration": "0" if status != "completed" else "31",
        "Timestamp": "Sun, 22 Nov 2026 15:07:11 +0000",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "1",
    }
    response = client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})
    assert response.status_code == 200, response.text


class AtSurveyCall:
    """One survey call as Africa's Talking drives it: the number's voice callback first, then
    the callbackUrl of each GetDigits; the final request on the voice callback again."""

    def __init__(self, client: TestClient, session_id: str) -> None:
        self.client = client
        # On some routes AT shows our own number as the caller of a call we placed.
        self.fields = {
            "sessionId": session_id,
            "direction": "Outbound",
            "callerNumber": AT_NUMBER,
            "destinationNumber": CITIZEN,
        }

    def post(self, url: str, **extra: str) -> ET.Element:
        response = self.client.post(url, data={**self.fields, "isActive": "1", **extra})
        self.last_body = response.text
        return _xml(response)

    def answer(self) -> ET.Element:
        self.last = self.post(f"{AT_VOICE}?token={AT_TOKEN}", callSessionState="Answered")
        return self.last

    def press(self, keys: str) -> ET.Element:
        get_digits = self.last.find("GetDigits")
        assert get_digits is not None, said(self.last)
        self.last = self.post(
            _path(get_digits.attrib["callbackUrl"]), dtmfDigits=keys, callSessionState="Active"
        )
        return self.last

    def silence(self) -> ET.Element:
        redirect = self.last.find("Redirect")
        assert redirect is not None and redirect.text
        self.last = self.post(_path(redirect.text), callSessionState="Active")
        return self.last

    def end(self, state: str = "Completed", cause: str = "NORMAL_CLEARING") -> None:
        form = {
            **self.fields,
            "isActive": "0",
            "durationInSeconds": "0" if state != "Completed" else "35",
            "currencyCode": "USD",
            "amount": "0.00",
            "callSessionState": state,
            "hangupCause": cause,
        }
        response = self.client.post(f"{AT_VOICE}?token={AT_TOKEN}", data=form)
        assert response.status_code == 200, response.text


# ---------------------------------------------------------------- the stack
def survey_config(**overrides: str) -> Config:
    """The shipped config without quiet hours (the worker runs on the wall clock)."""
    env = {"VENTANILLA__SURVEY__QUIET_HOURS": '""'}
    env.update({f"VENTANILLA__SURVEY__{k.upper()}": v for k, v in overrides.items()})
    return load_config(env=env)


@dataclass
class Stack:
    """The gateway, a worker on the same database and Redis, and the fake provider."""

    client: TestClient
    db_url: str
    connection: redis.Redis
    config: Config
    fake: FakeProvider
    voice: str
    token: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def burst(self) -> None:
        engine = make_engine(self.db_url)
        try:
            run_burst(engine, self.connection, self.config, "outbox")
        finally:
            engine.dispose()

    def text(self, body: str, phone: str = CITIZEN) -> str:
        reply = post_twilio(self.client, twilio_form(body, sender=phone)).text
        match = re.search(r"<Message>(.*)</Message>", reply, re.S)
        return match.group(1) if match else ""

    def open_case(self, phone: str = CITIZEN, *, prefers_voice: bool = True) -> str:
        reply = self.text("Tarjeta alimentar", phone)
        match = re.search(r"(\d{4} \d{4} \d{2})", reply)
        assert match, reply
        if prefers_voice:
            with Db(self.db_url) as db, db.engine.begin() as conn:
                conn.execute(
                    update(Contact).where(Contact.phone == phone).values(preferred_channel="voice")
                )
        return match.group(1).replace(" ", "")

    def close(self, number: str) -> None:
        response = self.client.post(
            f"/api/v1/cases/{number}/status",
            json={"status": "closed", "note": "entregada"},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text

    def make_due(self) -> None:
        """Surveys and calls waiting for a later time become due now."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        with Db(self.db_url) as db, db.engine.begin() as conn:
            conn.execute(update(Survey).where(Survey.status == "scheduled").values(due_at=past))
            conn.execute(
                update(OutboundCall)
                .where(OutboundCall.status == "pending")
                .values(next_attempt_at=past)
            )

    def closed_and_called(self, phone: str = CITIZEN) -> str:
        """A voice citizen's case closed, its survey due, the worker run: the call placed."""
        self.close(self.open_case(phone))
        self.make_due()
        self.burst()
        placed = [c for c in self.fake.calls if c.to == phone]
        assert placed, "no survey call placed"
        return placed[-1].ref

    def survey(self) -> Survey:
        with Db(self.db_url) as db, Session(db.engine) as session:
            return session.scalars(select(Survey)).one()

    def calls(self) -> list[OutboundCall]:
        with Db(self.db_url) as db, Session(db.engine) as session:
            return list(session.scalars(select(OutboundCall).order_by(OutboundCall.id)))

    def survey_sms(self) -> list[OutboundMessage]:
        with Db(self.db_url) as db:
            return [m for m in db.outbox() if m.kind == "survey"]

    def events(self, kind: str) -> list[CaseEvent]:
        with Db(self.db_url) as db, Session(db.engine) as session:
            query = select(CaseEvent).where(CaseEvent.kind == kind).order_by(CaseEvent.id)
            return list(session.scalars(query))

    def answer(self, ref: str) -> TwilioSurveyCall | AtSurveyCall:
        if self.voice == "twilio":
            (placed,) = [c for c in self.fake.calls if c.ref == ref]
            call: TwilioSurveyCall | AtSurveyCall = TwilioSurveyCall(
                self.client, placed.form["Url"], ref
            )
        else:
            call = AtSurveyCall(self.client, ref)
        call.answer()
        return call

    def no_answer(self, ref: str) -> None:
        """The provider's word that the call rang out."""
        if self.voice == "twilio":
            twilio_status(self.client, ref, "no-answer")
        else:
            AtSurveyCall(self.client, ref).end("NotAnswered", "NO_ANSWER")

    def hang_up(self, call: TwilioSurveyCall | AtSurveyCall) -> None:
        if isinstance(call, TwilioSurveyCall):
            twilio_status(self.client, call.sid, "completed")
        else:
            call.end()


@pytest.fixture
def stack_for(
    monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str, fake_provider: FakeProvider
) -> Iterator[Any]:
    """Build the stack for a voice provider (and survey config overrides)."""
    opened: list[tuple[TestClient, redis.Redis]] = []

    def build(voice: str, **overrides: str) -> Stack:
        set_worker_env(
            monkeypatch,
            db_url,
            fake_provider.url,
            at_number=AT_NUMBER,
            twilio_number=TWILIO_NUMBER,
            VENTANILLA_VOICE_PROVIDER=voice,
        )
        config = survey_config(**overrides)
        env = app_env(db_url, redis_url, VENTANILLA_VOICE_PROVIDER=voice, AT_VOICE_NUMBER=AT_NUMBER)
        client = TestClient(create_app(load_settings(env), config), base_url=PUBLIC_URL)
        client.__enter__()
        connection = redis.Redis.from_url(redis_url)
        opened.append((client, connection))
        token = admin_token(db_url, config.departments)
        return Stack(
            client,
            db_url,
            connection,
            config,
            fake_provider,
            voice,
            token,
            {"Authorization": f"Bearer {token}"},
        )

    yield build
    for client, connection in opened:
        client.__exit__(None, None, None)
        connection.close()
    jobs.dispose_engines()


# ---------------------------------------------------------------- walks
def test_twilio_walk_repeats_once_then_keeps_the_rating(stack_for: Any) -> None:
    stack: Stack = stack_for("twilio")
    number = stack.open_case()
    stack.close(number)
    assert stack.survey().channel == "voice"
    stack.make_due()
    stack.burst()
    (placed,) = stack.fake.calls
    assert (placed.provider, placed.to, placed.from_) == ("twilio", CITIZEN, TWILIO_NUMBER)
    survey = stack.survey()
    assert placed.form["Url"] == f"{PUBLIC_URL}/webhooks/twilio/survey?survey={survey.id}"
    assert placed.form["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/call-status"
    assert (survey.status, survey.channel) == ("asked", "voice")
    assert not stack.survey_sms()  # asked by voice only

    call = stack.answer(placed.ref)
    assert isinstance(call, TwilioSurveyCall)
    question = call.last
    gather = question.find("Gather")
    assert gather is not None and gather.attrib["numDigits"] == "1"
    assert gather.attrib["actionOnEmptyResult"] == "true"
    say = gather.find("Say")
    assert say is not None and (say.attrib["language"], say.attrib["voice"]) == (
        "es-MX",
        "Polly.Mia",
    )
    assert "Tarjeta Alimentar" in said(question) and "del 1, muy mal, al 5" in said(question)
    assert stack.calls()[0].status == "answered"

    again = call.press("9")  # not 1-5: the question once more
    assert "No entendimos" in said(again)
    second = again.find("Gather")
    assert second is not None and "step=2&keyed=1" in second.attrib["action"]
    thanks = call.press("4")
    assert "Gracias por su respuesta" in said(thanks)
    assert [child.tag for child in thanks] == ["Say", "Hangup"]
    # Twilio redelivers the same step: the same words, nothing kept twice.
    call.post(second.attrib["action"], msg="Gather End", FinishedOnKey="", Digits="4")
    assert call.bodies[-1] == call.bodies[-2]

    survey = stack.survey()
    assert (survey.status, survey.rating, survey.low_score) == ("done", 4, False)
    assert len(stack.events("survey_rating")) == 1
    detail = stack.client.get(f"/api/v1/cases/{number}", headers=stack.headers).json()
    assert detail["survey"]["rating"] == 4
    stack.hang_up(call)
    assert stack.calls()[0].status == "completed"
    stack.burst()  # rated: nothing follows
    assert len(stack.fake.calls) == 1 and not stack.survey_sms()


def test_at_walk_low_score_reaches_the_follow_up_list(stack_for: Any) -> None:
    stack: Stack = stack_for("africastalking")
    ref = stack.closed_and_called()
    (placed,) = stack.fake.calls
    assert (placed.provider, placed.from_) == ("africastalking", AT_NUMBER)
    assert stack.calls()[0].provider_ref == ref

    call = stack.answer(ref)
    assert isinstance(call, AtSurveyCall)
    get_digits = call.last.find("GetDigits")
    assert get_digits is not None and get_digits.attrib["numDigits"] == "1"
    url = get_digits.attrib["callbackUrl"]
    assert url.startswith(f"{PUBLIC_URL}/webhooks/africastalking/survey?token={AT_TOKEN}&")
    assert "Tarjeta Alimentar" in said(call.last)
    assert stack.calls()[0].status == "answered"
    # A request for another call, or without the token, is refused and changes nothing.
    other = AtSurveyCall(stack.client, "ATVId_not_ours")
    refused = stack.client.post(
        _path(url), data={**other.fields, "isActive": "1", "dtmfDigits": "5"}
    )
    assert refused.status_code == 404
    no_token = stack.client.post(
        _path(url).replace(f"token={AT_TOKEN}", "token=wrong"),
        data={**call.fields, "isActive": "1", "dtmfDigits": "5"},
    )
    assert no_token.status_code == 403

    low = call.press("2")
    assert "Lamentamos" in said(low) and low.find("GetDigits") is None
    first = call.last_body
    call.post(_path(url), dtmfDigits="2")  # redelivered
    assert call.last_body == first
    call.end()
    assert stack.calls()[0].status == "completed"

    survey = stack.survey()
    assert (survey.status, survey.rating, survey.low_score) == ("done", 2, True)
    (event,) = stack.events("survey_rating")
    assert event.data == {"rating": 2, "low": True, "channel": "voice"}
    follow = stack.client.get("/api/v1/surveys/follow-ups", headers=stack.headers).json()
    assert [(f["rating"], f["department"]) for f in follow["items"]] == [(2, "ALIM")]
    stack.burst()
    assert len(stack.fake.calls) == 1 and not stack.survey_sms()


def test_case_that_came_by_voice_is_surveyed_by_voice(stack_for: Any) -> None:
    """The citizen texted first (SMS is their channel) but opened this case by calling."""
    stack: Stack = stack_for("africastalking")
    stack.text("Hola", CITIZEN)
    inbound = AtSurveyCall(stack.client, "ATVId_inbound_case")
    inbound.fields.update(direction="Inbound", callerNumber=CITIZEN, destinationNumber=AT_NUMBER)
    inbound.answer()
    inbound.press("1")
    inbound.press("4")  # urgent categories come first: 4 is Tarjeta Alimentar
    record = inbound.last.find("Record")
    assert record is not None
    inbound.post(
        _path(record.attrib["callbackUrl"]),
        recordingUrl="https://voice.example.test/rec.mp3",
        durationInSeconds="20",
    )
    inbound.end()
    with Db(stack.db_url) as db:
        case = next(c for c in db.cases() if c.channel == "voice")
        assert db.contacts()[0].preferred_channel == "sms"
    stack.close(case.tracking_number)
    with Db(stack.db_url) as db, Session(db.engine) as session:
        survey = session.scalars(select(Survey).where(Survey.case_id == case.id)).one()
        assert survey.channel == "voice"


def test_twilio_refused_signature_and_bad_urls_change_nothing(stack_for: Any) -> None:
    stack: Stack = stack_for("twilio")
    ref = stack.closed_and_called()
    survey_id = stack.survey().id
    path = f"/webhooks/twilio/survey?survey={survey_id}"
    form = twilio_call_fields(ref)
    bad = stack.client.post(path, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})
    assert bad.status_code == 403
    for query, reason in [
        ("survey=x", "survey must be a survey id"),
        (f"survey={survey_id}&step=7", "step must be 0 to 2"),
        (f"survey={survey_id}&step=1&keyed=2", "keyed must be 0 or 1"),
    ]:
        signed = f"/webhooks/twilio/survey?{query}"
        response = stack.client.post(
            signed, data=form, headers={"X-Twilio-Signature": sign(signed, form)}
        )
        assert (response.status_code, response.text) == (400, reason)
    # A signed request naming another survey than the call's own is not answered.
    other = f"/webhooks/twilio/survey?survey={survey_id + 1}"
    response = stack.client.post(
        other, data=form, headers={"X-Twilio-Signature": sign(other, form)}
    )
    assert response.status_code == 404
    assert stack.calls()[0].status == "placed" and stack.survey().status == "asked"


# ---------------------------------------------------------------- no answer, retry, fallbacks
@pytest.mark.parametrize("voice", PROVIDERS)
def test_no_answer_is_retried_once_later_then_asked_by_sms(stack_for: Any, voice: str) -> None:
    stack: Stack = stack_for(voice)
    first = stack.closed_and_called()
    stack.no_answer(first)
    assert stack.calls()[0].status == "unanswered"
    stack.burst()  # the retry is written for later, not dialled now
    assert len(stack.fake.calls) == 1
    retry = stack.calls()[1]
    assert (retry.kind, retry.status, retry.survey_id) == ("survey", "pending", stack.survey().id)
    wait = retry.next_attempt_at - datetime.now(UTC)
    assert timedelta(minutes=118) < wait <= timedelta(minutes=120)
    stack.burst()  # housekeeping again: still one retry
    assert len(stack.calls()) == 2

    stack.make_due()
    stack.burst()
    assert len(stack.fake.calls) == 2
    second = stack.fake.calls[1].ref
    stack.no_answer(second)
    stack.burst()  # no third call: the same survey by SMS
    assert len(stack.fake.calls) == 2 and len(stack.calls()) == 2
    survey = stack.survey()
    assert (survey.status, survey.channel, survey.fallback_from) == ("asked", "sms", "voice")
    (question,) = stack.survey_sms()
    assert question.to_address == CITIZEN and "1 (muy mal) al 5" in question.body
    stack.burst()
    assert len(stack.survey_sms()) == 1  # asked once

    assert "que podemos mejorar" in stack.text("5")
    survey = stack.survey()
    assert (survey.status, survey.rating) == ("rated", 5)
    with Db(stack.db_url) as db:
        assert len(db.cases()) == 1  # the answer opened nothing
    kinds = [e.data for e in stack.events("survey_fallback")]
    assert kinds == [{"from": "voice", "to": "sms"}]
    assert [e.data["call"] for e in stack.events("survey_called")] == [1, 2]  # type: ignore[index]


def test_without_sms_fallback_an_unanswered_voice_survey_expires(stack_for: Any) -> None:
    stack: Stack = stack_for("twilio", voice_to_sms_fallback="false")
    stack.no_answer(stack.closed_and_called())
    stack.burst()
    stack.make_due()
    stack.burst()
    stack.no_answer(stack.fake.calls[1].ref)
    stack.burst()
    survey = stack.survey()
    assert (survey.status, survey.reason) == ("expired", "no_answer")
    assert not stack.survey_sms() and len(stack.fake.calls) == 2
    scores = stack.client.get("/api/v1/surveys/scores?by=all", headers=stack.headers).json()
    assert [(i["asked"], i["answered"]) for i in scores["items"]] == [(1, 0)]


@pytest.mark.parametrize(
    ("voice", "status", "body"),
    [
        ("twilio", 400, {"code": 21217, "message": "Phone number is not valid", "status": 400}),
        ("africastalking", 200, {"entries": [{"phoneNumber": CITIZEN, "status": "Invalid"}]}),
    ],
)
def test_call_refused_by_the_provider_goes_to_sms_at_once(
    stack_for: Any, voice: str, status: int, body: dict[str, Any]
) -> None:
    stack: Stack = stack_for(voice)
    stack.fake.fail_next(voice, status, body)
    stack.close(stack.open_case())
    stack.make_due()
    stack.burst()
    assert stack.fake.calls == [] and stack.calls()[0].status == "failed"
    stack.burst()  # the failed call is read: no retry of a refused call, the SMS instead
    assert len(stack.calls()) == 1
    survey = stack.survey()
    assert (survey.channel, survey.fallback_from) == ("sms", "voice")
    assert len(stack.survey_sms()) == 1


def test_picked_up_but_silent_is_not_called_again_but_asked_by_sms(stack_for: Any) -> None:
    stack: Stack = stack_for("africastalking")
    call = stack.answer(stack.closed_and_called())
    assert isinstance(call, AtSurveyCall)
    again = call.silence()
    assert "No entendimos" in said(again)
    thanks = call.silence()
    assert "Gracias" in said(thanks) and thanks.find("GetDigits") is None
    call.end()
    assert stack.survey().status == "asked"
    stack.burst()
    assert len(stack.fake.calls) == 1
    survey = stack.survey()
    assert (survey.channel, survey.fallback_from) == ("sms", "voice")
    assert len(stack.survey_sms()) == 1


def test_wrong_keys_twice_end_the_survey_as_unclear(stack_for: Any) -> None:
    stack: Stack = stack_for("twilio")
    call = stack.answer(stack.closed_and_called())
    assert isinstance(call, TwilioSurveyCall)
    call.press("8")
    assert "Gracias" in said(call.press(""))  # silence after a wrong key: still unclear
    stack.hang_up(call)
    stack.burst()
    survey = stack.survey()
    assert (survey.status, survey.reason, survey.rating) == ("done", "unclear", None)
    assert not stack.survey_sms() and len(stack.fake.calls) == 1


def test_sms_survey_unanswered_gets_one_call_then_keypad_rating(stack_for: Any) -> None:
    stack: Stack = stack_for("africastalking")
    stack.close(stack.open_case(prefers_voice=False))
    stack.make_due()
    stack.burst()
    assert len(stack.survey_sms()) == 1 and stack.fake.calls == []
    stack.burst()  # not 24 hours yet
    assert stack.fake.calls == []
    with Db(stack.db_url) as db, db.engine.begin() as conn:
        conn.execute(update(Survey).values(asked_at=datetime.now(UTC) - timedelta(hours=25)))
    stack.burst()
    (placed,) = stack.fake.calls
    survey = stack.survey()
    assert (survey.channel, survey.fallback_from, survey.status) == ("voice", "sms", "asked")
    call = stack.answer(placed.ref)
    assert "Gracias por su respuesta" in said(call.press("5"))
    stack.hang_up(call)
    survey = stack.survey()
    assert (survey.status, survey.rating) == ("done", 5)
    with Db(stack.db_url) as db:
        assert db.contacts()[0].pending_survey_id is None
    stack.burst()
    assert len(stack.fake.calls) == 1
    stack.text("Necesito un turno para el DNI")  # no longer a survey answer: a new case
    with Db(stack.db_url) as db:
        assert len(db.cases()) == 2


def test_sms_answer_before_the_fallback_call_is_dialled_cancels_it(
    stack_for: Any, db_url: str
) -> None:
    stack: Stack = stack_for("twilio", sms_to_voice_after_hours="1")
    stack.close(stack.open_case(prefers_voice=False))
    stack.make_due()
    stack.burst()
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        later = datetime.now(UTC) + timedelta(hours=2)
        counts = follow_up(session, stack.config, "outbox", "twilio", later)
        assert counts.to_voice == 1
    engine.dispose()
    assert stack.calls()[0].status == "pending"
    stack.text("4 muy bien")
    assert stack.calls()[0].status == "cancelled"
    stack.make_due()
    stack.burst()
    assert stack.fake.calls == []
    assert stack.survey().rating == 4


# ---------------------------------------------------------------- opt-out, quiet hours, expiry
def test_opted_out_citizen_is_never_called(stack_for: Any) -> None:
    stack: Stack = stack_for("twilio")
    stack.close(stack.open_case())
    stack.text("BAJA")
    stack.make_due()
    stack.burst()
    assert stack.fake.calls == [] and stack.calls() == []
    assert (stack.survey().status, stack.survey().reason) == ("skipped", "opted_out")


@pytest.mark.parametrize("voice", PROVIDERS)
def test_opt_out_after_a_missed_call_stops_the_retry(stack_for: Any, voice: str) -> None:
    stack: Stack = stack_for(voice)
    stack.no_answer(stack.closed_and_called())
    stack.burst()  # the retry is written
    stack.text("BAJA")
    stack.make_due()
    stack.burst()
    assert len(stack.fake.calls) == 1  # the retry was not dialled
    assert [c.status for c in stack.calls()] == ["unanswered", "cancelled"]
    stack.burst()  # housekeeping reads the cancelled call
    survey = stack.survey()
    assert (survey.status, survey.reason) == ("skipped", "opted_out")
    assert not stack.survey_sms()


def test_quiet_hours_hold_retries_and_fallbacks_and_voice_surveys_expire(
    stack_for: Any, db_url: str
) -> None:
    stack: Stack = stack_for("twilio")
    stack.no_answer(stack.closed_and_called())
    config = load_config(env={})  # the shipped quiet hours, 21:00-09:00
    zone = config.timezone
    night = (datetime.now(zone) + timedelta(days=1)).replace(hour=23, minute=30)
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        assert follow_up(session, config, "outbox", "twilio", night.astimezone(UTC)).retried == 1
    retry = stack.calls()[1]
    due = retry.next_attempt_at.astimezone(zone)
    assert (due.date(), due.hour, due.minute) == (night.date() + timedelta(days=1), 9, 0)
    # The retry rings out too: at night the SMS waits for the morning.
    with engine.begin() as conn:
        conn.execute(
            update(OutboundCall).where(OutboundCall.id == retry.id).values(status="unanswered")
        )
    with Session(engine) as session, session.begin():
        assert follow_up(session, config, "outbox", "twilio", night.astimezone(UTC)).to_sms == 0
        morning = (night + timedelta(hours=10)).astimezone(UTC)
        assert follow_up(session, config, "outbox", "twilio", morning).to_sms == 1
    assert len(stack.survey_sms()) == 1

    # A voice survey whose call never comes back (the outbox provider only records calls)
    # ends at its expiry.
    with Db(db_url) as db, Session(db.engine) as session, session.begin():
        case = session.scalars(select(Case)).one()
        session.add(
            Survey(
                case_id=_another_case(session, case),
                contact_id=case.contact_id,
                channel="voice",
                language="es",
                status="asked",
                due_at=night,
                asked_at=night,
                expires_at=night + timedelta(hours=72),
                created_at=night,
                updated_at=night,
            )
        )
    with Session(engine) as session, session.begin():
        counts = follow_up(session, config, "outbox", "outbox", night + timedelta(hours=73))
        assert counts.expired == 1
    with Db(db_url) as db, Session(db.engine) as session:
        statuses = [s.status for s in session.scalars(select(Survey).order_by(Survey.id))]
        assert statuses == ["asked", "expired"]
    engine.dispose()


def _another_case(session: Session, case: Case) -> int:
    other = Case(
        tracking_number="9" * 10,
        contact_id=case.contact_id,
        channel="voice",
        category=case.category,
        department=case.department,
        status="closed",
        created_at=case.created_at,
        updated_at=case.updated_at,
    )
    session.add(other)
    session.flush()
    return other.id


def test_send_due_surveys_without_a_voice_provider_asks_by_sms(stack_for: Any, db_url: str) -> None:
    """Callers that name no voice provider keep the SMS survey (the function's old behaviour)."""
    stack: Stack = stack_for("twilio")
    stack.close(stack.open_case())
    stack.make_due()
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        assert send_due_surveys(session, stack.config, "outbox", datetime.now(UTC)).asked == 1
    engine.dispose()
    assert stack.survey().channel == "sms" and len(stack.survey_sms()) == 1
    assert stack.calls() == []
