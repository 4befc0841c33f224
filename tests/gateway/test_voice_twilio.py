"""Twilio voice IVR over HTTP, on SQLite and PostgreSQL: scripted calls through every path,
each step signed as Twilio signs it and shaped as recorded (tests/providers/twilio holds the
recorded requests and checks each one alone); TwiML read with xml.etree."""

from __future__ import annotations

import itertools
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import load_config
from casestore.menu_actions import spoken_tracking
from casestore.models import CallbackRequest, Case
from casestore.tracking import generate
from gateway.app import create_app
from gateway.settings import load_settings
from ivr.menu import load_menu
from tests.conftest import app_env
from tests.helpers import PUBLIC_URL, Db, counts, sign
from tests.providers.harness import load_table
from tests.settings import REDIS_PREFIX

# The recorded requests of tests/providers/twilio: a new call, and the fields Twilio adds at
# each follow-up step ("step: ..." cases).
VOICE_TABLE = load_table(
    Path(__file__).parents[1] / "providers" / "twilio" / "testdata" / "voice.json"
)
CALL = VOICE_TABLE.case("mobile caller, Argentina").form()
MENU = load_menu(load_config(env={}))
VOICE = "/webhooks/twilio/voice"
RECORDING = (
    "https://api.twilio.com/2010-04-01/Accounts/AC3f0a9c2e7b1d4e6f8a0b2c4d6e8f0a1b"
    "/Recordings/RE{:032x}"
)
_sids = itertools.count(1)


def step_fields(step: str) -> dict[str, str]:
    """What Twilio adds to (or changes in) the call's fields at `step`, as recorded."""
    form = VOICE_TABLE.case(f"step: {step}").form()
    return {name: value for name, value in form.items() if CALL.get(name) != value}


def category_key(code: str) -> str:
    index = [c.code for c in MENU.categories].index(code)
    assert index < 9, "the walks pick categories on the first spoken page"
    return str(index + 1)


class Twiml:
    """A TwiML answer, parsed."""

    def __init__(self, response: Any) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.xml = response.text
        self.root = ET.fromstring(response.text)
        assert self.root.tag == "Response"

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    @property
    def says(self) -> list[str]:
        return [say.text or "" for say in self.root.iter("Say")]

    @property
    def text(self) -> str:
        return " ".join(self.says)

    def one(self, tag: str) -> ET.Element:
        found = self.root.find(tag)
        assert found is not None, f"no <{tag}> in {self.xml}"
        return found


class Caller:
    """A phone calling the IVR: posts what Twilio would post, signed, to the URLs it was given."""

    def __init__(self, client: TestClient, caller: str = "+5491155550101") -> None:
        self.client = client
        self.sid = f"CA{next(_sids):032x}"
        self.form = dict(CALL)
        self.form.update(CallSid=self.sid, From=caller, Caller=caller)
        self.last: Twiml | None = None
        self.queued: ET.Element | None = None  # the <Enqueue> the caller is waiting in

    def post(self, url: str, extra: dict[str, str] | None = None) -> Any:
        path = url.removeprefix(PUBLIC_URL)
        form = {**self.form, **(extra or {})}
        return self.client.post(path, data=form, headers={"X-Twilio-Signature": sign(path, form)})

    def _go(self, url: str, extra: dict[str, str] | None = None) -> Twiml:
        self.last = Twiml(self.post(url, extra))
        enqueue = self.last.root.find("Enqueue")  # (an Element without children is falsy)
        if enqueue is not None:
            self.queued = enqueue
        return self.last

    def dial(self) -> Twiml:
        twiml = self._go(VOICE)
        self.form["CallStatus"] = "in-progress"
        return twiml

    def press_form(self, digits: str) -> tuple[str, dict[str, str]]:
        assert self.last is not None
        action = self.last.one("Gather").get("action") or ""
        return action, dict(step_fields("gather"), Digits=digits)

    def press(self, digits: str) -> Twiml:
        return self._go(*self.press_form(digits))

    def record(self, url: str) -> Twiml:
        assert self.last is not None
        action = self.last.one("Record").get("action") or ""
        extra = dict(step_fields("record"), RecordingUrl=url)
        return self._go(action, extra)

    def wait(self, **queue: str) -> Twiml:
        assert self.queued is not None
        url = self.queued.get("waitUrl") or ""
        return self._go(url, {**step_fields("wait"), **queue})

    def leave_queue(self, result: str = "leave") -> Twiml:
        assert self.queued is not None
        url = self.queued.get("action") or ""
        return self._go(url, dict(step_fields("queue_result"), QueueResult=result))


