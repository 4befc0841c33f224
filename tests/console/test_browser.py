"""The console in a real browser: Playwright driving Debian's Chromium against `ventanilla serve`.

Screenshots are kept under test-artifacts/console/ for people to look at.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers import Db
from tests.settings import REDIS_URL
from tests.test_blackbox import free_port

CHROMIUM = os.environ.get("VENTANILLA_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PASSWORD = "clave-segura-de-prueba"


@dataclass
class Live:
    url: str
    db_url: str
    env: dict[str, str]


def _ventanilla(*args: str, env: dict[str, str], stdin: str | None = None) -> None:
    exe = str(Path(sys.executable).parent / "ventanilla")
    subprocess.run([exe, *args], env=env, input=stdin, text=True, check=True, timeout=60)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    workdir = tmp_path_factory.mktemp("console")
    port = free_port()
    db_url = f"sqlite:///{workdir / 'v.db'}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_REDIS_URL": REDIS_URL,
        "VENTANILLA_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    _ventanilla("migrate", env=env)
    _ventanilla("operator", "add", "ana", "--role", "operator", "--department", "ALIM",
                "--password-stdin", env=env, stdin=PASSWORD + "\n")  # fmt: skip
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
    for phone, text in [
        ("+5491155550401", "No me llega la tarjeta alimentar desde octubre"),
        ("+5491155550402", "Se inundo la casa, necesito colchones"),
    ]:
        httpx.post(url + "/simulator", data={"phone": phone, "text": text}, timeout=10)
    yield Live(url, db_url, env)
    server.terminate()
    server.wait(timeout=10)
    log.close()


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
    new_page = context.new_page()
    yield new_page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, live: Live) -> None:
    page.goto(live.url + "/console")
    page.get_by_label("Usuario").fill("ana")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Ingresar").click()
    expect(page.get_by_role("heading", name="Pedidos")).to_be_visible()


def test_operator_works_a_case_in_the_browser(page: Page, live: Live) -> None:
    log_in(page, live)
    expect(page.get_by_text("tarjeta alimentar desde octubre")).to_be_visible()
    expect(page.get_by_text("colchones")).to_have_count(0)  # another department's case
    shot(page, "01-case-list")
    page.get_by_role("link", name=re.compile(r"\d{4} \d{4} \d{2}")).first.click()
    expect(page.get_by_role("heading", name="Historia")).to_be_visible()
    number = re.sub(r"\D", "", page.get_by_role("heading", level=1).inner_text())

    page.get_by_label("Mensaje").fill("Hola, ¿podés traer el DNI el martes? Atención de 9 a 13.")
    expect(page.locator("#segments")).to_contain_text("UCS-2")
    shot(page, "02-ucs2-warning")
    page.get_by_label("Mensaje").fill("Hola, podes traer el DNI el martes? Te esperamos de 9 a 13.")
    expect(page.locator("#segments")).not_to_contain_text("UCS-2")
    page.get_by_role("button", name="Enviar SMS").click()

    page.get_by_label("Nuevo estado").select_option("in_progress")
    page.get_by_label("Nota", exact=True).fill("Se pidio el DNI")
    page.get_by_role("button", name="Guardar estado").click()
    expect(page.get_by_text("estamos trabajando en su pedido")).to_be_visible()
    shot(page, "03-case-after-status")
    with Db(live.db_url) as db:
        kinds = sorted(m.kind for m in db.outbox() if m.case_id is not None)
        case = next(c for c in db.cases() if c.tracking_number == number)
    assert kinds == ["notification", "operator_reply"]
    assert case.status == "in_progress" and case.first_response_at is not None

    # Search in any grouping finds the case.
    page.goto(live.url + "/console")
    page.get_by_label(re.compile("Buscar")).fill(f"{number[:4]}-{number[4:8]}-{number[8:]}")
    page.get_by_role("button", name="Buscar").click()
    expect(page.get_by_role("link", name=re.compile(number[:4]))).to_have_count(1)


def test_cross_department_case_is_denied(page: Page, live: Live) -> None:
    with Db(live.db_url) as db:
        other = next(c for c in db.cases() if c.department != "ALIM")
    log_in(page, live)
    page.goto(f"{live.url}/console/cases/{other.tracking_number}")
    expect(page.get_by_role("alert")).to_contain_text("No encontramos")
    expect(page.get_by_text("colchones")).to_have_count(0)
    shot(page, "04-denied")


def test_duplicate_request_is_merged(page: Page, live: Live) -> None:
    from sqlalchemy import update

    from casestore.models import Contact

    phone = "+5491155550405"
    httpx.post(
        live.url + "/simulator", data={"phone": phone, "text": "No cobre la tarjeta alimentar"}
    )
    with Db(live.db_url) as db, db.engine.begin() as conn:  # the conversation window has passed
        conn.execute(
            update(Contact).where(Contact.phone == phone).values(conversation_case_id=None)
        )
    httpx.post(
        live.url + "/simulator", data={"phone": phone, "text": "Sigo sin la tarjeta alimentar"}
    )
    with Db(live.db_url) as db:
        first, second = [c for c in db.cases() if "tarjeta alimentar" in c.description.lower()][-2:]
    log_in(page, live)
    page.goto(f"{live.url}/console/cases/{first.tracking_number}")
    expect(page.get_by_role("heading", name="Posibles duplicados")).to_be_visible()
    shot(page, "05-duplicates")
    page.get_by_role("button", name="Unir a este pedido").click()
    expect(page.get_by_text(f"{second.tracking_number} merged into this case")).to_be_visible()
    expect(page.get_by_text("Sigo sin la tarjeta alimentar")).to_be_visible()
    shot(page, "06-merged")
    with Db(live.db_url) as db:
        merged = next(c for c in db.cases() if c.id == second.id)
    assert merged.merged_into_id == first.id and merged.status == "closed"
    # The merged number still answers, with the case it went into.
    status = httpx.post(
        live.url + "/simulator",
        data={"phone": "+5491155550406", "text": f"ESTADO {second.tracking_number}"},
        follow_redirects=True,
    )
    spaced = f"{first.tracking_number[:4]} {first.tracking_number[4:8]} {first.tracking_number[8:]}"
    assert spaced in status.text


def test_privacy_page_sees_only_the_supervisors_departments(page: Page, live: Live) -> None:
    _ventanilla("operator", "add", "hugo", "--role", "supervisor", "--department", "HAB",
                "--password-stdin", env=live.env, stdin=PASSWORD + "\n")  # fmt: skip
    page.goto(live.url + "/console")
    page.get_by_label("Usuario").fill("hugo")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Ingresar").click()
    page.goto(live.url + "/console/privacy")
    # The ALIM citizen: nothing to see, export empty, no erase button.
    page.get_by_label("Teléfono").fill("+5491155550401")
    page.get_by_role("button", name="Buscar").click()
    expect(page.get_by_role("status")).to_contain_text("No hay datos de esta persona en sus áreas")
    expect(page.get_by_role("button", name="Borrar datos")).to_have_count(0)
    shot(page, "07-privacy-other-department")
    with page.expect_download() as download:
        page.get_by_role("button", name="Exportar (JSON)").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["cases"] == [] and exported["contacts"] == []
    assert "tarjeta" not in json.dumps(exported)
    # The HAB citizen: found, and erased with the confirmation.
    page.get_by_label("Teléfono").fill("+5491155550402")
    page.get_by_role("button", name="Buscar").click()
    expect(page.get_by_text("1 pedidos")).to_be_visible()
    page.get_by_label("Confirmo que la persona pidió borrar sus datos").check()
    page.get_by_role("button", name="Borrar datos").click()
    expect(page.get_by_role("status")).to_contain_text("Datos borrados: 1 pedidos")
    shot(page, "08-privacy-erased")
    with Db(live.db_url) as db:
        cases = {c.department: c for c in db.cases() if c.department in ("ALIM", "HAB")}
        phones = {c.phone for c in db.contacts()}
    assert cases["HAB"].description == "[borrado]"
    assert "tarjeta alimentar" in cases["ALIM"].description.lower()
    assert "+5491155550402" not in phones and "+5491155550401" in phones
