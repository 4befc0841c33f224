"""Live calls in a real browser: Playwright driving Debian's Chromium against `ventanilla serve`
with VENTANILLA_VOICE_PROVIDER=twilio, its Calls API pointed at the fake provider; Twilio's
requests to the app are posted here, signed as Twilio signs them. The simulator's two phones
are tried on a second server with the embedded default (outbox), the only set-up that has them.

Screenshots are kept under test-artifacts/console/.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright
from twilio.request_validator import RequestValidator

from gateway.rediskeys import RedisKeys, delete_all
from tests.conftest import AT_KEY, TWILIO_SID, TWILIO_TOKEN
from tests.console.test_live import FakeWithCallUpdates
from tests.helpers import Db
from tests.helpers import twilio_form as sms_form
from tests.settings import REDIS_PREFIX, REDIS_URL
from tests.test_blackbox import free_port

CHROMIUM = os.environ.get("VENTANILLA_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PASSWORD = "clave-segura-de-prueba"
CITIZEN = "+5491155550701"
ANA_PHONE = "+5491155550791"
BETO_PHONE = "+5491155550792"
_sids = iter(range(1, 1000))


@dataclass
class Live:
    url: str
    db_url: str
    fake: FakeWithCallUpdates | None

    def twilio(self, path: str, form: dict[str, str]) -> httpx.Response:
        """POST what Twilio would post to the app, signed over the app's public URL."""
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(self.url + path, form)
        response = httpx.post(
            self.url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response


def _ventanilla(*args: str, env: dict[str, str], stdin: str | None = None) -> None:
    exe = str(Path(sys.executable).parent / "ventanilla")
    subprocess.run([exe, *args], env=env, input=stdin, text=True, check=True, timeout=60)


@contextlib.contextmanager
def serve(workdir: Path, **extra_env: str) -> Iterator[tuple[str, str]]:
    """`ventanilla serve` on loopback with ana and beto; yields its URL and database URL."""
    port = free_port()
    db_url = f"sqlite:///{workdir / 'v.db'}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_REDIS_URL": REDIS_URL,
        "VENTANILLA__REDIS__PREFIX": REDIS_PREFIX,
        "VENTANILLA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **extra_env,
    }
    _ventanilla("migrate", env=env)
    for user, department, phone in [("ana", "ALIM", ANA_PHONE), ("beto", "HAB", BETO_PHONE)]:
        args = ["operator", "add", user, "--role", "operator", "--department", department]
        _ventanilla(*args, "--phone", phone, "--password-stdin", env=env, stdin=PASSWORD + "\n")
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "ventanilla"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)
    try:
        yield url, db_url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with redis.Redis.from_url(REDIS_URL) as client:
        delete_all(client, RedisKeys(REDIS_PREFIX))  # the live queue lives in Redis: start empty
    fake = FakeWithCallUpdates(
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        at_username="ventanilla-test",
        at_api_key=AT_KEY,
    ).start()
    twilio_env = {
        "VENTANILLA_VOICE_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+5491155550000",
        "TWILIO_API_BASE_URL": fake.url,
    }
    try:
        with serve(tmp_path_factory.mktemp("live"), **twilio_env) as (url, db_url):
            live = Live(url, db_url, fake)
            # A real provider is configured, so no simulator: the citizen texts through Twilio.
            sms = sms_form("No me llega la tarjeta alimentar desde octubre", sender=CITIZEN)
            live.twilio("/webhooks/twilio/sms", sms)
            yield live
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def outbox_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The embedded default (outbox for SMS and voice, loopback): the simulator is on."""
    with serve(tmp_path_factory.mktemp("live-outbox")) as (url, db_url):
        yield Live(url, db_url, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live: Live) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    yield new_page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, live: Live, user: str) -> None:
    page.goto(live.url + "/console/queue")
    page.get_by_label("Usuario").fill(user)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Ingresar").click()
    expect(page.get_by_role("heading", name="Llamadas en espera", level=1)).to_be_visible()


def set_available(page: Page) -> None:
    page.locator("#availability").select_option("available")  # submits on change
    expect(page.locator("#availability")).to_have_value("available")


def twilio_form(sid: str, caller: str, **extra: str) -> dict[str, str]:
    form = {
        "AccountSid": TWILIO_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": "in-progress",
        "Called": "+5491155550000",
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "FromCity": "",
        "FromCountry": "AR",
        "To": "+5491155550000",
        "ToCity": "",
        "ToCountry": "AR",
    }
    form.update(extra)
    return form


def caller_waits(live: Live, department: str, caller: str = CITIZEN) -> str:
    """A caller in `department`'s Twilio queue: Twilio asks the waitUrl."""
    sid = f"CA{next(_sids):032x}"
    queue = {"QueueSid": "QU1", "QueuePosition": "1", "QueueTime": "12", "AvgQueueTime": "30"}
    live.twilio(
        f"/webhooks/twilio/voice/wait?q={department}&u=0", twilio_form(sid, caller, **queue)
    )
    return sid