def callbacks(db_url: str) -> list[CallbackRequest]:
    with Db(db_url) as db, Session(db.engine) as s:
        return list(s.scalars(select(CallbackRequest).order_by(CallbackRequest.id)))


def open_request(client: TestClient, caller: str, code: str = "habitat") -> str:
    """A full new request by phone; returns the tracking number it ends with."""
    call = Caller(client, caller)
    call.dial()
    call.press("1")
    call.press(category_key(code))
    twiml = call.record(RECORDING.format(next(_sids)))
    digits = [s for s in twiml.says if s.replace(",", "").replace(" ", "").isdigit()]
    return digits[0].replace(",", "").replace(" ", "")


@pytest.fixture
def closed_client(db_url: str, redis_url: str) -> Iterator[TestClient]:
    """The app with operators closed right now: open only one hour, on another weekday."""
    today = datetime.now(MENU.config.timezone).weekday()
    other = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
    env = app_env(db_url, redis_url, VENTANILLA__OPERATORS__HOURS=f'{{{other} = "09:00-10:00"}}')
    settings = load_settings(env)
    app = create_app(settings, load_config(env=settings.env))
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


# ---------------------------------------------------------------- the welcome
# (recorded payloads over HTTP: tests/providers/twilio/test_voice.py)


def test_main_menu_twiml(client: TestClient) -> None:
    twiml = Caller(client).dial()
    gather = twiml.one("Gather")
    assert gather.attrib == {
        "input": "dtmf",
        "numDigits": "1",
        "timeout": "6",
        "action": f"{PUBLIC_URL}{VOICE}?step=1",
        "method": "POST",
        "actionOnEmptyResult": "true",
    }
    (say,) = list(gather)
    assert say.tag == "Say" and say.attrib == {"language": "es-MX", "voice": "Polly.Mia"}
    assert say.text == (
        "Desarrollo Social. Elija una opcion. Nuevo pedido: presione 1. Estado de un pedido: "
        "presione 2. Hablar con una persona: presione 3. English: presione 9."
    )


# ---------------------------------------------------------------- signatures and bad requests


def test_every_step_is_signature_checked(client: TestClient, db_url: str, redis_url: str) -> None:
    call = Caller(client)
    call.dial()
    action, extra = call.press_form("1")
    form = {**call.form, **extra}
    path = action.removeprefix(PUBLIC_URL)
    before = counts(db_url)
    keys = set(redis.Redis.from_url(redis_url).keys(f"{REDIS_PREFIX}:*"))
    tampered = dict(form, Digits="2")
    unsigned_query = sign(VOICE, form)  # signed without ?step=1
    for data, signature in [
        (tampered, sign(path, form)),
        (form, unsigned_query),
        (form, sign(path, form, token="another-token")),
    ]:
        response = client.post(path, data=data, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 403
    assert client.post(path, data=form).status_code == 403
    for route in ("/wait?q=ATC&u=0", "/hold?q=ATC&u=0", "/queue?step=2&q=ATC&u=0", "/status"):
        assert client.post(VOICE + route, data=form).status_code == 403
    assert counts(db_url) == before
    assert (
        set(redis.Redis.from_url(redis_url).keys(f"{REDIS_PREFIX}:*")) == keys
    )  # no session moved, no answer kept
    assert "Elija el tema de su pedido." in call.press("1").text  # the genuine one still works


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (VOICE + "?step=abc", "bad step"),
        (VOICE + "?step=0", "bad step"),
        (VOICE + "/wait?q=NOPE&u=0", "unknown queue"),
        (VOICE + "/hold?q=ATC&u=2", "bad urgent flag"),
        (VOICE + "/queue?q=ATC&u=0", "bad step"),
        (VOICE + "/queue?step=3&q=ATC&u=0", "unknown QueueResult"),
    ],
)
def test_malformed_urls_refused(client: TestClient, db_url: str, url: str, reason: str) -> None:
    call = Caller(client)
    before = counts(db_url)
    response = call.post(url, {"QueueResult": "exploded"} if "queue" in url else None)
    assert response.status_code == 400 and reason in response.text
    assert counts(db_url) == before


@pytest.mark.parametrize("route", ["", "?step=4", "/wait?q=ATC&u=0", "/status"])
def test_missing_call_sid_or_from_refused(client: TestClient, route: str) -> None:
    for missing in ("CallSid", "From"):
        call = Caller(client)
        del call.form[missing]
        response = call.post(VOICE + route)
        assert response.status_code == 400 and f"missing field: {missing}" in response.text


