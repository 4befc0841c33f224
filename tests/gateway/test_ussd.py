"""Africa's Talking USSD: every screen's size, and walks over HTTP through every path of the
menu on SQLite and PostgreSQL, with the real Redis holding the sessions (the recorded
payloads, parsed and posted one by one, are in tests/providers/africastalking)."""

from __future__ import annotations

import html
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config, load_config
from casestore.models import CallbackRequest
from casestore.tracking import find_digit_runs, generate
from gateway.app import create_app
from gateway.providers.africastalking import ussd as at_ussd
from gateway.routes import ussd
from gateway.settings import Settings, load_settings
from ivr.machine import Action, Outcome, Screen, State, resume, start, step
from ivr.menu import load_menu
from sms.segments import is_gsm7, septets
from tests.conftest import PUBLIC_URL, app_env
from tests.helpers import AT_TOKEN, Db, counts
from tests.settings import REDIS_PREFIX, REDIS_URL

PATH = f"/webhooks/africastalking/ussd?token={AT_TOKEN}"
TRACKING = re.compile(r"\b(\d{4} \d{4} \d{2})\b")


def fictional_phone() -> str:
    """A +54 9 11 5555 xxxx number of its own: resume offers are kept per phone in Redis."""
    return f"+549115555{uuid.uuid4().int % 10000:04d}"


def tracking_in(text: str) -> str:
    match = TRACKING.search(text)
    assert match, f"no tracking number in {text!r}"
    return match.group(1).replace(" ", "")


def check_screen(body: str) -> str:
    """Every answer: CON/END, no leading blank, GSM-7 only, at most 160 characters shown."""
    assert body[:4] in ("CON ", "END "), body
    shown = body[4:]
    assert shown and shown == shown.strip(), body
    assert is_gsm7(shown), body
    assert septets(shown) <= at_ussd.SCREEN_MAX, f"{septets(shown)} characters: {shown!r}"
    return body


class Phone:
    """A handset on Africa's Talking: dials, then sends every input so far joined by "*"."""

    def __init__(
        self, client: TestClient, phone: str | None = None, session_id: str | None = None
    ) -> None:
        self.client = client
        self.phone = phone or fictional_phone()
        self.session_id = session_id or f"ATUid_{uuid.uuid4().hex}"
        self.inputs: list[str] = []
        self.last = ""

    @property
    def text(self) -> str:
        return "*".join(self.inputs)

    def form(self) -> dict[str, str]:
        return {
            "sessionId": self.session_id,
            "serviceCode": "*384*123#",
            "phoneNumber": self.phone,
            "networkCode": "72207",
            "text": self.text,
        }

    def post(self) -> str:
        response = self.client.post(PATH, data=self.form())
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        self.last = check_screen(response.text)
        return self.last

    def dial(self) -> str:
        self.inputs = []
        return self.post()

    def send(self, *inputs: str) -> str:
        """One request per input; returns the last screen."""
        for value in inputs:
            self.inputs.append(value)
            self.post()
        return self.last


