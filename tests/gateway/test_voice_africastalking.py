"""Africa's Talking voice: the XML a caller's phone is given, and scripted calls over HTTP
through every path of the menu, on SQLite and PostgreSQL (the recorded callback bodies, parsed
and posted one by one, are in tests/providers/africastalking)."""

from __future__ import annotations

import itertools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config, load_config
from casestore.db import make_engine
from casestore.models import CallbackRequest
from casestore.tracking import format_tracking, parse_tracking
from gateway.app import create_app
from gateway.forms import BadRequest
from gateway.providers.africastalking.voice import Voice, render_screen
from gateway.routes.voice_africastalking import PATH, parse_step
from gateway.settings import load_settings
from ivr.machine import Action, Expect, Screen, State
from ivr.menu import load_menu
from tests.conftest import app_env
from tests.helpers import AT_TOKEN, PUBLIC_URL, Db, counts
from tests.settings import REDIS_PREFIX

FORM_TYPE = "application/x-www-form-urlencoded"
CALLER = "+5491155550041"
OUR_NUMBER = "+5491155559999"
RECORDING = "https://voice-recordings.example.test/3c5e0d1a.mp3"
_sessions = itertools.count(1)


# ---------------------------------------------------------------- the step in the URL
@pytest.mark.parametrize(
    ("query", "reason"),
    [({"step": "x"}, "step must be a number"), ({"step": "1", "in": "z"}, "in must be d or r")],
)
def test_bad_step_query_is_refused(query: dict[str, str], reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_step(query)


# ---------------------------------------------------------------- rendering
VOICE = Voice(
    voice="woman",
    digits_url=f"{PUBLIC_URL}{PATH}?token=T&step=2&in=d",
    recording_url=f"{PUBLIC_URL}{PATH}?token=T&step=2&in=r",
    recording_max_seconds=120,
    hold_music_url="https://media.example.test/espera.mp3",
)


def _xml(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text)


def test_choice_renders_as_getdigits_that_reads_the_options(config: Config) -> None:
    menu = load_menu(config)
    screen = Screen(
        State(channel="voice", language="es"),
        "Elija una opcion.",
        options=(("1", "Nuevo pedido"), ("98", "Mas")),
    )
    root = _xml(render_screen(menu, screen, VOICE))
    get_digits, redirect = list(root)
    assert get_digits.tag == "GetDigits"
    assert get_digits.attrib == {
        "numDigits": "2",
        "timeout": "10",
        "finishOnKey": "#",
        "callbackUrl": VOICE.digits_url,
    }
    (say,) = list(get_digits)
    assert say.attrib == {"voice": "woman", "playBeep": "false"}
    assert say.text == "Elija una opcion. Nuevo pedido: presione 1. Mas: presione 9 8."
    # Silence goes on to the next action: back to the same step, as "no input".
    assert (redirect.tag, redirect.text) == ("Redirect", VOICE.digits_url)


def test_recording_renders_as_record_with_the_description(config: Config) -> None:
    screen = Screen(
        State(channel="voice", language="es"), "Cuente su pedido.", expect=Expect.RECORDING
    )
    root = _xml(render_screen(load_menu(config), screen, VOICE))
    (record,) = list(root)
    assert record.attrib == {
        "finishOnKey": "#",
        "maxLength": "120",
        "trimSilence": "true",
        "playBeep": "true",
        "callbackUrl": VOICE.recording_url,
    }
    assert [c.text for c in record] == ["Cuente su pedido."]


def test_enqueue_says_a_notice_first_as_at_has_no_wait_url(config: Config) -> None:
    state = State(channel="voice", language="en")
    screen = Screen(state, "", expect=Expect.NOTHING, action=Action("enqueue", department="GEN"))
    root = _xml(render_screen(load_menu(config), screen, VOICE))
    say, enqueue = list(root)
    assert say.text == "Please hold. The first available person will answer."
    assert enqueue.attrib == {"name": "GEN", "holdMusic": VOICE.hold_music_url}


def test_end_says_and_the_document_ends_so_the_call_hangs_up(config: Config) -> None:
    screen = Screen(State(channel="voice", language="es"), "Hasta luego & gracias.", end=True)
    root = _xml(render_screen(load_menu(config), screen, VOICE))
    assert [(c.tag, c.text) for c in root] == [("Say", "Hasta luego & gracias.")]


# ---------------------------------------------------------------- a phone on the line
def _said(root: ET.Element) -> str:
    return " ".join(e.text or "" for e in root.iter("Say"))


class AtCall:
    """One caller's call as Africa's Talking drives it: each step posts to the URL we gave."""

    def __init__(
        self,
        client: TestClient,
        phone: str = CALLER,
        *,
        session_id: str | None = None,
        direction: str = "Inbound",
        destination: str = OUR_NUMBER,
    ) -> None:
        self.client = client
        self.session_id = session_id or f"ATVId_test{next(_sessions):08d}"
        self.fields = {
            "sessionId": self.session_id,
            "direction": direction,
            "callerNumber": phone,
            "destinationNumber": destination,
        }
        self.answers: list[ET.Element] = []
        self.bodies: list[str] = []

    @property
    def last(self) -> ET.Element:
        return self.answers[-1]

    def _post(self, url: str, **extra: str) -> ET.Element:
        response = self.client.post(url, data={**self.fields, "isActive": "1", **extra})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.bodies.append(response.text)
        self.answers.append(_xml(response.text))
        return self.last

    def start(self) -> ET.Element:
        return self._post(f"{PATH}?token={AT_TOKEN}")

    def press(self, digits: str) -> ET.Element:
        get_digits = self.last.find("GetDigits")
        assert get_digits is not None, _said(self.last)
        return self._post(get_digits.attrib["callbackUrl"], dtmfDigits=digits)

    def silence(self) -> ET.Element:
        redirect = self.last.find("Redirect")
        assert redirect is not None and redirect.text
        return self._post(redirect.text)

    def record(self, url: str = RECORDING) -> ET.Element:
        record = self.last.find("Record")
        assert record is not None, _said(self.last)
        return self._post(record.attrib["callbackUrl"], recordingUrl=url, durationInSeconds="41")

    def hang_up(self, **extra: str) -> str:
        form = {
            **self.fields,
            "isActive": "0",
            "durationInSeconds": "60",
            "currencyCode": "USD",
            "amount": "0.06",
            "callSessionState": "Completed",
            "hangupCause": "NORMAL_CLEARING",
            **extra,
        }
        response = self.client.post(f"{PATH}?token={AT_TOKEN}", data=form)
        assert response.status_code == 200
        return response.text


def session_alive(session_id: str, redis_url: str) -> bool:
    client = redis.Redis.from_url(redis_url)
    try:
        return bool(client.exists(f"{REDIS_PREFIX}:menu:s:africastalking:{session_id}"))
    finally:
        client.close()


def open_case_by_phone(client: TestClient, db_url: str, phone: str = CALLER) -> str:
    """Call, choose the first non-urgent category, record: the tracking number spoken."""
    call = AtCall(client, phone)
    call.start()
    call.press("1")
    call.press("4")  # urgent categories come first: 4 is Tarjeta Alimentar
    call.record()
    call.hang_up()
    with Db(db_url) as db:
        return db.cases()[-1].tracking_number


# ---------------------------------------------------------------- walks over HTTP
def test_new_request_is_recorded_opens_a_case_and_speaks_the_number_twice(
    client: TestClient, db_url: str, redis_url: str
) -> None:
    call = AtCall(client)
    welcome = call.start()
    assert "Desarrollo Social. Elija una opcion." in _said(welcome)
    assert "Nuevo pedido: presione 1." in _said(welcome)
    assert welcome.find("GetDigits").attrib["numDigits"] == "1"  # type: ignore[union-attr]

    categories = call.press("1")
    assert "Tarjeta Alimentar: presione 4." in _said(categories)
    assert categories.find("GetDigits").attrib["numDigits"] == "2"  # type: ignore[union-attr]

    describe = call.press("4")
    record = describe.find("Record")
    assert record is not None
    assert "Su mensaje queda grabado" in _said(describe)

    created = call.record()
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.channel, case.category, case.department) == (
            "voice",
            "tarjeta-alimentar",
            "ALIM",
        )
        (inbound, sms_copy) = db.interactions()
        assert inbound.media_urls == [RECORDING]
        (receipt,) = db.outbox()
        assert (receipt.kind, receipt.to_address) == ("receipt", CALLER)
        assert format_tracking(case.tracking_number) in receipt.body
    spoken = " ".join(case.tracking_number)
    assert _said(created).count(spoken) == 2
    assert "Para escucharlo otra vez presione 1." in _said(created)

    assert _said(call.press("1")).count(spoken) == 2  # "press 1 to repeat"
    goodbye = call.silence()
    assert _said(goodbye) == "Gracias por comunicarse. Hasta luego."
    assert goodbye.find("GetDigits") is None

    assert call.hang_up() == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert not session_alive(call.session_id, redis_url)