# ---------------------------------------------------------------- new request


def test_new_request_with_recording(client: TestClient, db_url: str) -> None:
    call = Caller(client, "+5491155550111")
    call.dial()
    categories = call.press("1")
    gather = categories.one("Gather")
    # 11 categories: nine spoken, then "98" for more: two keys, # or a short pause ends one.
    assert (gather.get("numDigits"), gather.get("finishOnKey"), gather.get("timeout")) == (
        "2",
        "#",
        "4",
    )
    assert "Mas: presione 9 8." in categories.text and "Volver: presione 0." in categories.text
    describe = call.press(category_key("habitat"))
    assert describe.verbs == ["Say", "Record", "Redirect"]
    assert "Su mensaje queda grabado" in describe.says[0]
    record = describe.one("Record")
    step_url = f"{PUBLIC_URL}{VOICE}?step=3&rec=1"
    assert record.attrib == {
        "action": step_url,
        "method": "POST",
        "maxLength": "120",
        "timeout": "5",
        "finishOnKey": "#",
        "playBeep": "true",
    }
    assert describe.one("Redirect").text == step_url
    recording = RECORDING.format(0xA1)
    created = call.record(recording)

    with Db(db_url) as db:
        (case,) = db.cases()
        number = case.tracking_number
        assert (case.channel, case.category, case.department, case.urgent) == (
            "voice",
            "habitat",
            "HAB",
            False,
        )
        (inbound, sms_copy) = db.interactions()
        assert inbound.media_urls == [recording]
        assert (inbound.direction, inbound.channel, inbound.case_id) == ("in", "voice", case.id)
        assert inbound.provider_ref == f"{call.sid}:3"
        (outbox,) = db.outbox()
        assert outbox.to_address == "+5491155550111" and outbox.kind == "receipt"
        assert number in outbox.body.replace(" ", "")
        assert sms_copy.id == outbox.interaction_id

    # Spoken digit by digit, twice, each time followed by a pause; then "press 1 to repeat".
    gather = created.one("Gather")
    assert gather.get("numDigits") == "1"
    spoken = spoken_tracking(number)
    kinds = [(child.tag, child.text) for child in gather]
    assert kinds.count(("Say", spoken)) == 2
    assert [kinds[i + 1][0] for i, k in enumerate(kinds) if k == ("Say", spoken)] == ["Pause"] * 2
    assert "Para escucharlo otra vez presione 1." in created.says[-1]
    assert number not in created.xml  # never as one long number a voice would read as such

    again = call.press("1")
    assert again.says.count(spoken) == 2
    bye = call.press("")
    assert bye.verbs == ["Say", "Hangup"] and "Hasta luego" in bye.text
    with Db(db_url) as db:
        assert len(db.cases()) == 1


