"""The operators page in a real browser (Debian's Chromium through Playwright): an admin adds
an operator, is told why a common password is refused, and disables the account.

The server and browser fixtures are test_browser.py's (its module-scoped `ventanilla serve`).
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.test_browser import (  # noqa: F401 (fixtures)
    Live,
    _ventanilla,
    browser,
    live,
    page,
    shot,
)

ADMIN_PASSWORD = "raices-del-ministerio-3"


def test_an_admin_adds_and_disables_an_operator(page: Page, live: Live) -> None:  # noqa: F811
    _ventanilla("operator", "add", "root", "--role", "admin", "--password-stdin",
                env=live.env, stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    page.goto(live.url + "/console")
    page.get_by_label("Usuario").fill("root")
    page.get_by_label("Contraseña").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Ingresar").click()
    page.get_by_role("link", name="Operadores").click()
    expect(page.get_by_role("heading", name="Operadores", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Asistencia Alimentaria")).to_be_visible()  # ana's

    page.get_by_label("Usuario", exact=True).fill("lucia")
    page.get_by_label("Nombre y apellido").fill("Lucía Gómez")
    page.get_by_label("Rol").select_option(label="Supervisor/a")
    page.get_by_label("Hábitat y Emergencia Social").check()
    page.get_by_label("Contraseña", exact=True).fill("Ventanilla2025")
    page.get_by_label("Repita la contraseña").fill("Ventanilla2025")
    page.get_by_role("button", name="Crear operador").click()
    expect(page.get_by_role("alert")).to_contain_text("demasiado común")
    expect(page.get_by_label("Usuario", exact=True)).to_have_value("lucia")  # kept
    shot(page, "operators-01-common-password-refused")

    page.get_by_label("Contraseña", exact=True).fill("girasoles-de-mayo-7")
    page.get_by_label("Repita la contraseña").fill("girasoles-de-mayo-7")
    page.get_by_label("Hábitat y Emergencia Social").check()
    page.get_by_role("button", name="Crear operador").click()
    expect(page.get_by_role("status")).to_have_text("Operador/a lucia creado/a.")
    expect(page.get_by_label("Rol", exact=True)).to_have_value("supervisor")
    expect(page.get_by_label("Hábitat y Emergencia Social")).to_be_checked()
    shot(page, "operators-02-added")

    page.get_by_role("button", name="Desactivar").click()
    expect(page.get_by_role("status")).to_contain_text("lucia desactivado/a")
    expect(page.get_by_role("button", name="Activar")).to_be_visible()
    page.get_by_role("link", name="Todos los operadores").click()
    row = page.get_by_role("row").filter(has_text="Lucía Gómez")
    expect(row).to_contain_text("Desactivado/a")
    expect(row).to_contain_text("Hábitat y Emergencia Social")
    shot(page, "operators-03-list")
    ana = page.get_by_role("row").filter(has=page.get_by_role("link", name="ana", exact=True))
    expect(ana).to_contain_text("Activo/a")  # test_browser's operator keeps her account