def test_caller_who_hangs_up_after_speaking_still_gets_a_case(
    client: TestClient, db_url: str, redis_url: str
) -> None:
    call = AtCall(client)
    call.start()
    call.press("1")
    call.press("5")
    assert call.last.find("Record") is not None
    # No "#": the caller hangs up; AT's last request carries the recording.
    assert call.hang_up(recordingUrl=RECORDING).endswith("<Response/>")
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.category == "comedores"
        assert db.interactions()[0].media_urls == [RECORDING]
        assert [m.kind for m in db.outbox()] == ["receipt"]  # the number comes by SMS
    assert not session_alive(call.session_id, redis_url)


def test_urgent_category_opens_an_urgent_case_and_queues_the_caller_at_once(
    client: TestClient, db_url: str
) -> None:
    call = AtCall(client)
    call.start()
    call.press("1")
    answer = call.press("1")  # the first category is an urgent one
    assert [e.tag for e in answer] == ["Say", "Enqueue"]
    assert answer.find("Enqueue").attrib == {"name": "GEN"}  # type: ignore[union-attr]
    assert "llame al 9 1 1" in _said(answer)
    assert "Aguarde en linea" in _said(answer)
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.urgent and case.department == "GEN"
        assert [m.kind for m in db.outbox()] == ["receipt"]