def test_operator_takes_a_live_call_opens_a_case_and_transfers(page: Page, live: Live) -> None:
    log_in(page, live, "ana")
    set_available(page)
    expect(page.get_by_text("Nadie espera en sus áreas.")).to_be_visible()
    sid = caller_waits(live, "ALIM")
    # The list updates by itself (server-sent events), with the caller's open case.
    row = page.locator(f'tr[data-call="{sid}"]')
    expect(row).to_contain_text(CITIZEN)
    expect(row).to_contain_text("tarjeta alimentar desde octubre")
    expect(row.locator(".waited")).to_have_text(re.compile(r"0:\d\d"))
    shot(page, "07-live-queue-screen-pop")

    page.get_by_role("button", name="Atender la próxima llamada").click()
    expect(page).to_have_url(f"{live.url}/console/calls/{sid}")
    expect(page.locator("#call-state")).to_have_text("Sonando su teléfono…")
    expect(page.locator("#caller-cases")).to_contain_text("tarjeta alimentar desde octubre")
    assert live.fake is not None
    (placed,) = live.fake.calls
    assert placed.to == ANA_PHONE
    assert placed.form["Url"] == f"{live.url}/webhooks/twilio/operator?q=ALIM"
    shot(page, "08-call-ringing")

    # Ana's phone answers; Twilio runs the leg's TwiML and bridges the caller.
    leg = twilio_form(placed.ref, ANA_PHONE, Direction="outbound-api", To=ANA_PHONE)
    twiml = live.twilio("/webhooks/twilio/operator?q=ALIM", leg).text
    assert ET.fromstring(twiml).find("Dial/Queue").text == "ALIM"  # type: ignore[union-attr]
    bridged = twilio_form(sid, CITIZEN, DequeingCallSid=placed.ref, QueueSid="QU1", QueueTime="20")
    live.twilio("/webhooks/twilio/operator/bridged?q=ALIM", bridged)
    expect(page.locator("#call-state")).to_have_text("En llamada")

    page.get_by_label("Tema").select_option("tarjeta-alimentar")
    page.get_by_label("Qué pide").fill("La tarjeta no tiene saldo desde octubre")
    page.get_by_label("Nombre (si lo dio)").fill("Rosa Benítez")
    page.get_by_label("DNI (si lo dio)").fill("30111222")
    page.get_by_role("button", name="Abrir pedido").click()
    expect(page.get_by_role("status")).to_contain_text("Pedido abierto")
    expect(page.locator("#caller-cases")).to_contain_text("La tarjeta no tiene saldo")
    shot(page, "09-case-opened-during-call")
    with Db(live.db_url) as db:
        case = next(c for c in db.cases() if c.channel == "voice")
    assert (case.citizen_name, case.national_id, case.department) == (
        "Rosa Benítez",
        "30111222",
        "ALIM",
    )

    page.get_by_label("A la fila de").select_option("ING")
    page.get_by_role("button", name="Transferir llamada").click()
    expect(page.locator("#call-state")).to_contain_text("Transferida → Programas de Ingreso")
    assert live.fake is not None
    ((moved, form),) = live.fake.updates
    assert moved == sid
    assert ET.fromstring(form["Twiml"]).find("Enqueue").text == "ING"  # type: ignore[union-attr]
    shot(page, "10-transferred")

    page.get_by_label("se abrió un pedido").check()
    page.get_by_label("Nota", exact=True).fill("Consulta por pension: pasa a Ingresos")
    page.get_by_role("button", name="Cerrar la llamada").click()
    expect(page).to_have_url(f"{live.url}/console/queue")
    expect(page.locator("#availability")).to_have_value("available")
    page.goto(f"{live.url}/console/cases/{case.tracking_number}")
    expect(page.get_by_text("Llamada atendida por ana: se abrió un pedido.")).to_be_visible()
    shot(page, "11-wrap-up-on-timeline")


def test_another_department_neither_sees_nor_opens_the_call(page: Page, live: Live) -> None:
    sid = caller_waits(live, "ALIM", caller="+5491155550702")
    log_in(page, live, "beto")
    expect(page.get_by_text("Nadie espera en sus áreas.")).to_be_visible()
    expect(page.get_by_text("+5491155550702")).to_have_count(0)
    page.goto(f"{live.url}/console/calls/{sid}")  # not even taken: no such call for beto
    expect(page.get_by_role("alert")).to_contain_text("No encontramos esa llamada")
    shot(page, "12-live-call-denied")
    hung_up = twilio_form(sid, "+5491155550702", CallStatus="completed")
    live.twilio("/webhooks/twilio/voice/status", hung_up)  # the next test starts with no one


def test_simulator_plays_both_phones(browser: Browser, page: Page, outbox_live: Live) -> None:
    live = outbox_live
    citizen = browser.new_context(viewport={"width": 800, "height": 900}).new_page()
    citizen.goto(f"{live.url}/simulator/call?phone=%2B5491155550703")
    citizen.get_by_label("Área (opción 3 del menú: hablar con una persona)").select_option("ALIM")
    citizen.get_by_role("button", name="Llamar y hablar con una persona").click()
    expect(citizen.locator("#my-call")).to_contain_text("En espera en Asistencia Alimentaria")

    log_in(page, live, "ana")
    set_available(page)
    expect(page.get_by_text("+5491155550703")).to_be_visible()
    page.get_by_role("button", name="Atender la próxima llamada").click()
    expect(page.locator("#call-state")).to_have_text("Sonando su teléfono…")

    phone = browser.new_context(viewport={"width": 800, "height": 900}).new_page()
    phone.goto(f"{live.url}/simulator/call?phone={ANA_PHONE.replace('+', '%2B')}")
    expect(phone.get_by_text("Ventanilla: le conecta con +5491155550703")).to_be_visible()
    shot(phone, "13-simulator-operator-phone-rings")
    phone.get_by_role("button", name="Atender").click()
    expect(phone.get_by_text("En llamada con +5491155550703")).to_be_visible()
    expect(page.locator("#call-state")).to_have_text("En llamada")  # live on the console
    expect(citizen.locator("#my-call")).to_contain_text("Hablando con ana")  # the phone polls
    shot(citizen, "14-simulator-citizen-connected")
    shot(page, "15-console-call-connected")
    citizen.context.close()
    phone.context.close()