def test_second_page_of_categories(client: TestClient, db_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("1")
    page = call.press("98")
    assert page.one("Gather").get("numDigits") == "1"  # no two-digit key on the last page
    assert "Consulta general: presione 2." in page.text
    call.press("2")
    call.record(RECORDING.format(0xB2))
    with Db(db_url) as db:
        assert db.cases()[0].category == "consulta-general"


def test_no_recording_reprompts(client: TestClient, db_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("1")
    call.press(category_key("pensiones"))
    # Twilio skipped the action (nothing recorded) and followed the <Redirect>: no RecordingUrl.
    redirect = call.last.one("Redirect").text if call.last else ""
    again = call._go(redirect or "")
    assert again.verbs == ["Say", "Record", "Redirect"]
    assert again.says[0].startswith("Opcion no valida.")
    assert again.one("Record").get("action", "").endswith("?step=4&rec=1")
    with Db(db_url) as db:
        assert db.cases() == []


@pytest.mark.parametrize("caller", ["anonymous", "+266696687", "restricted", "+442079460123"])
def test_withheld_and_landline_callers_get_the_whole_ivr_but_no_sms(
    client: TestClient, db_url: str, caller: str
) -> None:
    number = open_request(client, caller)
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.tracking_number == number
        assert db.outbox() == []
        withheld = caller != "+442079460123"
        assert (case.contact_id is None) == withheld
        assert [c.phone for c in db.contacts()] == ([] if withheld else [caller])


def test_urgent_request_goes_to_its_department_queue(client: TestClient, db_url: str) -> None:
    call = Caller(client, "+5491155550112")
    call.dial()
    call.press("1")
    urgent = call.press(category_key("violencia-genero"))
    assert urgent.verbs == ["Say", "Enqueue"]
    assert "llame al 9 1 1" in urgent.says[0]
    enqueue = urgent.one("Enqueue")
    assert enqueue.text == "GEN"
    assert enqueue.attrib == {
        "action": f"{PUBLIC_URL}{VOICE}/queue?step=3&q=GEN&u=1",
        "method": "POST",
        "waitUrl": f"{PUBLIC_URL}{VOICE}/wait?q=GEN&u=1",
        "waitUrlMethod": "POST",
    }
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.urgent, case.priority, case.department) == (True, "urgent", "GEN")
        assert db.interactions()[0].media_urls in (None, [])
        (sms,) = db.outbox()
        assert "URGENTE" in sms.body and sms.to_address == "+5491155550112"

    waiting = call.wait()
    assert waiting.one("Gather").get("action") == f"{PUBLIC_URL}{VOICE}/hold?q=GEN&u=1"
    left = Twiml(call.post(waiting.one("Gather").get("action") or "", {"Digits": "1"}))
    assert left.verbs == ["Leave"]
    done = call.leave_queue("leave")
    assert done.verbs == ["Say", "Hangup"] and "Un operador lo llamara" in done.text
    (callback,) = callbacks(db_url)
    assert (callback.department, callback.urgent, callback.reason, callback.phone) == (
        "GEN",
        True,
        "queue",
        "+5491155550112",
    )


# ---------------------------------------------------------------- status


def test_status_by_typing_with_check_digit(client: TestClient, db_url: str) -> None:
    number = open_request(client, "+5491155550113")
    call = Caller(client, "+5491155550114")  # another phone: nothing to offer, type it
    call.dial()
    ask = call.press("2")
    gather = ask.one("Gather")
    assert (gather.get("numDigits"), gather.get("finishOnKey"), gather.get("timeout")) == (
        "10",
        "#",
        "10",
    )
    swapped = next(
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(9)
        if number[i] != number[i + 1]
    )
    mistyped = call.press(swapped)
    assert mistyped.says[0].startswith("Ese numero tiene un error de tipeo.")
    told = call.press(number)
    assert told.verbs == ["Say", "Say", "Pause", "Say", "Hangup"]
    assert told.says == [
        "Pedido",
        spoken_tracking(number),
        "Estado: recibido. Area: Hábitat y Emergencia Social.",
    ]
    with Db(db_url) as db:
        assert len(db.cases()) == 1


def test_status_three_wrong_numbers_then_goodbye(client: TestClient) -> None:
    call = Caller(client)
    call.dial()
    call.press("2")
    unknown = call.press(generate(10))
    assert unknown.says[0].startswith("No encontramos un pedido con ese numero.")
    assert call.press("123").says[0].startswith("Opcion no valida.")
    last = call.press(generate(10))
    assert last.verbs == ["Say", "Hangup"]
    assert "No encontramos" in last.text and "Hasta luego" in last.text


def test_status_of_latest_open_case_without_typing(client: TestClient, db_url: str) -> None:
    first = open_request(client, "+5491155550115", "pensiones")
    latest = open_request(client, "+5491155550115", "comedores")
    with Db(db_url) as db, db.engine.begin() as conn:  # the older one is already closed
        conn.execute(update(Case).where(Case.tracking_number == first).values(status="closed"))
    call = Caller(client, "+541155550115")  # the same mobile, presented without the 9
    call.dial()
    offer = call.press("2")
    assert offer.one("Gather").get("numDigits") == "1"
    assert "Tiene un pedido abierto. Escuchar su estado: presione 1." in offer.text
    told = call.press("1")
    assert spoken_tracking(latest) in told.says
    assert "Asistencia Alimentaria" in told.text and told.verbs[-1] == "Hangup"


# ---------------------------------------------------------------- operator


def test_operator_queue_wait_timeout_and_call_back(client: TestClient, db_url: str) -> None:
    call = Caller(client, "+5491155550116")
    call.dial()
    queued = call.press("3")
    assert queued.verbs == ["Enqueue"] and queued.one("Enqueue").text == "ATC"
    waiting = call.wait(QueuePosition="3", QueueTime="42", AvgQueueTime="130")
    gather = waiting.one("Gather")
    assert (gather.get("numDigits"), gather.get("timeout")) == ("1", "15")
    assert gather.get("actionOnEmptyResult") is None  # silence: back to waiting
    assert waiting.text == (
        "Usted es el numero 3 en la fila. Espera estimada: 2 minutos. "
        "Para que lo llamemos luego presione 1."
    )
    late = call.wait(QueueTime="300")
    assert late.text == "Todos los operadores siguen ocupados. Para que lo llamemos presione 1."
    other = Twiml(call.post(gather.get("action") or "", {"Digits": "5"}))
    assert other.verbs == ["Say"] and other.text == "Opcion no valida."
    assert callbacks(db_url) == []
    left = Twiml(call.post(gather.get("action") or "", {"Digits": "1"}))
    assert left.verbs == ["Leave"]
    done = call.leave_queue("leave")
    assert "Registramos su pedido de llamada" in done.text and done.verbs[-1] == "Hangup"
    (callback,) = callbacks(db_url)
    assert (callback.department, callback.urgent, callback.reason, callback.channel) == (
        "ATC",
        False,
        "queue",
        "voice",
    )
    assert callback.phone == "+5491155550116" and callback.status == "pending"
    redelivered = call.leave_queue("leave")
    assert redelivered.xml == done.xml and len(callbacks(db_url)) == 1


def test_operator_bridged_then_goodbye(client: TestClient, db_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("3")
    bye = call.leave_queue("bridged")
    assert bye.verbs == ["Say", "Hangup"] and "Hasta luego" in bye.text
    assert callbacks(db_url) == []


def test_caller_hung_up_in_queue(client: TestClient, db_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("3")
    assert call.leave_queue("hangup").verbs == []
    assert callbacks(db_url) == []


def test_withheld_caller_cannot_leave_for_a_call_back(client: TestClient, db_url: str) -> None:
    call = Caller(client, "anonymous")
    call.dial()
    call.press("3")
    waiting = call.wait()
    stay = Twiml(call.post(waiting.one("Gather").get("action") or "", {"Digits": "1"}))
    assert stay.verbs == []  # still queued: there is no number to call back
    assert call.leave_queue("queue-full").verbs == ["Say", "Hangup"]
    assert callbacks(db_url) == []


def test_english_caller_waits_in_english(client: TestClient) -> None:
    call = Caller(client)
    call.dial()
    english = call.press("9")
    say = english.one("Gather").find("Say")
    assert say is not None and say.attrib == {"language": "en-US", "voice": "Polly.Joanna"}
    assert "New request: press 1." in english.text
    call.press("3")
    waiting = call.wait(QueuePosition="1", AvgQueueTime="20")
    assert waiting.text.startswith("You are number 1 in line. Expected wait: 1 minutes.")


def test_closed_hours_records_a_call_back(closed_client: TestClient, db_url: str) -> None:
    call = Caller(closed_client, "+5491155550117")
    call.dial()
    closed = call.press("3")
    assert closed.verbs == ["Say", "Hangup"]
    assert closed.text == "Ahora no hay operadores. Dejamos registrado su pedido de llamada."
    (callback,) = callbacks(db_url)
    assert (callback.department, callback.reason, callback.phone) == (
        "ATC",
        "menu",
        "+5491155550117",
    )


# ---------------------------------------------------------------- bad input, redelivery, expiry


def test_invalid_choice_three_times_then_goodbye(client: TestClient) -> None:
    call = Caller(client)
    call.dial()
    first = call.press("7")
    assert first.says[0].startswith("Opcion no valida. Elija una opcion.")
    assert first.one("Gather").get("action") == f"{PUBLIC_URL}{VOICE}?step=2"
    second = call.press("")  # silence: Gather posts an empty Digits
    assert second.says[0].startswith("Opcion no valida.")
    third = call.press("*")
    assert third.verbs == ["Say", "Hangup"]
    assert third.text == "Opcion no valida. Gracias por comunicarse. Hasta luego."


def test_redelivered_steps_answer_the_same_and_create_nothing(
    client: TestClient, db_url: str
) -> None:
    call = Caller(client, "+5491155550118")
    first_dial = call.dial()
    assert Twiml(call.post(VOICE, {"CallStatus": "ringing"})).xml == first_dial.xml
    call.press("1")
    call.press(category_key("tarjeta-alimentar"))
    record_url = call.last.one("Record").get("action") if call.last else ""
    extra = dict(step_fields("record"), RecordingUrl=RECORDING.format(0xC3))
    created = Twiml(call.post(record_url or "", extra))
    before = counts(db_url)
    assert Twiml(call.post(record_url or "", extra)).xml == created.xml
    assert counts(db_url) == before
    # Twilio never sends one step twice with other keys; if it did, the first answer stands.
    assert Twiml(call.post(record_url or "", dict(extra, RecordingUrl=""))).xml == created.xml
    assert counts(db_url) == before


def test_concurrent_redeliveries_open_one_case(client: TestClient, db_url: str) -> None:
    call = Caller(client, "+5491155550119")
    call.dial()
    call.press("1")
    call.press(category_key("comedores"))
    url = call.last.one("Record").get("action") if call.last else ""
    extra = dict(step_fields("record"), RecordingUrl=RECORDING.format(0xD4))
    answers: list[str] = []

    def send() -> None:
        answers.append(call.post(url or "", extra).text)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 6 and len(set(answers)) == 1
    with Db(db_url) as db:
        assert len(db.cases()) == 1 and len(db.outbox()) == 1


def test_expired_session_starts_over(client: TestClient, redis_url: str, db_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("1")
    store = redis.Redis.from_url(redis_url)
    for key in store.keys(f"{REDIS_PREFIX}:menu:s:*"):
        store.delete(key)
    fresh = call.press(category_key("habitat"))
    assert fresh.one("Gather").get("numDigits") == "1"
    assert fresh.says[0].startswith("Desarrollo Social. Elija una opcion.")
    assert "Record" not in fresh.verbs
    call.press("2")  # and the walk goes on from the main menu
    assert "Ingrese el numero de seguimiento" in (call.last.text if call.last else "")
    with Db(db_url) as db:
        assert db.cases() == []


def test_status_callback_drops_the_session(client: TestClient, redis_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("2")
    store = redis.Redis.from_url(redis_url)
    assert store.exists(f"{REDIS_PREFIX}:menu:s:twilio:{call.sid}")
    ringing = Twiml(call.post(VOICE + "/status", {"CallStatus": "in-progress"}))
    assert ringing.verbs == [] and store.exists(f"{REDIS_PREFIX}:menu:s:twilio:{call.sid}")
    extra = step_fields("status")
    assert Twiml(call.post(VOICE + "/status", extra)).verbs == []
    assert not store.exists(f"{REDIS_PREFIX}:menu:s:twilio:{call.sid}")


def test_session_ttl_covers_a_long_queue_wait(client: TestClient, redis_url: str) -> None:
    call = Caller(client)
    call.dial()
    call.press("3")
    store = redis.Redis.from_url(redis_url)
    key = f"{REDIS_PREFIX}:menu:s:twilio:{call.sid}"
    store.expire(key, 5)
    call.wait(QueueTime="290")
    assert store.ttl(key) > 200  # every wait request renews it


def test_database_unreachable_is_503_and_answer_not_kept(
    redis_url: str, tmp_path: Path, sqlite_url: str
) -> None:
    gone = f"sqlite:///{tmp_path}/missing/dir/ventanilla.db"
    settings = load_settings(app_env(gone, redis_url))
    app = create_app(settings, load_config(env={}))
    with TestClient(app, base_url=PUBLIC_URL) as down:
        call = Caller(down)
        call.dial()  # the welcome needs no database
        action, extra = call.press_form("2")  # "2" looks for the caller's open cases
        assert call.post(action, extra).status_code == 503
        assert call.post(action, extra).status_code == 503  # a retry is tried again, not cached
    settings = load_settings(app_env(sqlite_url, redis_url))
    with TestClient(create_app(settings, load_config(env={})), base_url=PUBLIC_URL) as up:
        call.client = up
        retried = Twiml(call.post(action, extra))  # the menu did not move: still at "main"
        assert "Ingrese el numero de seguimiento" in retried.text


def test_redis_down_gets_an_apology_not_a_500(db_url: str) -> None:
    settings = load_settings(app_env(db_url, "redis://127.0.0.1:1/0"))
    with TestClient(create_app(settings, load_config(env={})), base_url=PUBLIC_URL) as client:
        sorry = Caller(client).dial()
    assert sorry.verbs == ["Say", "Hangup"] and "llame mas tarde" in sorry.text


def test_cached_answers_expire_with_the_session(client: TestClient, redis_url: str) -> None:
    call = Caller(client)
    call.dial()
    store = redis.Redis.from_url(redis_url)
    ttl = store.ttl(f"{REDIS_PREFIX}:menu:a:voice:{call.sid}:0")
    assert 0 < ttl <= int(MENU.config.raw["ivr"]["session_ttl_seconds"])
    assert timedelta(seconds=ttl) <= timedelta(minutes=5)