def test_status_of_the_callers_latest_open_case_without_typing(
    client: TestClient, db_url: str
) -> None:
    number = open_case_by_phone(client, db_url)
    call = AtCall(client)
    call.start()
    offer = call.press("2")
    assert "Tiene un pedido abierto." in _said(offer)
    told = call.press("1")
    assert "Estado: recibido. Area: Asistencia Alimentaria." in _said(told)
    assert told.find("GetDigits") is None
    assert number[:4] in _said(told).replace(" ", "")


def test_status_by_typed_number_mistyped_unknown_and_three_strikes(
    client: TestClient, db_url: str
) -> None:
    number = open_case_by_phone(client, db_url, "+5491155550077")  # someone else's case
    mistyped = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert parse_tracking(mistyped).status == "mistyped"
    call = AtCall(client)
    call.start()
    ask = call.press("2")
    assert ask.find("GetDigits").attrib["numDigits"] == "10"  # type: ignore[union-attr]
    assert "Ese numero tiene un error de tipeo." in _said(call.press(mistyped + "#"))
    told = call.press(number)
    assert "Estado: recibido" in _said(told)

    again = AtCall(client)
    again.start()
    again.press("2")
    for _ in range(2):
        assert again.press("123").find("GetDigits") is not None
    goodbye = again.press("123")
    assert goodbye.find("GetDigits") is None
    assert "Hasta luego" in _said(goodbye)


def test_talk_to_a_person_enqueues_in_the_operator_department(client: TestClient) -> None:
    call = AtCall(client)
    call.start()
    answer = call.press("3")
    assert answer.find("Enqueue").attrib == {"name": "ATC"}  # type: ignore[union-attr]
    assert _said(answer) == "Aguarde en linea, por favor. Lo atendera la primera persona libre."


@pytest.fixture
def closed_client(db_url: str, redis_url: str) -> Iterator[TestClient]:
    """The app with operators off duty today (they work one other day of the week)."""
    today = datetime.now(ZoneInfo("America/Argentina/Buenos_Aires")).weekday()
    other_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
    hours = f'{{ {other_day} = "09:00-17:00" }}'
    config = load_config(env={"VENTANILLA__OPERATORS__HOURS": hours})
    app = create_app(load_settings(app_env(db_url, redis_url)), config)
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


def test_outside_operator_hours_a_call_back_request_is_left(
    closed_client: TestClient, db_url: str
) -> None:
    call = AtCall(closed_client)
    call.start()
    answer = call.press("3")
    assert _said(answer) == "Ahora no hay operadores. Dejamos registrado su pedido de llamada."
    assert answer.find("Enqueue") is None
    engine = make_engine(db_url)
    with Session(engine) as session:
        (request,) = session.scalars(select(CallbackRequest)).all()
        assert (request.phone, request.department, request.channel) == (CALLER, "ATC", "voice")
    engine.dispose()


def test_three_invalid_choices_or_silences_end_politely(client: TestClient, db_url: str) -> None:
    call = AtCall(client)
    call.start()
    first = call.press("7")
    assert _said(first).startswith("Opcion no valida. Elija una opcion.")
    assert call.silence().find("GetDigits") is not None  # silence counts as an attempt
    goodbye = call.press("7")
    assert _said(goodbye) == "Opcion no valida. Gracias por comunicarse. Hasta luego."
    assert [e.tag for e in goodbye] == ["Say"]
    assert counts(db_url)["cases"] == 0