def redis_keys(pattern: str, delete: bool = False) -> list[bytes | str]:
    """Keys of the test Redis matching `pattern`; deleted too when asked."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.keys(pattern))
        if delete and keys:
            client.delete(*keys)
        return keys
    finally:
        client.close()


def forget_session(session_id: str) -> None:
    """What Redis losing a session looks like: its state and last text gone."""
    assert redis_keys(f"{REDIS_PREFIX}:menu:[st]:*{session_id}", delete=True)


# ---------------------------------------------------------------- the accumulated text (pure)


def test_following_reads_the_new_input_off_the_previous_text() -> None:
    assert ussd.following(None, "1") is None
    assert ussd.following("", "1") == "1"
    assert ussd.following("1*98*2", "1*98*2*casa * patio") == "casa * patio"
    assert ussd.following("1*98", "1*9") is None  # does not extend it: rebuild instead
    assert [ussd.step_ref(t) for t in ("", "1", "1*98", "1*98*2*a*b")] == ["0", "1", "2", "5"]


# ---------------------------------------------------------------- screens (pure)


def _all_screens(config: Config) -> dict[str, Screen]:
    """Every screen a USSD session can reach, both languages: a walk over the menu with every
    key, text and tracking number kind, and every outcome of every action."""
    menu = load_menu(config)
    tracking = generate(config.tracking_length)
    mistyped = tracking[:-1] + str((int(tracking[-1]) + 1) % 10)

    def outcomes(action: Action) -> list[Outcome]:
        if action.kind == "create_case":
            return [Outcome(tracking=tracking)]
        if action.kind == "case_status":
            found = [
                Outcome(tracking=tracking, status=status, department=department)
                for status in config.status_names[config.default_language]
                for department in config.departments
            ]
            return [Outcome(ok=False), *found]
        return [Outcome()]

    def settle(screen: Screen) -> list[Screen]:
        if screen.action is None:
            return [screen]
        return [
            s
            for outcome in outcomes(screen.action)
            for s in settle(resume(menu, screen.state, screen.action, outcome))
        ]

    inputs = ["1", "2", "3", "4", "9", "0", "00", "98", "7", "x", "Sin gas * hace 3 dias"]
    inputs += [tracking, mistyped, "123"]
    queue: deque[Screen] = deque()
    for language in config.languages:
        queue.append(start(menu, "ussd", language))
        for node in ("describe", "confirm"):
            dropped = State("ussd", language, node=node, category="comedores", trail=("main",))
            queue.append(start(menu, "ussd", language, dropped))
    screens: dict[str, Screen] = {}
    seen: set[State] = set()
    while queue:
        screen = queue.popleft()
        screens[at_ussd.render_ussd(screen)] = screen
        if screen.end or screen.state in seen:
            continue
        seen.add(screen.state)
        for value in inputs:
            queue.extend(settle(step(menu, screen.state, value)))
    return screens


def test_every_reachable_screen_fits_160_gsm7_characters(config: Config) -> None:
    screens = _all_screens(config)
    assert len(screens) > 50
    languages = {s.state.language for s in screens.values()}
    assert languages == set(config.languages)
    for body, screen in screens.items():
        # Fits as written: render_ussd never had to cut a shipped prompt.
        assert septets(at_ussd.screen_text(screen)) <= at_ussd.SCREEN_MAX, body
        check_screen(body)
        assert body.startswith("END ") == screen.end
    pages = [s for s in screens.values() if any(k == "98" for k, _ in s.options)]
    assert pages and all(("0", "Volver") in p.options or ("0", "Back") in p.options for p in pages)


def test_render_options_and_transliteration(config: Config) -> None:
    menu = load_menu(config)
    main = at_ussd.render_ussd(start(menu, "ussd", "es"))
    assert main == (
        "CON Desarrollo Social. Elija una opcion.\n1 Nuevo pedido\n2 Estado de un pedido\n"
        "3 Pedir que lo llamemos\n9 English"
    )
    state = State("ussd", "es", node="main", phase="told")
    answer = at_ussd.render_ussd(Screen(state, "  Área: Atención Ciudadana", end=True))
    assert answer == "END Area: Atencion Ciudadana"


def test_an_overlong_prompt_is_cut_never_the_options() -> None:
    state = State("ussd", "es")
    screen = Screen(state, "x" * 300, options=(("1", "Si"), ("2", "No")))
    body = check_screen(at_ussd.render_ussd(screen))
    assert body.endswith("...\n1 Si\n2 No")


def test_replay_rebuilds_the_position_with_stars_in_free_text(config: Config) -> None:
    menu = load_menu(config)
    rebuilt = ussd.replay(menu, "1*98*2*Sin gas * hace 3 dias*1")
    assert rebuilt is not None
    state, last = rebuilt
    assert (state.node, state.category, state.description, last) == (
        "confirm",
        "comedores",
        "Sin gas * hace 3 dias",
        "1",
    )
    at_description = ussd.replay(menu, "1*98*2*Sin gas * hace 3 dias")
    assert at_description is not None and at_description[1] == "Sin gas * hace 3 dias"
    assert ussd.replay(menu, "3*1") is None  # a call-back request ends the session


# ---------------------------------------------------------------- new request


def test_new_request_walk_ends_with_tracking_number_and_sms_copy(
    client: TestClient, db_url: str
) -> None:
    phone = Phone(client)
    assert "1 Nuevo pedido" in phone.dial() and phone.last.startswith("CON ")
    page1 = phone.send("1")
    assert "1 Violencia de género" in page1 and "98 Mas" in page1 and "0 Volver" in page1
    page2 = phone.send("98")
    assert "2 Comedores y merenderos" in page2
    assert "Escriba su pedido" in phone.send("2")
    confirm = phone.send("Sin gas * hace 3 días")
    assert confirm.startswith("CON Registrar un pedido de Comedores y merenderos?")
    done = phone.send("1")
    assert done.startswith("END Pedido registrado.")
    number = tracking_in(done)
    assert [run for run in find_digit_runs(done) if len(run) >= 9] == [number]
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.tracking_number == number
        assert (case.channel, case.category, case.department, case.status) == (
            "ussd",
            "comedores",
            "ALIM",
            "new",
        )
        assert case.description == "Sin gas * hace 3 días"
        assert db.contacts()[0].phone == phone.phone
        inbound = [i for i in db.interactions() if i.direction == "in"]
        assert [(i.provider, i.provider_ref, i.channel) for i in inbound] == [
            ("africastalking", f"{phone.session_id}:{ussd.step_ref(phone.text)}", "ussd")
        ]
        (sms,) = db.outbox()
        assert (sms.kind, sms.channel, sms.to_address, sms.status) == (
            "receipt",
            "sms",
            phone.phone,
            "pending",
        )
        assert tracking_in(sms.body) == number


def test_description_can_be_skipped_and_request_cancelled(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.dial()
    phone.send("1", "98", "3", "1")  # pensiones, no text
    assert phone.send("2") == "END Pedido cancelado. Gracias."
    with Db(db_url) as db:
        assert db.cases() == [] and db.outbox() == []
    # Ended on purpose: nothing to resume on the next dial.
    assert Phone(client, phone=phone.phone).dial().startswith("CON Desarrollo Social.")
    again = Phone(client)
    again.dial()
    assert again.send("1", "98", "3", "1", "1").startswith("END Pedido registrado.")
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.category, case.description) == ("pensiones", "")


def test_urgent_category_opens_at_once_with_emergency_lines(
    client: TestClient, db_url: str
) -> None:
    phone = Phone(client)
    phone.dial()
    answer = phone.send("1", "1")
    assert answer.startswith("END Pedido URGENTE") and "144" in answer and "911" in answer
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.urgent and (case.category, case.department) == ("violencia-genero", "GEN")
        (sms,) = db.outbox()
        assert sms.kind == "receipt" and "URGENTE" in sms.body


def test_english_walk(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.dial()
    english = phone.send("9")
    assert english.startswith("CON Choose an option.") and "9 Español" in english
    assert "Choose the topic" in phone.send("1")
    phone.send("98", "1", "no food card payment")
    done = phone.send("1")
    assert done.startswith("END Request registered. Tracking number:")
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.category, case.language) == ("tarjeta-alimentar", "en")
        assert "we received your request" in db.outbox()[0].body


def test_navigation_back_more_and_main_menu(client: TestClient) -> None:
    phone = Phone(client)
    phone.dial()
    page1 = phone.send("1")
    page2 = phone.send("98")
    page3 = phone.send("98")
    page4 = phone.send("98")
    assert "98 Mas" in page3 and "3 Inundacion y temporal" in page3
    assert "98 Mas" not in page4 and "2 Consulta general" in page4
    assert phone.send("98").startswith("CON Opcion no valida.")  # no page after the last
    assert phone.send("0") == page3
    assert phone.send("0") == page2
    assert phone.send("0") == page1
    assert phone.send("0").startswith("CON Elija una opcion.")
    phone.send("1", "98", "2")  # at the description
    assert phone.send("00").startswith("CON Elija una opcion.")
    phone.send("2")
    assert phone.send("0").startswith("CON Elija una opcion.")


# ---------------------------------------------------------------- status and call-back


def test_status_tells_mistyped_from_unknown_and_answers_found(
    client: TestClient, db_url: str
) -> None:
    opener = Phone(client)
    opener.dial()
    number = tracking_in(opener.send("1", "98", "1", "1", "1"))
    unknown = generate(10)
    while unknown == number:
        unknown = generate(10)
    mistyped = number[:-1] + str((int(number[-1]) + 1) % 10)

    asker = Phone(client)
    asker.dial()
    assert asker.send("2").startswith("CON Ingrese el numero de seguimiento")
    assert asker.send(mistyped).startswith("CON Ese numero tiene un error de tipeo.")
    assert asker.send(unknown).startswith("CON No encontramos un pedido con ese numero.")
    found = asker.send(number)
    assert found == (
        f"END Pedido {number[:4]} {number[4:8]} {number[8:]}. Estado: recibido. "
        "Area: Asistencia Alimentaria."
    )
    assert "5555" not in found


def test_status_gives_up_after_three_attempts(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.dial()
    phone.send("2", "123", generate(10))
    last = phone.send("99999")
    assert last.startswith("END ") and "Hasta luego" in last
    with Db(db_url) as db:
        assert db.cases() == []


def test_call_back_request_lands_in_operator_queue(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.dial()
    assert phone.send("3") == (
        "END Registramos su pedido de llamada. Un operador lo llamara pronto."
    )
    with Db(db_url) as db:
        with Session(db.engine) as session:
            (request,) = session.scalars(select(CallbackRequest)).all()
        assert (request.phone, request.department, request.channel, request.status) == (
            phone.phone,
            "ATC",
            "ussd",
            "pending",
        )
        assert db.cases() == []


# ---------------------------------------------------------------- bad input


def test_invalid_choice_reprompts_three_times_then_goodbye(client: TestClient) -> None:
    phone = Phone(client)
    phone.dial()
    first = phone.send("7")
    assert first.startswith("CON Opcion no valida. Elija una opcion.") and "1 Nuevo" in first
    assert phone.send("x").startswith("CON Opcion no valida.")
    assert phone.send("5") == "END Opcion no valida. Gracias por comunicarse. Hasta luego."
    category = Phone(client)
    category.dial()
    category.send("1")
    assert category.send("9").startswith("CON Opcion no valida. Elija el tema")


# ---------------------------------------------------------------- redelivery


def test_redelivered_requests_get_the_same_answer_and_change_nothing(
    client: TestClient, db_url: str
) -> None:
    phone = Phone(client)
    answers = [phone.dial()]
    for value in ("1", "98", "2", "Sin luz*desde ayer", "1"):
        answers.append(phone.send(value))
        before = counts(db_url)
        assert phone.post() == answers[-1]  # AT sends the same request again
        assert counts(db_url) == before
    # An older step redelivered late still gets its own answer.
    phone.inputs = ["1"]
    assert phone.post() == answers[1]
    with Db(db_url) as db:
        assert len(db.cases()) == 1 and len(db.outbox()) == 1


def test_concurrent_redeliveries_of_the_last_step_open_one_case(
    client: TestClient, db_url: str
) -> None:
    phone = Phone(client)
    phone.dial()
    phone.send("1", "98", "2", "Sin gas")
    phone.inputs.append("1")
    form = phone.form()
    answers: list[str] = []

    def send() -> None:
        answers.append(client.post(PATH, data=form).text)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 6 and len(set(answers)) == 1
    with Db(db_url) as db:
        assert len(db.cases()) == 1 and len(db.outbox()) == 1


# ---------------------------------------------------------------- expiry and resume


def test_lost_session_is_rebuilt_from_the_whole_text(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.dial()
    phone.send("1", "98", "2", "casa * patio")
    forget_session(phone.session_id)
    confirm = phone.send("98")  # wrong key, but at the right screen: the confirm question
    assert confirm.startswith("CON Opcion no valida. Registrar un pedido de Comedores")
    forget_session(phone.session_id)
    assert phone.send("1").startswith("END Pedido registrado.")
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.category, case.description) == ("comedores", "casa * patio")


def test_first_request_carrying_inputs_lands_at_their_position(client: TestClient) -> None:
    phone = Phone(client)
    phone.inputs = ["1", "98"]  # e.g. a dial string with the choices in it: *384*123*1*98#
    assert "1 Tarjeta Alimentar" in phone.post()
    assert phone.send("2").startswith("CON Escriba su pedido")


def test_text_that_no_longer_fits_the_menu_starts_over(client: TestClient, db_url: str) -> None:
    phone = Phone(client)
    phone.inputs = ["3", "1"]  # inputs after a session-ending call-back request: not a menu walk
    assert phone.post().startswith("CON Desarrollo Social. Elija una opcion.")
    assert phone.send("2").startswith("CON Ingrese el numero de seguimiento")
    with Db(db_url) as db, Session(db.engine) as session:
        assert session.scalars(select(CallbackRequest)).all() == []


@pytest.fixture
def short_ttl_client(settings: Settings) -> Iterator[TestClient]:
    config = load_config(env={"VENTANILLA__IVR__SESSION_TTL_SECONDS": "1"})
    with TestClient(create_app(settings, config), base_url=PUBLIC_URL) as test_client:
        yield test_client


def test_expired_session_in_real_redis_starts_over_cleanly(
    short_ttl_client: TestClient, db_url: str
) -> None:
    phone = Phone(short_ttl_client)
    phone.dial()
    phone.send("1", "98")
    time.sleep(1.2)
    assert redis_keys(f"*{phone.session_id}*") == []  # Redis expired every key of it
    assert "Escriba su pedido" in phone.send("2")  # the position, from the whole text
    time.sleep(1.2)
    fresh = Phone(short_ttl_client)
    assert fresh.dial().startswith("CON Desarrollo Social.")
    assert fresh.send("1", "98", "2", "1", "1").startswith("END Pedido registrado.")
    with Db(db_url) as db:
        assert len(db.cases()) == 1


def test_dropped_new_request_is_offered_to_resume(client: TestClient, db_url: str) -> None:
    dropped = Phone(client)
    dropped.dial()
    dropped.send("1", "98", "2")  # at the description, then the network drops the session
    other = Phone(client)
    assert other.dial().startswith("CON Desarrollo Social.")  # another phone: nothing to resume

    again = Phone(client, phone=dropped.phone)
    offer = again.dial()
    assert offer == "CON Tenia un pedido sin terminar.\n1 Continuar\n2 Empezar de nuevo"
    assert again.send("1").startswith("CON Escriba su pedido")
    assert again.send("Sin gas").startswith("CON Registrar un pedido de Comedores")
    done = again.send("1")
    assert done.startswith("END Pedido registrado.")
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.category, case.description) == ("comedores", "Sin gas")
    assert Phone(client, phone=dropped.phone).dial().startswith("CON Desarrollo Social.")  # used


def test_resume_can_be_declined(client: TestClient) -> None:
    dropped = Phone(client)
    dropped.dial()
    dropped.send("1", "98", "2", "casa")  # at the confirmation
    again = Phone(client, phone=dropped.phone)
    assert again.dial().startswith("CON Tenia un pedido sin terminar.")
    assert again.send("2").startswith("CON Elija una opcion.")


# ---------------------------------------------------------------- refused requests


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_bad_token_refused_and_nothing_written(
    client: TestClient, db_url: str, token: str | None
) -> None:
    query = "" if token is None else f"?token={token}"
    before = counts(db_url)
    phone = Phone(client)
    response = client.post(f"/webhooks/africastalking/ussd{query}", data=phone.form())
    assert response.status_code == 403
    assert counts(db_url) == before
    assert redis_keys(f"*{phone.session_id}*") == []


def test_body_over_64_kib_and_wrong_content_type_refused(client: TestClient, db_url: str) -> None:
    before = counts(db_url)
    form = Phone(client).form()
    form["text"] = "1*" + "x" * (65 * 1024)
    assert client.post(PATH, data=form).status_code == 413
    response = client.post(PATH, content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert counts(db_url) == before


# ---------------------------------------------------------------- failures


def test_redis_down_ends_the_session_politely(db_url: str, config: Config) -> None:
    settings = load_settings(app_env(db_url, "redis://127.0.0.1:1/0"))
    with TestClient(create_app(settings, config), base_url=PUBLIC_URL) as test_client:
        response = test_client.post(PATH, data=Phone(test_client).form())
    assert response.status_code == 200
    assert response.text == "END Servicio no disponible. Intente mas tarde."


def test_unreachable_database_keeps_the_request_in_the_spool(
    redis_url: str, config: Config, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'ventanilla.db'}"
    settings = load_settings(app_env(url, redis_url))
    with TestClient(create_app(settings, config), base_url=PUBLIC_URL) as test_client:
        phone = Phone(test_client)
        phone.dial()
        phone.send("1", "98", "2", "Sin gas")  # no database needed so far
        phone.inputs.append("1")
        screens = []
        for _ in range(2):  # a retry gets the same answer
            response = test_client.post(PATH, data=phone.form())
            assert response.status_code == 200
            screens.append(response.text)
        assert screens[0] == screens[1] and screens[0].startswith("END Pedido registrado.")
        assert test_client.app.state.runtime.spool.pending() == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------- simulator


class SimulatedPhone:
    """The browser on /simulator/ussd: posts the form the page shows, hidden fields included."""

    def __init__(self, client: TestClient, phone: str) -> None:
        self.client = client
        self.fields = {"phone": phone}
        self.page = ""
        self.posted: dict[str, str] = {}

    def _submit(self, data: dict[str, str]) -> str:
        self.posted = data
        response = self.client.post("/simulator/ussd", data=data)
        assert response.status_code == 200, response.text
        self.page = response.text
        for name in ("session", "text"):
            found = re.search(rf'name="{name}" value="([^"]*)"', self.page)
            self.fields[name] = html.unescape(found.group(1)) if found else ""
        return self.screen

    @property
    def screen(self) -> str:
        found = re.search(r'<div class="text">(.*?)</div>', self.page, re.S)
        assert found, self.page
        return html.unescape(found.group(1))

    def dial(self) -> str:
        return self._submit({"phone": self.fields["phone"], "action": "dial"})

    def send(self, value: str) -> str:
        return self._submit(dict(self.fields, action="send", input=value))

    def reload(self) -> str:
        """What the browser's reload does: post the same form again."""
        return self._submit(self.posted)