def test_redelivered_step_gets_the_same_answer_and_opens_one_case(
    client: TestClient, db_url: str
) -> None:
    call = AtCall(client)
    call.start()
    call.press("1")
    call.press("4")
    record_url = call.last.find("Record").attrib["callbackUrl"]  # type: ignore[union-attr]
    first = call.record()
    call.answers.append(call.answers[-2])  # AT did not get our answer: it posts again
    call.record()
    assert call.bodies[-1] == call.bodies[-2]
    assert ET.tostring(first) == ET.tostring(call.last)
    with Db(db_url) as db:
        assert len(db.cases()) == 1 and len(db.outbox()) == 1
    assert record_url.endswith("&in=r")


def test_expired_session_starts_over_cleanly(client: TestClient, db_url: str) -> None:
    call = AtCall(client)
    answer = call._post(f"{PATH}?token={AT_TOKEN}&step=3&in=d", dtmfDigits="1")
    assert "Desarrollo Social. Elija una opcion." in _said(answer)
    assert counts(db_url)["cases"] == 0


def test_final_request_of_an_unknown_session_is_answered_empty(client: TestClient) -> None:
    assert AtCall(client).hang_up().endswith("<Response/>")


def test_language_key_switches_prompts_to_english(client: TestClient) -> None:
    call = AtCall(client)
    call.start()
    english = call.press("9")
    assert "Choose an option." in _said(english)
    assert "New request: press 1." in _said(english)


def test_withheld_caller_gets_the_whole_menu_without_an_sms(
    client: TestClient, db_url: str
) -> None:
    call = AtCall(client, phone="")
    call.start()
    call.press("1")
    call.press("4")
    created = call.record()
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.contact_id is None
        assert db.outbox() == []
    assert _said(created).count(" ".join(case.tracking_number)) == 2


def test_every_url_we_emit_carries_the_token_and_the_token_is_never_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call = AtCall(client)
    call.start()
    call.press("1")
    call.press("4")
    call.record()
    urls = []
    for answer in call.answers:
        urls += [e.attrib["callbackUrl"] for e in answer.iter() if "callbackUrl" in e.attrib]
        urls += [e.text or "" for e in answer.iter("Redirect")]
    assert len(urls) >= 6
    for url in urls:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PUBLIC_URL + PATH
        assert parse_qs(parts.query)["token"] == [AT_TOKEN]
    # httpx is the test's own client playing AT: it logs the URLs it was given.
    app_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert all(AT_TOKEN not in r.getMessage() for r in app_records)


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_missing_or_wrong_token_is_403_and_changes_nothing(
    client: TestClient, db_url: str, token: str | None
) -> None:
    before = counts(db_url)
    url = PATH if token is None else f"{PATH}?token={token}"
    form = {"isActive": "1", "sessionId": "ATVId_x", "callerNumber": CALLER}
    response = client.post(url, data=form)
    assert response.status_code == 403
    assert AT_TOKEN not in response.text
    assert counts(db_url) == before


@pytest.mark.parametrize(
    ("url", "body", "content_type", "status"),
    [
        (f"{PATH}?token={AT_TOKEN}&step=abc", b"isActive=1", FORM_TYPE, 400),
        (f"{PATH}?token={AT_TOKEN}", b'{"sessionId": "x"}', "application/json", 400),
        (f"{PATH}?token={AT_TOKEN}", b"\xff\xfe", FORM_TYPE, 400),
        (f"{PATH}?token={AT_TOKEN}", b"a=" + b"x" * 70_000, FORM_TYPE, 413),
    ],
)
def test_unreadable_requests_are_refused_never_500(
    client: TestClient, url: str, body: bytes, content_type: str, status: int
) -> None:
    response = client.post(url, content=body, headers={"content-type": content_type})
    assert response.status_code == status


def test_redis_outage_gets_an_apology_never_a_500(db_url: str, config: Config) -> None:
    env = app_env(db_url, "redis://127.0.0.1:1/0")  # nothing listens there
    app = create_app(load_settings(env), config)
    with TestClient(app, base_url=PUBLIC_URL) as client:
        response = client.post(
            f"{PATH}?token={AT_TOKEN}",
            data={"isActive": "1", "sessionId": "ATVId_down", "callerNumber": CALLER},
        )
    assert response.status_code == 200
    assert _said(_xml(response.text)) == (
        "Disculpe, ahora no podemos atenderlo. Por favor llame mas tarde."
    )