def test_simulator_ussd_mode_walks_the_same_menu(client: TestClient, db_url: str) -> None:
    assert 'href="/simulator/ussd"' in client.get("/simulator").text
    page = client.get("/simulator/ussd")
    assert page.status_code == 200 and 'name="phone"' in page.text and "*123#" in page.text
    sim = SimulatedPhone(client, "+54 9 11 5555-0042")
    assert "1 Nuevo pedido" in sim.dial()
    assert sim.fields["session"] and sim.fields["text"] == ""
    sim.send("1")
    sim.send("98")
    assert sim.fields["text"] == "1*98"  # accumulated like Africa's Talking does
    sim.send("2")
    assert sim.send("Sin gas * hace 3 dias").startswith("Registrar un pedido de Comedores")
    before = counts(db_url)
    done = sim.send("1")
    assert done.startswith("Pedido registrado.") and 'data-ended="yes"' in sim.page
    assert 'name="input"' not in sim.page and "/simulator?phone=" in sim.page
    assert sim.reload() == done  # the same step again: same screen, nothing new
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.channel, case.category, case.description) == (
            "ussd",
            "comedores",
            "Sin gas * hace 3 dias",
        )
        assert tracking_in(done) == case.tracking_number
        assert [i.provider for i in db.interactions() if i.direction == "in"] == ["simulator"]
        (sms,) = db.outbox()
        assert sms.to_address == "+5491155550042" and sms.kind == "receipt"
    assert counts(db_url)["cases"] == before["cases"] + 1


def test_simulator_ussd_refuses_a_bad_phone(client: TestClient, db_url: str) -> None:
    before = counts(db_url)
    response = client.post("/simulator/ussd", data={"phone": "abc", "action": "dial"})
    assert response.status_code == 400 and "no válido" in response.text
    assert counts(db_url) == before


def test_simulator_ussd_is_off_with_a_real_provider(
    db_url: str, redis_url: str, config: Config
) -> None:
    settings = load_settings(app_env(db_url, redis_url, VENTANILLA_SMS_PROVIDER="twilio"))
    with TestClient(create_app(settings, config)) as test_client:
        assert test_client.get("/simulator/ussd").status_code == 404
        response = test_client.post("/simulator/ussd", data={"phone": "+5491155550042"})
        assert response.status_code == 404
